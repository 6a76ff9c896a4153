"""Notification channels, one module each; a new channel is a new module plus one registry line."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from codequal.alerting.channels.alertmanager import RESEND_INTERVAL, AlertmanagerChannel
from codequal.alerting.channels.base import Channel, Notification
from codequal.alerting.channels.email import EmailChannel
from codequal.alerting.channels.pagerduty import PagerDutyChannel
from codequal.alerting.channels.slack import SlackChannel
from codequal.alerting.channels.webhook import WebhookChannel
from codequal.config import Settings
from codequal.exceptions import ConfigError, DeliveryError


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _email(settings: Settings) -> Channel:
    try:
        return EmailChannel(
            _secret(settings.smtp_url), settings.alert_email_to, settings.alert_email_from
        )
    except ValueError as exc:
        raise ConfigError(
            f"CODEQUAL_SMTP_URL is invalid: {exc}; use smtp://user:pass@host:587?starttls=true."
        ) from None


# name -> factory from settings. Order is the order /health lists them in.
REGISTRY: dict[str, Callable[[Settings], Channel]] = {
    "slack": lambda s: SlackChannel(_secret(s.slack_webhook_url)),
    "email": _email,
    "pagerduty": lambda s: PagerDutyChannel(
        _secret(s.pagerduty_routing_key), s.pagerduty_url, source=s.service_name
    ),
    "webhook": lambda s: WebhookChannel(_secret(s.webhook_url)),
    "alertmanager": lambda s: AlertmanagerChannel(s.alertmanager_url, RESEND_INTERVAL),
}


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Every channel, configured or not (an unconfigured one reports why in /health).

    Raises ConfigError, naming the variable, when a channel's setting cannot be used.
    """
    return {name: factory(settings) for name, factory in REGISTRY.items()}


__all__ = [
    "REGISTRY",
    "Channel",
    "DeliveryError",
    "Notification",
    "build_channels",
]
