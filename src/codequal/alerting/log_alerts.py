"""Critical log entries as alerts: ``CriticalLogEntry`` fires on an entry and resolves after
a quiet while, through the same routing, silences and channels as rule alerts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from codequal.alerting.model import Alert, Transition
from codequal.telemetry.logging import LogEntry

LOG_ALERT = "CriticalLogEntry"


def log_entry_alert(entry: LogEntry, external_url: str = "") -> Alert:
    """A ``critical`` LogEntry as a firing alert; one alert per (service, action)."""
    description = f"{entry.error.type}: {entry.error.message}" if entry.error else entry.action
    return Alert(
        labels={
            "alertname": LOG_ALERT,
            "severity": "critical",
            "service": entry.service,
            # Actions are the log call's message: a bounded set, so this label is too.
            "action": entry.action[:200],
        },
        annotations={
            "summary": entry.action,
            "description": f"{description} (trace {entry.trace_id})",
            "runbook_url": f"/runbooks/{LOG_ALERT}",
        },
        status="firing",
        active_at=entry.timestamp,
        fired_at=entry.timestamp,
        generator_url=f"{external_url.rstrip('/')}/api/monitoring/logs?traceId={entry.trace_id}",
    )


class LogAlerts:
    """When each log alert was last seen, and the transitions that follows from it."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._seen: dict[str, float] = {}

    def resume(self, alerts: Mapping[str, Alert], now: float) -> None:
        """After a restart: firing log alerts get a fresh ``ttl`` before they resolve."""
        self._seen = {fp: now for fp, a in alerts.items() if a.name == LOG_ALERT}

    def observe(self, alert: Alert, known: Alert | None, now: float) -> list[Transition]:
        """An entry arrived: fire, or (already firing) only postpone the resolve."""
        self._seen[alert.fingerprint] = now
        if known is not None and known.status == "firing":
            return []
        before = known.status if known is not None else "inactive"
        return [Transition(alert.fingerprint, LOG_ALERT, before, "firing", now, alert)]

    def expire(self, alerts: Mapping[str, Alert], now: float) -> list[Transition]:
        """Resolve the log alerts quiet for ``ttl`` seconds."""
        out = []
        for fp in [fp for fp, seen in self._seen.items() if now >= seen + self._ttl]:
            del self._seen[fp]
            alert = alerts.get(fp)
            if alert is not None and alert.status == "firing":
                gone = replace(alert, status="resolved", resolved_at=now)
                out.append(Transition(fp, LOG_ALERT, "firing", "resolved", now, gone))
        return out
