"""The records that flow between rule evaluation, the scheduler and the notifier.

They mirror Alertmanager's alert model (labels, annotations, startsAt / endsAt,
generatorURL) so the same objects can be posted to ``/api/v2/alerts`` or rendered in
Alertmanager's webhook JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from codequal.vocabulary import ALERT_SEVERITIES, iso_timestamp

AlertStatus = Literal["pending", "firing", "resolved"]
SEVERITIES = ALERT_SEVERITIES


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable id for a label set (the alert's identity across evaluations and restarts)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One alert instance: an alerting rule's labels for one series, and its lifecycle."""

    labels: dict[str, str]  # includes alertname and severity
    annotations: dict[str, str]  # summary, description, runbook_url, ... (templates rendered)
    status: AlertStatus
    active_at: float  # Unix seconds the condition first held (pending since)
    fired_at: float | None = None  # when it became firing (after `for`)
    resolved_at: float | None = None
    value: float | None = None
    generator_url: str = ""
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", label_fingerprint(self.labels))

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    def to_alertmanager(self) -> dict[str, Any]:
        """The shape Alertmanager's ``POST /api/v2/alerts`` takes (times RFC 3339)."""
        body: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": iso_timestamp(self.fired_at or self.active_at),
            "generatorURL": self.generator_url,
        }
        if self.resolved_at is not None:
            body["endsAt"] = iso_timestamp(self.resolved_at)
        return body


@dataclass(frozen=True)
class Transition:
    """An immutable lifecycle event, stored so a restart neither loses nor re-pages an alert."""

    fingerprint: str
    alertname: str
    from_status: AlertStatus | Literal["inactive"]
    to_status: AlertStatus | Literal["inactive"]
    at: float
    alert: Alert
