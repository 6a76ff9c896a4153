"""PagerDuty Events API v2: one trigger or resolve event per alert, deduplicated per alert.

PagerDuty opens one incident per ``dedup_key``; the key is derived from the alert's
fingerprint and its group, so the same alert triggers once however often it is repeated, and
its resolve closes exactly that incident (also after a restart).
"""

from __future__ import annotations

import hashlib

import httpx

from codequal.alerting.channels.base import (
    JSON,
    Notification,
    http_client,
    post_json,
    runbook_url,
)
from codequal.alerting.model import Alert
from codequal.vocabulary import iso_timestamp

DEFAULT_URL = "https://events.pagerduty.com"
# PagerDuty knows critical / error / warning / info; ours map onto them by urgency.
SEVERITY_MAP = {
    "emergency": "critical",
    "critical": "critical",
    "warning": "warning",
    "ticket": "info",
    "info": "info",
}
UNKNOWN_SEVERITY = "error"  # a label we do not know still pages, at PagerDuty's middle level
MAX_SUMMARY = 1024  # PagerDuty rejects longer summaries


def dedup_key(alert: Alert, group_key: str) -> str:
    """Stable across trigger and resolve, and across restarts: a hash of group and alert."""
    digest = hashlib.sha256(f"{group_key}\x00{alert.fingerprint}".encode()).hexdigest()
    return f"codequal-{digest[:32]}"


class PagerDutyChannel:
    """Posts to ``{CODEQUAL_PAGERDUTY_URL}/v2/enqueue`` with ``CODEQUAL_PAGERDUTY_ROUTING_KEY``."""

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str | None,
        url: str = DEFAULT_URL,
        source: str = "codequal",
        client: httpx.Client | None = None,
    ) -> None:
        self._key = routing_key
        self._endpoint = url.rstrip("/") + "/v2/enqueue"
        self._source = source
        self._client = client or http_client()

    @property
    def configured(self) -> bool:
        return bool(self._key)

    @property
    def disabled_reason(self) -> str:
        return "" if self._key else "CODEQUAL_PAGERDUTY_ROUTING_KEY is not set"

    def notify(self, notification: Notification) -> None:
        assert self._key is not None, "notify() on an unconfigured channel"
        # Resolves first: if a later trigger fails, the closed incidents stay closed.
        ordered = sorted(notification.alerts, key=lambda a: a.status != "resolved")
        for alert in ordered:
            event = pagerduty_event(alert, notification, self._key, self._source)
            post_json(self._client, self._endpoint, event)


def pagerduty_event(
    alert: Alert, notification: Notification, routing_key: str, source: str
) -> JSON:
    """The Events API v2 body for one alert."""
    key = dedup_key(alert, notification.group_key)
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    event: JSON = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": _payload(alert, source),
        "client": "CodeQual",
    }
    if notification.external_url:
        event["client_url"] = notification.external_url
    links = [{"href": url, "text": text} for url, text in _links(alert, notification)]
    if links:
        event["links"] = links
    return event


def _payload(alert: Alert, source: str) -> JSON:
    summary = alert.annotations.get("summary") or alert.name
    payload: JSON = {
        "summary": f"[{alert.severity}] {alert.name}: {summary}"[:MAX_SUMMARY],
        "source": alert.labels.get("instance") or source,
        "severity": SEVERITY_MAP.get(alert.severity, UNKNOWN_SEVERITY),
        "timestamp": iso_timestamp(alert.fired_at or alert.active_at),
        "class": alert.name,
        "custom_details": {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "value": alert.value,
        },
    }
    if "component" in alert.labels:
        payload["component"] = alert.labels["component"]
    return payload


def _links(alert: Alert, notification: Notification) -> list[tuple[str, str]]:
    out = []
    runbook = runbook_url(alert, notification.external_url)
    if runbook:
        out.append((runbook, "Runbook"))
    if alert.generator_url:
        out.append((alert.generator_url, "Rule expression"))
    return out
