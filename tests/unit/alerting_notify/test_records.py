"""Pure pieces of the notifier: critical log entries as alerts, Alertmanager's alert body,
notification titles and common labels."""

from __future__ import annotations

from codequal.alerting.channels import Notification
from codequal.alerting.channels.alertmanager import alertmanager_alert
from codequal.alerting.log_alerts import LOG_ALERT, LogAlerts, log_entry_alert
from codequal.telemetry.logging import LogEntry

from .helpers import T0, alert, resolved

ENTRY = LogEntry(T0, "critical", "api", "f" * 32, "database unreachable")


def test_critical_log_entry_becomes_a_firing_critical_alert() -> None:
    a = log_entry_alert(ENTRY, "https://cq.example/")
    assert a.labels == {
        "alertname": LOG_ALERT,
        "severity": "critical",
        "service": "api",
        "action": "database unreachable",
    }
    assert a.annotations["summary"] == "database unreachable"
    assert a.status == "firing" and a.fired_at == T0
    assert a.generator_url == f"https://cq.example/api/monitoring/logs?traceId={'f' * 32}"


def test_log_alert_fires_once_and_resolves_ttl_after_the_last_entry() -> None:
    tracker = LogAlerts(ttl=300)
    a = log_entry_alert(ENTRY)
    (fired,) = tracker.observe(a, None, T0)
    assert (fired.from_status, fired.to_status) == ("inactive", "firing")
    assert tracker.observe(a, a, T0 + 100) == []  # still firing: only postpones the resolve
    assert tracker.expire({a.fingerprint: a}, T0 + 399) == []
    (gone,) = tracker.expire({a.fingerprint: a}, T0 + 400)
    assert (gone.to_status, gone.alert.resolved_at) == ("resolved", T0 + 400)
    assert tracker.expire({a.fingerprint: a}, T0 + 9999) == []


def test_log_alert_resumed_after_restart_resolves_ttl_after_the_restart() -> None:
    tracker = LogAlerts(ttl=300)
    a = log_entry_alert(ENTRY)
    tracker.resume({a.fingerprint: a, "other": alert()}, T0 + 1000)
    assert tracker.expire({a.fingerprint: a}, T0 + 1299) == []
    assert len(tracker.expire({a.fingerprint: a}, T0 + 1300)) == 1


def test_alertmanager_body_bounds_firing_alerts_and_ends_resolved_ones() -> None:
    a = alert()
    body = alertmanager_alert(a, T0 + 10, valid_for=240)
    assert body == {
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": "2027-01-15T08:00:00.000Z",
        "generatorURL": a.generator_url,
        "endsAt": "2027-01-15T08:04:10.000Z",
    }
    assert alertmanager_alert(resolved(a, T0 + 5), T0 + 10, 240)["endsAt"] == (
        "2027-01-15T08:00:05.000Z"
    )


def test_notification_title_counts_the_alerts_of_its_status() -> None:
    a, b = alert(instance="a"), alert(instance="b")
    firing = Notification("slack", "firing", (a, resolved(b, T0)))
    assert firing.title() == "[FIRING:1] HighFailureRate (critical)"
    assert firing.common_labels == {"alertname": "HighFailureRate", "severity": "critical"}
    done = Notification("slack", "resolved", (resolved(a, T0), resolved(b, T0)))
    assert done.title() == "[RESOLVED:2] HighFailureRate (critical)"
