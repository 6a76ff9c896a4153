"""Alertmanager: ``POST {url}/api/v2/alerts``, as Prometheus sends alerts.

Alertmanager does its own grouping, silencing, inhibition and routing, so this channel gets
every firing alert again each resend interval and every resolved one once. Firing alerts carry
an ``endsAt`` a few resend intervals ahead: if CodeQual stops sending (crash, partition), the
alert resolves on Alertmanager's side instead of firing forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from codequal.alerting.channels.base import JSON, Notification, http_client, post_json
from codequal.alerting.model import Alert
from codequal.vocabulary import iso_timestamp

RESEND_INTERVAL = 60.0  # seconds, Prometheus's default --rules.alert.resend-delay
VALIDITY_RESENDS = 4  # like Prometheus: endsAt = now + 4 x resend interval


class AlertmanagerChannel:
    """Forwards alerts to ``CODEQUAL_ALERTMANAGER_URL``."""

    name = "alertmanager"

    def __init__(
        self,
        url: str | None,
        resend_interval: float = RESEND_INTERVAL,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/v2/alerts" if url else None
        self._valid_for = VALIDITY_RESENDS * resend_interval
        self._clock = clock
        self._client = client or http_client()

    @property
    def configured(self) -> bool:
        return self._endpoint is not None

    @property
    def disabled_reason(self) -> str:
        return "" if self._endpoint else "CODEQUAL_ALERTMANAGER_URL is not set"

    def notify(self, notification: Notification) -> None:
        assert self._endpoint is not None, "notify() on an unconfigured channel"
        now = self._clock()
        body = [alertmanager_alert(a, now, self._valid_for) for a in notification.alerts]
        post_json(self._client, self._endpoint, body)


def alertmanager_alert(alert: Alert, now: float, valid_for: float) -> JSON:
    """``Alert.to_alertmanager()``, plus a bounded ``endsAt`` while firing."""
    body = alert.to_alertmanager()
    if alert.status == "resolved" and "endsAt" not in body:
        body["endsAt"] = iso_timestamp(now)
    elif alert.status != "resolved":
        body["endsAt"] = iso_timestamp(now + valid_for)
    return body
