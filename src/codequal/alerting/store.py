"""The notifier's repository: alert transitions, notification attempts, silences, group state."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from codequal.alerting.model import Alert, Transition
from codequal.alerting.routing import GroupState, Matcher, Silence
from codequal.storage.db import Database
from codequal.storage.schema import (
    alert_group_state,
    alert_notifications,
    alert_transitions,
    silences,
)

ACTIVE = ("pending", "firing")


def alert_from_json(data: dict[str, Any]) -> Alert:
    return Alert(
        labels=dict(data["labels"]),
        annotations=dict(data.get("annotations") or {}),
        status=data["status"],
        active_at=float(data["active_at"]),
        fired_at=data.get("fired_at"),
        resolved_at=data.get("resolved_at"),
        value=data.get("value"),
        generator_url=data.get("generator_url", ""),
        fingerprint=data.get("fingerprint", ""),
    )


def _silence(row: Any) -> Silence:
    return Silence(
        id=row.id,
        matchers=tuple(Matcher(m["name"], m["op"], m["value"]) for m in row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
        created_at=row.created_at,
        expired=bool(row.expired),
    )


def _group_state(row: Any) -> GroupState:
    return GroupState(
        created_at=row.created_at,
        flushed_at=row.flushed_at,
        notified_at=row.notified_at,
        notified=frozenset(row.notified or ()),
        digest=row.digest,
    )


def _state_values(state: GroupState) -> dict[str, Any]:
    return {
        "created_at": state.created_at,
        "flushed_at": state.flushed_at,
        "notified_at": state.notified_at,
        "notified": sorted(state.notified),
        "digest": state.digest,
    }


class AlertingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- transitions (the history) --------------------------------------------------------

    def record_transitions(self, transitions: Sequence[Transition]) -> None:
        rows = [
            {
                "fingerprint": t.fingerprint,
                "alertname": t.alertname[:200],
                "from_status": t.from_status,
                "to_status": t.to_status,
                "at": t.at,
                "alert": asdict(t.alert),
            }
            for t in transitions
        ]
        if rows:
            with self._db.engine.begin() as conn:
                conn.execute(alert_transitions.insert(), rows)

    def transitions(
        self,
        *,
        cursor: int | None = None,
        limit: int = 100,
        fingerprint: str | None = None,
        alertname: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        t = alert_transitions
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if cursor is not None:
            stmt = stmt.where(t.c.id < cursor)
        if fingerprint is not None:
            stmt = stmt.where(t.c.fingerprint == fingerprint)
        if alertname is not None:
            stmt = stmt.where(t.c.alertname == alertname)
        with self._db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def latest_alerts(self, fingerprints: Iterable[str] | None = None) -> list[Alert]:
        """Each alert as of its latest transition (all of them, or only ``fingerprints``)."""
        t = alert_transitions
        newest = sa.select(sa.func.max(t.c.id)).group_by(t.c.fingerprint)
        if fingerprints is not None:
            wanted = list(fingerprints)
            if not wanted:
                return []
            newest = newest.where(t.c.fingerprint.in_(wanted))
        stmt = sa.select(t.c.alert).where(t.c.id.in_(newest.scalar_subquery()))
        with self._db.engine.connect() as conn:
            return [alert_from_json(row.alert) for row in conn.execute(stmt)]

    def active_alerts(self) -> list[Alert]:
        """Pending and firing alerts, rebuilt from the transitions (what a restart resumes)."""
        return [a for a in self.latest_alerts() if a.status in ACTIVE]

    # -- notification attempts ------------------------------------------------------------

    def add_notification(self, values: dict[str, Any]) -> int:
        with self._db.engine.begin() as conn:
            result = conn.execute(alert_notifications.insert().values(**values))
            key = result.inserted_primary_key
            return int(key[0]) if key is not None else 0

    def update_notification(self, notification_id: int, values: dict[str, Any]) -> None:
        n = alert_notifications
        with self._db.engine.begin() as conn:
            conn.execute(n.update().where(n.c.id == notification_id).values(**values))

    def abandon_retrying(self, now: float) -> None:
        """Mark the retries a stopped process left behind as failed (its groups resend)."""
        n = alert_notifications
        values = {"status": "failed", "next_attempt_at": None, "updated_at": now}
        with self._db.engine.begin() as conn:
            conn.execute(
                n.update()
                .where(n.c.status == "retrying")
                .values(
                    error=sa.func.coalesce(n.c.error, "") + " (abandoned at shutdown)", **values
                )
            )

    def notifications(
        self,
        *,
        cursor: int | None = None,
        limit: int = 100,
        channel: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        n = alert_notifications
        stmt = sa.select(n).order_by(n.c.id.desc()).limit(limit)
        if cursor is not None:
            stmt = stmt.where(n.c.id < cursor)
        if channel is not None:
            stmt = stmt.where(n.c.channel == channel)
        if status is not None:
            stmt = stmt.where(n.c.status == status)
        with self._db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def last_outcomes(self) -> dict[str, dict[str, Any]]:
        """Per channel, the latest sent-or-failed notification (what /health reports)."""
        n = alert_notifications
        newest = (
            sa.select(sa.func.max(n.c.id))
            .where(n.c.status.in_(("sent", "failed", "retrying")))
            .group_by(n.c.channel)
        )
        stmt = sa.select(n).where(n.c.id.in_(newest.scalar_subquery()))
        with self._db.engine.connect() as conn:
            return {r.channel: dict(r._mapping) for r in conn.execute(stmt)}

    # -- silences -------------------------------------------------------------------------

    def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
        now: float,
    ) -> Silence:
        silence = Silence(
            str(uuid.uuid4()), tuple(matchers), starts_at, ends_at, created_by, comment, now
        )
        with self._db.engine.begin() as conn:
            conn.execute(
                silences.insert().values(
                    id=silence.id,
                    matchers=[m.to_dict() for m in matchers],
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=created_by[:200],
                    comment=comment,
                    created_at=now,
                    expired=False,
                )
            )
        return silence

    def get_silence(self, silence_id: str) -> Silence | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(sa.select(silences).where(silences.c.id == silence_id)).first()
        return _silence(row) if row is not None else None

    def list_silences(
        self, *, include_expired: bool, now: float, limit: int = 500
    ) -> list[Silence]:
        stmt = sa.select(silences).order_by(silences.c.created_at.desc()).limit(limit)
        if not include_expired:
            stmt = stmt.where(silences.c.ends_at > now, silences.c.expired == sa.false())
        with self._db.engine.connect() as conn:
            return [_silence(r) for r in conn.execute(stmt)]

    def active_silences(self, now: float) -> list[Silence]:
        return [
            s
            for s in self.list_silences(include_expired=False, now=now)
            if s.state(now) == "active"
        ]

    def expire_silence(self, silence_id: str, now: float) -> Silence | None:
        """End a silence now (kept for the record); None when there is no such silence."""
        s = silences
        ends_at = sa.case((s.c.ends_at > now, now), else_=s.c.ends_at)
        with self._db.engine.begin() as conn:
            conn.execute(
                s.update().where(s.c.id == silence_id).values(expired=True, ends_at=ends_at)
            )
        return self.get_silence(silence_id)

    # -- group state ----------------------------------------------------------------------

    def load_group_states(self) -> dict[tuple[str, str], GroupState]:
        with self._db.engine.connect() as conn:
            rows = conn.execute(sa.select(alert_group_state)).all()
        return {(r.group_key, r.channel): _group_state(r) for r in rows}

    def claim_group(
        self, group_key: str, channel: str, expected_flushed_at: float | None, state: GroupState
    ) -> bool:
        """Store ``state`` if the stored flush time is still ``expected_flushed_at``.

        False means another process flushed this group first: it sends, this one does not.
        """
        g = alert_group_state
        where = (g.c.group_key == group_key) & (g.c.channel == channel)
        if expected_flushed_at is None:
            where &= g.c.flushed_at.is_(None)
        else:
            where &= g.c.flushed_at == expected_flushed_at
        values = _state_values(state)
        with self._db.engine.begin() as conn:
            if conn.execute(g.update().where(where).values(**values)).rowcount == 1:
                return True
        if expected_flushed_at is not None:
            return False
        try:
            with self._db.engine.begin() as conn:
                conn.execute(g.insert().values(group_key=group_key, channel=channel, **values))
        except IntegrityError:
            return False
        return True

    def save_group(self, group_key: str, channel: str, state: GroupState) -> None:
        g = alert_group_state
        where = (g.c.group_key == group_key) & (g.c.channel == channel)
        values = _state_values(state)
        with self._db.engine.begin() as conn:
            if conn.execute(g.update().where(where).values(**values)).rowcount == 0:
                conn.execute(g.insert().values(group_key=group_key, channel=channel, **values))

    def load_group(self, group_key: str, channel: str) -> GroupState | None:
        g = alert_group_state
        where = (g.c.group_key == group_key) & (g.c.channel == channel)
        with self._db.engine.connect() as conn:
            row = conn.execute(sa.select(g).where(where)).first()
        return _group_state(row) if row is not None else None

    def drop_group(self, group_key: str, channel: str) -> None:
        g = alert_group_state
        with self._db.engine.begin() as conn:
            conn.execute(g.delete().where((g.c.group_key == group_key) & (g.c.channel == channel)))
