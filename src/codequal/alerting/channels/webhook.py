"""Generic webhook in Alertmanager's webhook JSON (version "4").

Anything already written for Alertmanager's webhook receiver (bots, ticket bridges, runbook
automation) works unchanged against CodeQual's built-in notifier.
"""

from __future__ import annotations

from codequal.alerting.channels.base import JSON, JsonPostChannel, Notification
from codequal.alerting.model import Alert
from codequal.vocabulary import iso_timestamp

# Alertmanager's rendering of "not ended yet" (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


class WebhookChannel(JsonPostChannel):
    """Posts the version 4 payload to ``CODEQUAL_WEBHOOK_URL``."""

    name = "webhook"
    variable = "CODEQUAL_WEBHOOK_URL"

    def payload(self, notification: Notification) -> JSON:
        return webhook_payload(notification)


def webhook_payload(notification: Notification) -> JSON:
    """The exact keys Alertmanager's webhook receiver sends."""
    return {
        "receiver": notification.receiver,
        "status": notification.status,
        "alerts": [webhook_alert(a) for a in notification.alerts],
        "groupLabels": dict(notification.group_labels or {}),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": notification.truncated_alerts,
    }


def webhook_alert(alert: Alert) -> JSON:
    ended = alert.resolved_at if alert.status == "resolved" else None
    return {
        "status": "resolved" if alert.status == "resolved" else "firing",
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": iso_timestamp(alert.fired_at or alert.active_at),
        "endsAt": iso_timestamp(ended) if ended is not None else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }
