"""The notifier shell on a real database (SQLite and PostgreSQL): grouping, retries with
backoff, failures recorded, silences, inhibition, critical log entries, Alertmanager resends,
and restarts that neither lose nor re-page an alert. Time is an argument of ``tick``."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from codequal.alerting.channels import Channel, Notification
from codequal.alerting.channels.slack import SlackChannel
from codequal.alerting.log_alerts import LOG_ALERT
from codequal.alerting.model import Alert, Transition
from codequal.alerting.notifier import Notifier, NotifierConfig
from codequal.alerting.routing import Timing, parse_matcher
from codequal.alerting.store import AlertingStore
from codequal.retry import Backoff
from codequal.storage import Database
from codequal.telemetry.logging import ErrorInfo, LogEntry

from ..unit.alerting_notify.helpers import T0, ScriptedChannel, Step, alert, capture_server

CONFIG = NotifierConfig(
    timing=Timing(group_wait=30, group_interval=300, repeat_interval=4 * 3600),
    retry=Backoff(base=2, cap=60, jitter=0.5, max_attempts=4),
    resend_interval=60,
    log_alert_ttl=300,
)
HFR = alert("HighFailureRate", "critical")


def fire(a: Alert, at: float = T0) -> Transition:
    return Transition(a.fingerprint, a.name, "pending", "firing", at, a)


def resolve(a: Alert, at: float) -> Transition:
    gone = replace(a, status="resolved", resolved_at=at)
    return Transition(a.fingerprint, a.name, "firing", "resolved", at, gone)


class Rig:
    """A notifier with scripted channels on the test database; ``rand`` 0 = full delays."""

    def __init__(self, database: Database, **scripts: Sequence[Step]) -> None:
        self.store = AlertingStore(database)
        self.channels = {
            name: ScriptedChannel(name, scripts.get(name, ()))
            for name in ("slack", "email", "pagerduty", "webhook")
        }
        self.notifier = self.restart()

    def restart(self, config: NotifierConfig = CONFIG) -> Notifier:
        channels: dict[str, Channel] = dict(self.channels)
        self.notifier = Notifier(self.store, channels, config, clock=lambda: T0, rand=lambda: 0.0)
        return self.notifier

    def run(self, *times: float) -> None:
        for t in times:
            self.notifier.tick(t)

    def sent(self, channel: str) -> list[Notification]:
        return self.channels[channel].sent

    def rows(self, **filters: str) -> list[dict[str, object]]:
        return self.store.notifications(**filters)  # type: ignore[arg-type]


def test_critical_alert_pages_pagerduty_slack_and_webhook_after_group_wait(
    database: Database,
) -> None:
    rig = Rig(database)
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 29)
    assert all(c.calls == 0 for c in rig.channels.values())
    rig.run(T0 + 30)
    for name in ("pagerduty", "slack", "webhook"):
        (note,) = rig.sent(name)
        assert note.status == "firing" and note.alerts == (HFR,)
        assert note.group_key == '{}:{alertname="HighFailureRate", severity="critical"}'
    assert rig.sent("email") == []
    rows = rig.rows()
    assert {(r["channel"], r["status"], r["reason"], r["attempts"]) for r in rows} == {
        ("pagerduty", "sent", "new", 1), ("slack", "sent", "new", 1), ("webhook", "sent", "new", 1)
    }  # fmt: skip
    assert rows[0]["fingerprints"] == [HFR.fingerprint]


def test_transitions_are_recorded_as_history(database: Database) -> None:
    rig = Rig(database)
    rig.notifier.submit([fire(HFR, T0)])
    rig.run(T0)
    rig.notifier.submit([resolve(HFR, T0 + 100)])
    rig.run(T0 + 100)
    history = rig.store.transitions()
    assert [(h["from_status"], h["to_status"], h["at"]) for h in history] == [
        ("firing", "resolved", T0 + 100),
        ("pending", "firing", T0),
    ]
    assert history[0]["alert"]["labels"] == HFR.labels


def test_transient_failures_are_retried_with_backoff_until_sent(database: Database) -> None:
    rig = Rig(database, slack=["transient", "transient"])
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    (row,) = rig.rows(channel="slack")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("retrying", 1, T0 + 32)
    assert row["error"] == "endpoint answered HTTP 503"
    rig.run(T0 + 31)  # before the backoff: nothing
    assert rig.channels["slack"].calls == 1
    rig.run(T0 + 32)  # second attempt fails, waits 4 s
    assert rig.rows(channel="slack")[0]["next_attempt_at"] == T0 + 36
    rig.run(T0 + 36)
    (row,) = rig.rows(channel="slack")
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 3, None)
    assert len(rig.sent("slack")) == 1
    assert rig.notifier.channel_health()["slack"]["status"] == "ok"


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() -> None:
    policy = Backoff(base=2, cap=30, jitter=0.5, max_attempts=10)
    assert [policy.delay(n, 0.0) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert policy.delay(3, 0.999) == pytest.approx(4.004)


def test_permanent_failure_is_recorded_visible_in_health_and_not_retried(
    database: Database,
) -> None:
    rig = Rig(database, pagerduty=["permanent"])
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30, T0 + 60, T0 + 200)
    (row,) = rig.rows(channel="pagerduty")
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"] == "endpoint answered HTTP 404: no_service"
    health = rig.notifier.channel_health()["pagerduty"]
    assert health["status"] == "error"
    assert "failed" in health["message"] and "no_service" in health["message"]
    # The group was not marked notified, so the next group interval tries again.
    rig.run(T0 + 330)
    assert len(rig.sent("pagerduty")) == 1
    assert rig.rows(channel="pagerduty")[0]["status"] == "sent"


def test_retries_give_up_after_max_attempts(database: Database) -> None:
    rig = Rig(database, webhook=["transient"] * 10)
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30, T0 + 32, T0 + 36, T0 + 44, T0 + 60)
    (row,) = rig.rows(channel="webhook")
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 4, None)


def test_a_channel_that_crashes_does_not_stop_the_others(database: Database) -> None:
    rig = Rig(database, slack=["crash"])
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    assert len(rig.sent("pagerduty")) == 1
    (row,) = rig.rows(channel="slack")
    assert row["status"] == "retrying" and row["error"] == "RuntimeError: bug in channel"


def test_restart_does_not_repage_an_already_notified_firing_alert(database: Database) -> None:
    rig = Rig(database)
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    assert len(rig.sent("pagerduty")) == 1
    rig.restart()  # a new process: nothing in memory, same database
    rig.run(T0 + 60, T0 + 400, T0 + 3600)
    assert len(rig.sent("pagerduty")) == 1
    assert [a.fingerprint for a, _ in rig.notifier.active_alerts()] == [HFR.fingerprint]
    rig.run(T0 + 30 + 4 * 3600)  # the repeat interval still applies across the restart
    assert len(rig.sent("pagerduty")) == 2
    assert rig.rows(channel="pagerduty")[0]["reason"] == "repeat"


def test_restart_still_sends_the_resolve_it_owed(database: Database) -> None:
    rig = Rig(database)
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    rig.notifier.submit([resolve(HFR, T0 + 100)])
    rig.run(T0 + 100)  # recorded, but the group interval has not passed: nothing sent yet
    rig.restart()
    rig.run(T0 + 330)
    last = rig.sent("pagerduty")[-1]
    assert last.status == "resolved" and last.alerts[0].resolved_at == T0 + 100
    rig.run(T0 + 700)
    assert rig.notifier.active_alerts() == []
    assert len(rig.sent("pagerduty")) == 2


def test_retries_left_by_a_stopped_process_are_failed_and_the_group_resent(
    database: Database,
) -> None:
    rig = Rig(database, slack=["transient"])
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    assert rig.rows(channel="slack")[0]["status"] == "retrying"
    rig.restart()  # the process stopped during the backoff
    rig.run(T0 + 40)
    (row,) = rig.rows(channel="slack")
    assert row["status"] == "failed"
    assert row["error"] == "endpoint answered HTTP 503 (abandoned at shutdown)"
    rig.run(T0 + 330)  # not marked notified: the next group interval sends it
    assert len(rig.sent("slack")) == 1


def test_two_processes_on_one_database_send_a_group_once(database: Database) -> None:
    rig = Rig(database)
    other_channels = {"pagerduty": ScriptedChannel("pagerduty")}
    other = Notifier(rig.store, other_channels, CONFIG, rand=lambda: 0.0)
    for n in (rig.notifier, other):
        n.submit([fire(HFR)])
        n.tick(T0)
    rig.run(T0 + 30)
    other.tick(T0 + 30)
    assert len(rig.sent("pagerduty")) + len(other_channels["pagerduty"].sent) == 1


def test_silenced_alert_is_suppressed_once_and_notified_after_the_silence_ends(
    database: Database,
) -> None:
    rig = Rig(database)
    silence = rig.store.create_silence(
        [parse_matcher('alertname="HighFailureRate"')],
        starts_at=T0,
        ends_at=T0 + 600,
        created_by="alice",
        comment="deploy",
        now=T0,
    )
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30, T0 + 330)
    assert all(c.calls == 0 for c in rig.channels.values())
    rows = rig.rows(status="suppressed")
    assert {r["channel"] for r in rows} == {"pagerduty", "slack", "webhook"}  # once each
    assert rows[0]["error"] == f"silenced by {silence.id}"
    assert rig.notifier.active_alerts()[0][1] == f"silenced by {silence.id}"
    rig.run(T0 + 600, T0 + 630)
    assert len(rig.sent("pagerduty")) == 1


def test_expired_silence_stops_muting_at_once(database: Database) -> None:
    rig = Rig(database)
    silence = rig.store.create_silence(
        [parse_matcher('severity="critical"')],
        starts_at=T0, ends_at=T0 + 86_400, created_by="bob", comment="", now=T0,
    )  # fmt: skip
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    assert rig.channels["pagerduty"].calls == 0
    rig.store.expire_silence(silence.id, T0 + 40)
    rig.run(T0 + 40, T0 + 70)
    assert len(rig.sent("pagerduty")) == 1


def test_critical_disk_alert_inhibits_the_disk_warning(database: Database) -> None:
    rig = Rig(database)
    critical = alert("DeepWikiDiskUsageCritical", "critical", component="deepwiki")
    warning = alert("DeepWikiDiskUsageHigh", "warning", component="deepwiki")
    rig.notifier.submit([fire(critical), fire(warning)])
    rig.run(T0, T0 + 30)
    slack = [n.alerts[0].name for n in rig.sent("slack")]
    assert slack == ["DeepWikiDiskUsageCritical"]
    (row,) = rig.rows(status="suppressed", channel="slack")
    assert row["alertname"] == "DeepWikiDiskUsageHigh"
    assert row["error"] == f"inhibited by DeepWikiDiskUsageCritical ({critical.fingerprint})"


def test_critical_log_entry_becomes_an_alert_and_resolves_after_a_quiet_while(
    database: Database,
) -> None:
    rig = Rig(database)
    entry = LogEntry(
        timestamp=T0, level="critical", service="worker", trace_id="ab" * 16,
        action="job queue lost", error=ErrorInfo("ConnectionError", "redis is gone"),
    )  # fmt: skip
    rig.notifier.log_subscriber([entry, replace(entry, level="error", action="ignored")])
    rig.run(T0, T0 + 30)
    (note,) = rig.sent("pagerduty")
    (a,) = note.alerts
    assert a.labels == {
        "alertname": LOG_ALERT, "severity": "critical", "service": "worker",
        "action": "job queue lost",
    }  # fmt: skip
    assert a.annotations["summary"] == "job queue lost"
    assert a.annotations["description"] == f"ConnectionError: redis is gone (trace {'ab' * 16})"
    rig.notifier.log_subscriber([replace(entry, timestamp=T0 + 200)])  # again: stays firing
    rig.run(T0 + 200, T0 + 330, T0 + 499)
    assert len(rig.sent("pagerduty")) == 1
    rig.run(T0 + 500, T0 + 630)  # 300 s after the last entry it resolves
    assert rig.sent("pagerduty")[-1].status == "resolved"
    history = rig.store.transitions(alertname=LOG_ALERT)
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("firing", "resolved"),
        ("inactive", "firing"),
    ]


def test_alertmanager_gets_every_firing_alert_each_resend_interval_and_the_resolve_once(
    database: Database,
) -> None:
    rig = Rig(database)
    am = ScriptedChannel("alertmanager")
    channels: dict[str, Channel] = {"alertmanager": am}
    notifier = Notifier(rig.store, channels, CONFIG, rand=lambda: 0.0)
    notifier.submit([fire(HFR), fire(alert("SlowAnalysis", "warning", status="pending"))])
    notifier.tick(T0)  # no group_wait: Alertmanager groups on its side
    notifier.tick(T0 + 59)
    notifier.tick(T0 + 60)
    notifier.submit([resolve(HFR, T0 + 70)])
    notifier.tick(T0 + 70)
    notifier.tick(T0 + 200)
    assert [(n.status, [a.status for a in n.alerts]) for n in am.sent] == [
        ("firing", ["firing"]),
        ("firing", ["firing"]),
        ("resolved", ["resolved"]),
    ]


def test_pending_alerts_are_listed_but_never_notified(database: Database) -> None:
    rig = Rig(database)
    pending = alert("SlowAnalysis", "warning", status="pending")
    rig.notifier.submit(
        [Transition(pending.fingerprint, pending.name, "inactive", "pending", T0, pending)]
    )
    rig.run(T0, T0 + 30, T0 + 400)
    assert all(c.calls == 0 for c in rig.channels.values())
    assert [a.status for a, _ in rig.notifier.active_alerts()] == ["pending"]


def test_unconfigured_channels_are_skipped_and_say_why_in_health(database: Database) -> None:
    rig = Rig(database)
    rig.channels["pagerduty"] = ScriptedChannel("pagerduty", configured=False)
    rig.restart()
    rig.notifier.submit([fire(HFR)])
    rig.run(T0, T0 + 30)
    assert rig.channels["pagerduty"].calls == 0 and len(rig.sent("slack")) == 1
    health = rig.notifier.channel_health()
    assert health["pagerduty"] == {
        "status": "disabled", "latency": None, "message": "CODEQUAL_PAGERDUTY_URL is not set"
    }  # fmt: skip
    assert health["email"]["message"] == "configured; nothing sent yet"
    assert health["slack"]["status"] == "ok"
    rig.restart()
    rig.run(T0 + 40)
    assert rig.notifier.channel_health()["slack"]["status"] == "ok"  # restored from the DB


class GatedSlack(SlackChannel):
    """The real Slack channel behind a gate: a channel that hangs."""

    def __init__(self, url: str, gate: threading.Event) -> None:
        super().__init__(url)
        self.gate = gate

    def notify(self, notification: Notification) -> None:
        self.gate.wait(10)
        super().notify(notification)


def test_notifier_delivers_on_its_background_thread_without_blocking_submit(
    database: Database,
) -> None:
    gate = threading.Event()
    with capture_server() as server:
        config = replace(CONFIG, timing=Timing(0, 300, 3600), tick_interval=0.05)
        slack = GatedSlack(server.url + "/hook", gate)
        notifier = Notifier(AlertingStore(database), {"slack": slack}, config)
        notifier.start()
        try:
            start = time.monotonic()
            notifier.submit([fire(replace(HFR, fired_at=time.time()))])
            notifier.submit([fire(alert("Other", "warning"))])
            # The worker may already be stuck in the gated channel; submit must not notice.
            assert time.monotonic() - start < 1.0  # the gate holds the worker for 10 s
            gate.set()
            first = server.next(10).json()
            assert first["text"].startswith("[FIRING:1]")
        finally:
            assert notifier.stop(10)
