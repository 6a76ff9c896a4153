"""The notifier shell: alert transitions in, messages out through the channels.

The evaluator (and the critical-log hook) only append to a queue, so they never wait on a
channel. One background thread runs :meth:`Notifier.tick`: record the transitions, apply
silences and inhibition, route and group (the pure functions of
:mod:`codequal.alerting.routing`), then deliver. A failed delivery is retried with exponential
backoff and jitter on later ticks (no thread sleeps on a retry); every message and every
suppression is a row in ``alert_notifications``, and each group's last message is persisted so
a restarted process neither loses nor re-pages an alert.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from codequal.alerting.channels.base import Channel, Notification, NotificationStatus
from codequal.alerting.delivery import (
    NOTIFY_RETRY,
    Courier,
    Delivery,
    GroupId,
    guarded,
    notification_row,
)
from codequal.alerting.log_alerts import LogAlerts, log_entry_alert
from codequal.alerting.model import Alert, Transition
from codequal.alerting.routing import (
    DEFAULT_INHIBIT_RULES,
    DEFAULT_ROUTES,
    GroupPlan,
    GroupState,
    InhibitRule,
    Route,
    Silence,
    Timing,
    group_key,
    group_labels,
    inhibited_by,
    plan_forward,
    plan_group,
    route,
    silenced_by,
)
from codequal.alerting.store import AlertingStore
from codequal.retry import Backoff
from codequal.telemetry.logging import LogEntry
from codequal.telemetry.setup import get_logger


@dataclass(frozen=True)
class NotifierConfig:
    timing: Timing = field(default_factory=Timing)
    retry: Backoff = NOTIFY_RETRY
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    inhibit_rules: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES
    forward_to: tuple[str, ...] = ("alertmanager",)  # get every alert; they route themselves
    resend_interval: float = 60.0
    log_alert_ttl: float = 300.0  # a critical log alert resolves this long after its last entry
    tick_interval: float = 1.0
    external_url: str = ""
    max_alerts_per_message: int = 50
    max_queue: int = 10_000


@dataclass
class _Runtime:
    """Everything the worker thread mutates; the API reads copies under the lock."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    muted: dict[str, str] = field(default_factory=dict)  # fingerprint -> why
    groups: dict[GroupId, GroupState] = field(default_factory=dict)
    forwarded: dict[str, dict[str, float]] = field(default_factory=dict)


class Notifier:
    """Routes alerts to channels on a background thread; see the module docstring."""

    def __init__(
        self,
        store: AlertingStore,
        channels: Mapping[str, Channel],
        config: NotifierConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleeper: Callable[[float], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.config = config or NotifierConfig()
        self._clock = clock
        self._rand = rand
        self._sleep = sleeper or self._wait
        self._queue: deque[Transition | Alert | list[Alert]] = deque(maxlen=self.config.max_queue)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._rt = _Runtime()
        self._log_alerts = LogAlerts(self.config.log_alert_ttl)
        self._restored = False
        self._active = True
        # Called at the start of each tick to pull alerts from elsewhere (other replicas'
        # critical log entries, read from the shared store by the leader).
        self.sources: list[Callable[[], None]] = []
        self._log = get_logger(service="notifier")
        self.courier = Courier(store, self.channels, self.config.retry, rand, self._log)

    # -- the producer side: never blocks, never raises ------------------------------------

    def submit(self, transitions: Sequence[Transition], current: Sequence[Alert] = ()) -> None:
        """Queue the evaluator's transitions (and, optionally, fresh copies of current alerts)."""
        self._queue.extend(transitions)
        if current:
            self._queue.append(list(current))
        self._wake.set()

    def log_subscriber(self, entries: Sequence[LogEntry]) -> None:
        """For ``AlertHook.subscribe``: each critical entry becomes a firing alert."""
        base = self.config.external_url
        self._queue.extend(log_entry_alert(e, base) for e in entries if e.level == "critical")
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    def restore(self) -> None:
        """Resume from the database: firing alerts, group state, last channel outcomes.

        The first tick calls it; a restarted process so carries on where the last one stopped.
        """
        now = self._clock()
        rt = self._rt
        rt.groups = self.store.load_group_states()
        alerts = {a.fingerprint: a for a in self.store.active_alerts()}
        notified = set().union(*(s.notified for s in rt.groups.values())) - alerts.keys()
        # Alerts that resolved before their resolve went out still get it.
        alerts.update((a.fingerprint, a) for a in self.store.latest_alerts(notified))
        with self._lock:
            rt.alerts = alerts
        self._log_alerts.resume(alerts, now)
        self.store.abandon_retrying(now)
        self.courier.restore_outcomes()

    def start(self) -> None:
        """Run ticks on a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="cq-notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def set_active(self, active: bool) -> None:
        """Leadership: only the leader routes and delivers. A new leader first restores what
        the previous one persisted (firing alerts, group state), so it neither loses nor
        repeats a page; a follower drops what it queued (the leader sees the same alerts)."""
        if active and not self._active:
            self._restored = False
        self._active = active
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._active:
                self._queue.clear()
                self._sleep(self.config.tick_interval)
                continue
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one bad tick
                self._log.error("notifier tick failed", error=exc)
            self._sleep(self._next_wait())

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _next_wait(self) -> float:
        now = self._clock()
        due = self.courier.next_due()
        wait = (
            self.config.tick_interval if due is None else min(due - now, self.config.tick_interval)
        )
        return max(0.0, wait)

    # -- reading (API, /health) -----------------------------------------------------------

    def active_alerts(self) -> list[tuple[Alert, str]]:
        """Pending and firing alerts with why each is muted ("" when it is not)."""
        with self._lock:
            alerts = [a for a in self._rt.alerts.values() if a.status != "resolved"]
            muted = dict(self._rt.muted)
        return [(a, muted.get(a.fingerprint, "")) for a in alerts]

    def channel_health(self) -> dict[str, dict[str, Any]]:
        return self.courier.health()

    # -- one round ------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Ingest, plan, deliver what is due. Runs on the worker thread (or a test's)."""
        now = self._clock() if now is None else now
        if not self._restored:
            self._restored = True  # once: a database that is down now must not stop paging
            self._guard("restore its state", self.restore)
        for source in self.sources:
            self._guard("read alerts from another replica", source)
        self._ingest(now)
        self._expire_log_alerts(now)
        self._plan(now)
        self._deliver(now)
        self._collect()

    def _ingest(self, now: float) -> None:
        transitions: list[Transition] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, Transition):
                transitions.append(item)
            elif isinstance(item, Alert):
                known = self._rt.alerts.get(item.fingerprint)
                transitions.extend(self._log_alerts.observe(item, known, now))
            else:
                seen = {t.fingerprint for t in transitions}
                transitions.extend(self._refresh(item, seen, now))
        for t in transitions:
            self._apply(t)
        self._guard("record alert transitions", self.store.record_transitions, transitions)

    def _apply(self, t: Transition) -> None:
        alert = t.alert
        if t.to_status == "inactive":  # gone without a resolve: treat it as resolved
            alert = replace(alert, status="resolved", resolved_at=alert.resolved_at or t.at)
        with self._lock:
            self._rt.alerts[t.fingerprint] = alert

    def _refresh(self, current: list[Alert], seen: set[str], now: float) -> list[Transition]:
        """Fresh values and annotations for alerts whose status has not changed; and the
        transitions of alerts the evaluator has but this notifier never heard of (a leader
        that died between persisting its evaluation and recording the transition)."""
        adopted = []
        with self._lock:
            for alert in current:
                known = self._rt.alerts.get(alert.fingerprint)
                if alert.fingerprint in seen:
                    continue  # its transition is in this very batch
                if known is None and alert.status != "resolved":
                    adopted.append(
                        Transition(
                            alert.fingerprint, alert.name, "inactive", alert.status, now, alert
                        )
                    )
                elif known is not None and known.status == alert.status:
                    self._rt.alerts[alert.fingerprint] = alert
        return adopted

    def _expire_log_alerts(self, now: float) -> None:
        transitions = self._log_alerts.expire(self._rt.alerts, now)
        for t in transitions:
            self._apply(t)
        self._guard("record alert transitions", self.store.record_transitions, transitions)

    # -- planning -------------------------------------------------------------------------

    def _plan(self, now: float) -> None:
        alerts = [a for a in self._rt.alerts.values() if a.status != "pending"]
        muted = self._mute(alerts, now)
        groups: dict[GroupId, list[Alert]] = defaultdict(list)
        for alert in alerts:
            key = group_key(group_labels(alert.labels))
            for name in self._routed(alert):
                groups[(key, name)].append(alert)
        busy = self.courier.busy_groups()
        for gid in set(groups) | set(self._rt.groups):
            if gid not in busy:
                plan = plan_group(
                    self._rt.groups.get(gid), groups.get(gid, []), muted, now, self.config.timing
                )
                self._act(gid, plan, now)
        for name in self.config.forward_to:
            self._forward(name, alerts, now)

    def _routed(self, alert: Alert) -> list[str]:
        names = route(alert.labels, self.config.routes)
        return [n for n in names if n in self.channels and self.channels[n].configured]

    def _mute(self, alerts: Sequence[Alert], now: float) -> frozenset[str]:
        """Apply silences and inhibition to the firing alerts; record each new suppression."""
        firing = [a for a in alerts if a.status == "firing"]
        silences: list[Silence] = (
            self._guard("read silences", self.store.active_silences, now) or []
        )
        muted: dict[str, str] = {}
        for alert in firing:
            ids = silenced_by(alert.labels, silences, now)
            source = None if ids else inhibited_by(alert, firing, self.config.inhibit_rules)
            if ids:
                muted[alert.fingerprint] = f"silenced by {', '.join(ids)}"
            elif source is not None:
                muted[alert.fingerprint] = f"inhibited by {source.name} ({source.fingerprint})"
        for alert in firing:
            why = muted.get(alert.fingerprint)
            if why and self._rt.muted.get(alert.fingerprint) != why:
                self._record_suppressed(alert, why, now)
        with self._lock:
            self._rt.muted = muted
        return frozenset(muted)

    def _record_suppressed(self, alert: Alert, why: str, now: float) -> None:
        labels = group_labels(alert.labels)
        single = Notification("", "firing", (alert,), group_key(labels), labels)
        for name in self._routed(alert):
            row = notification_row(name, single, "suppressed", now)
            row |= {"status": "suppressed", "error": why}
            self._guard("record a suppression", self.store.add_notification, row)

    def _act(self, gid: GroupId, plan: GroupPlan, now: float) -> None:
        previous = self._rt.groups.get(gid)
        if plan.on_success is None:
            if plan.idle:
                if self._rt.groups.pop(gid, None) is not None:
                    self._guard("drop group state", self.store.drop_group, *gid)
            else:
                self._rt.groups[gid] = plan.state
            return
        expected = previous.flushed_at if previous is not None else None
        claimed = self._guard("claim group", self.store.claim_group, *gid, expected, plan.state)
        if claimed is False:  # another process sent it; follow its state
            stored = self._guard("load group", self.store.load_group, *gid)
            self._rt.groups[gid] = stored or plan.state
            return
        self._rt.groups[gid] = plan.state
        self._queue_delivery(gid, plan, now)

    def _queue_delivery(self, gid: GroupId, plan: GroupPlan, now: float) -> None:
        key, channel = gid
        first = plan.send[0]
        limit = self.config.max_alerts_per_message
        notification = Notification(
            receiver=channel,
            status=plan.status,
            alerts=plan.send[:limit],
            group_key=key,
            group_labels=group_labels(first.labels),
            external_url=self.config.external_url,
            truncated_alerts=max(0, len(plan.send) - limit),
        )
        self.courier.add(
            Delivery(channel, notification, plan.reason, gid, plan.on_success, due_at=now)
        )

    def _forward(self, name: str, alerts: Sequence[Alert], now: float) -> None:
        channel = self.channels.get(name)
        if channel is None or not channel.configured:
            return
        sent = self._rt.forwarded.get(name, {})
        send, self._rt.forwarded[name] = plan_forward(
            sent, alerts, now, self.config.resend_interval
        )
        if send:
            firing = any(a.status == "firing" for a in send)
            status: NotificationStatus = "firing" if firing else "resolved"
            notification = Notification(name, status, send, external_url=self.config.external_url)
            self.courier.add(Delivery(name, notification, "forward", due_at=now))

    # -- delivering -----------------------------------------------------------------------

    def _deliver(self, now: float) -> None:
        for d in self.courier.run_due(now):
            if d.group is not None and d.on_success is not None:
                self._rt.groups[d.group] = d.on_success
                self._guard("save group state", self.store.save_group, *d.group, d.on_success)

    def _collect(self) -> None:
        """Forget resolved alerts nobody still owes a message for."""
        owed: set[str] = set().union(*(s.notified for s in self._rt.groups.values()))
        for sent in self._rt.forwarded.values():
            owed |= sent.keys()
        with self._lock:
            for fp, alert in list(self._rt.alerts.items()):
                if alert.status == "resolved" and fp not in owed:
                    del self._rt.alerts[fp]

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return guarded(self._log, what, fn, *args)
