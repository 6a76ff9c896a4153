"""Delivering messages: one try per due delivery, retries with backoff, every attempt recorded.

A failed delivery is not retried by sleeping: it gets a ``due_at`` in the future and the
notifier's next tick after that time tries again, so one slow or broken channel never holds the
worker (or the other channels) for the length of its backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from codequal.alerting.channels.base import Channel, Notification
from codequal.alerting.routing import GroupState
from codequal.alerting.store import AlertingStore
from codequal.exceptions import DeliveryError
from codequal.retry import Backoff
from codequal.vocabulary import iso_timestamp

GroupId = tuple[str, str]  # (group key, channel)
AttemptStatus = Literal["sent", "failed", "retrying"]


# Notifications give up after five tries over about half a minute; a spooled sink never does.
NOTIFY_RETRY = Backoff(base=2.0, cap=120.0, jitter=0.5, max_attempts=5)


@dataclass
class Delivery:
    """One message on its way to one channel."""

    channel: str
    notification: Notification
    reason: str  # new | changed | resolved | repeat | forward
    group: GroupId | None = None  # None for forwarders (Alertmanager)
    on_success: GroupState | None = None  # the group's state once delivered
    attempts: int = 0
    due_at: float = 0.0
    record_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    status: str
    at: float
    message: str


def guarded(log: Any, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; log and return None if it raises.

    The database being down must not stop paging: the notifier carries on from memory.
    """
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - see above
        log.error(f"notifier could not {what}", error=exc)
        return None


def notification_row(
    channel: str, notification: Notification, reason: str, now: float
) -> dict[str, Any]:
    """A new ``alert_notifications`` row for ``notification`` on ``channel``."""
    labels = notification.group_labels or notification.common_labels
    return {
        "created_at": now,
        "updated_at": now,
        "channel": channel,
        "group_key": notification.group_key[:500],
        "alertname": labels.get("alertname", "")[:200],
        "kind": notification.status,
        "reason": reason,
        "fingerprints": [a.fingerprint for a in notification.alerts],
        "status": "pending",
        "attempts": 0,
    }


def channel_health(
    channels: Mapping[str, Channel], outcomes: Mapping[str, Outcome]
) -> dict[str, dict[str, Any]]:
    """Each channel for /health: disabled (and why), or ok / error by its last delivery."""
    out: dict[str, dict[str, Any]] = {}
    for name, channel in channels.items():
        last = outcomes.get(name)
        if not channel.configured:
            status, message = "disabled", channel.disabled_reason
        elif last is None:
            status, message = "ok", "configured; nothing sent yet"
        else:
            status = "ok" if last.status == "sent" else "error"
            message = f"last delivery {last.status} at {iso_timestamp(last.at)}"
            message += f": {last.message}" if last.message else ""
        out[name] = {"status": status, "latency": None, "message": message}
    return out


class Courier:
    """Holds the deliveries in flight and attempts those that are due."""

    def __init__(
        self,
        store: AlertingStore,
        channels: Mapping[str, Channel],
        retry: Backoff,
        rand: Callable[[], float],
        log: Any,
    ) -> None:
        self._store = store
        self._channels = channels
        self._retry = retry
        self._rand = rand
        self._log = log
        self._lock = threading.Lock()
        self.pending: list[Delivery] = []
        self.outcomes: dict[str, Outcome] = {}

    def add(self, delivery: Delivery) -> None:
        self.pending.append(delivery)

    def busy_groups(self) -> set[GroupId | None]:
        return {d.group for d in self.pending}

    def next_due(self) -> float | None:
        return min((d.due_at for d in self.pending), default=None)

    def restore_outcomes(self) -> None:
        for channel, row in self._store.last_outcomes().items():
            self.set_outcome(channel, Outcome(row["status"], row["updated_at"], row["error"] or ""))

    def set_outcome(self, channel: str, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[channel] = outcome

    def health(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            outcomes = dict(self.outcomes)
        return channel_health(self._channels, outcomes)

    def run_due(self, now: float) -> list[Delivery]:
        """Attempt every due delivery; return those that were sent."""
        sent = []
        for delivery in [d for d in self.pending if d.due_at <= now]:
            if self._attempt(delivery, now) == "sent":
                sent.append(delivery)
        return sent

    def _attempt(self, d: Delivery, now: float) -> AttemptStatus:
        d.attempts += 1
        error, permanent = "", False
        try:
            self._channels[d.channel].notify(d.notification)
        except DeliveryError as exc:
            error, permanent = exc.message, exc.permanent
        except Exception as exc:  # noqa: BLE001 - a broken channel must not stop the others
            error = f"{type(exc).__name__}: {exc}"
        status: AttemptStatus
        if not error:
            status = "sent"
        elif permanent or self._retry.exhausted(d.attempts):
            status = "failed"
            self._log.warning(
                "notification failed", channel=d.channel, error=error, attempts=d.attempts
            )
        else:
            status = "retrying"
            d.due_at = now + self._retry.delay(d.attempts, self._rand())
        self._record(d, status, error, now)
        self.set_outcome(d.channel, Outcome(status, now, error))
        if status != "retrying":
            self.pending.remove(d)
        return status

    def _record(self, d: Delivery, status: AttemptStatus, error: str, now: float) -> None:
        values: dict[str, Any] = {
            "status": status,
            "attempts": d.attempts,
            "error": error or None,
            "updated_at": now,
            "next_attempt_at": d.due_at if status == "retrying" else None,
        }
        if d.record_id is None:
            row = notification_row(d.channel, d.notification, d.reason, now) | values
            d.record_id = guarded(
                self._log, "record a notification", self._store.add_notification, row
            )
        else:
            guarded(
                self._log,
                "record a notification",
                self._store.update_notification,
                d.record_id,
                values,
            )
