"""``/api/monitoring/alerts`` and ``/api/monitoring/silences``: alerts, history, rules,
notification attempts (with their failures) and silences."""

# No "from __future__ import annotations": FastAPI must evaluate the route signatures, whose
# dependencies are built per app (closures) and cannot be resolved from strings.

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from codequal.alerting.model import Alert
from codequal.alerting.notifier import Notifier
from codequal.alerting.routing import Matcher, Silence, check_silence
from codequal.alerting.store import AlertingStore
from codequal.api.errors import FastJSONResponse, error_response
from codequal.api.params import Cursor, Text
from codequal.security.tokens import Principal
from codequal.storage.db import Database
from codequal.vocabulary import iso_timestamp

Guard = Callable[[str], Any]
RulesSource = Callable[[], Sequence[Mapping[str, Any]] | None]
NotifierSource = Callable[[], Notifier | None]
MAX_SILENCE_SECONDS = 365 * 86_400.0  # a forgotten silence must not mute a channel forever


class MatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=1000)


class SilenceIn(BaseModel):
    """A new silence: matchers, and endsAt or a duration in seconds (startsAt defaults to now)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    matchers: list[MatcherIn] = Field(min_length=1, max_length=50)
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    duration: float | None = Field(default=None, gt=0, le=MAX_SILENCE_SECONDS)
    comment: str = Field(min_length=1, max_length=2000)
    created_by: str | None = Field(default=None, alias="createdBy", max_length=200)


def alerts_router(
    db: Database,
    require: Guard,
    notifier: NotifierSource = lambda: None,
    rules: RulesSource | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The alerting routes; ``notifier`` and ``rules`` are read per request (they start later)."""
    router = APIRouter(prefix="/api/monitoring", tags=["alerting"])
    store = AlertingStore(db)
    _alert_routes(router, require, store, notifier, rules)
    _silence_routes(router, require, store, clock)
    return router


def _alert_routes(
    router: APIRouter,
    require: Guard,
    store: AlertingStore,
    notifier: NotifierSource,
    rules: RulesSource | None,
) -> None:
    reader = Annotated[Principal, Depends(require("monitoring:read"))]

    @router.get("/alerts", summary="Active alerts; with history=true, transitions (paged)")
    def alerts(
        _: reader,
        history: bool = False,
        fingerprint: Text = None,
        alertname: Text = None,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        if history:
            rows = store.transitions(
                cursor=cursor, limit=limit, fingerprint=fingerprint, alertname=alertname
            )
            next_cursor = rows[-1]["id"] if len(rows) == limit else None
            return FastJSONResponse(
                {"items": [_transition(r) for r in rows], "nextCursor": next_cursor}
            )
        items = [_alert(a, why) for a, why in _active(store, notifier())]
        items = [i for i in items if alertname is None or i["alertname"] == alertname]
        return FastJSONResponse({"items": items})

    @router.get("/alerts/rules", summary="Rules with their state and last evaluation")
    def alert_rules(_: reader) -> Any:
        found = rules() if rules is not None else None
        return FastJSONResponse({"items": list(found or [])})

    @router.get(
        "/alerts/notifications", summary="Notification attempts: sent, retrying, failed, muted"
    )
    def notifications(
        _: reader,
        channel: Text = None,
        status: Literal["sent", "failed", "retrying", "suppressed"] | None = None,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        rows = store.notifications(cursor=cursor, limit=limit, channel=channel, status=status)
        next_cursor = rows[-1]["id"] if len(rows) == limit else None
        current = notifier()
        return FastJSONResponse(
            {
                "items": [_notification(r) for r in rows],
                "nextCursor": next_cursor,
                "channels": current.channel_health() if current is not None else {},
            }
        )


def _silence_routes(
    router: APIRouter, require: Guard, store: AlertingStore, clock: Callable[[], float]
) -> None:
    reader = Annotated[Principal, Depends(require("monitoring:read"))]
    admin = Annotated[Principal, Depends(require("monitoring:admin"))]

    @router.get("/silences", summary="Silences; expired ones with expired=true")
    def list_silences(_: reader, expired: bool = False) -> Any:
        now = clock()
        found = store.list_silences(include_expired=expired, now=now)
        return FastJSONResponse({"items": [_silence(s, now) for s in found]})

    @router.get("/silences/{silence_id}", summary="One silence")
    def get_silence(silence_id: str, _: reader) -> Any:
        found = store.get_silence(silence_id)
        if found is None:
            return error_response(404, "silence not found", silence_id)
        return FastJSONResponse(_silence(found, clock()))

    @router.post("/silences", status_code=201, summary="Create a silence (monitoring:admin)")
    def create_silence(body: SilenceIn, who: admin) -> Any:
        now = clock()
        try:
            silence = _create(store, body, who, now)
        except ValueError as exc:
            return error_response(422, "the silence is invalid", str(exc))
        return FastJSONResponse(_silence(silence, now), status_code=201)

    @router.delete("/silences/{silence_id}", summary="Expire a silence now (monitoring:admin)")
    def expire_silence(silence_id: str, _: admin) -> Any:
        now = clock()
        found = store.expire_silence(silence_id, now)
        if found is None:
            return error_response(404, "silence not found", silence_id)
        return FastJSONResponse(_silence(found, now))


def _active(store: AlertingStore, notifier: Notifier | None) -> list[tuple[Alert, str]]:
    # The running notifier knows what is muted; without it the stored history still answers.
    if notifier is not None:
        return notifier.active_alerts()
    return [(a, "") for a in store.active_alerts()]


def _create(store: AlertingStore, body: SilenceIn, who: Principal, now: float) -> Silence:
    matchers = [Matcher(m.name, m.op, m.value) for m in body.matchers]
    starts = _epoch(body.starts_at) if body.starts_at is not None else now
    if body.ends_at is not None:
        ends = _epoch(body.ends_at)
    elif body.duration is not None:
        ends = starts + body.duration
    else:
        raise ValueError("give endsAt or duration (seconds)")
    check_silence(matchers, starts, ends)
    if ends - starts > MAX_SILENCE_SECONDS:
        raise ValueError("a silence may last at most 365 days")
    return store.create_silence(
        matchers,
        starts_at=starts,
        ends_at=ends,
        created_by=body.created_by or who.subject,
        comment=body.comment,
        now=now,
    )


def _epoch(value: datetime) -> float:
    # Time is UTC everywhere: a time without a zone is read as UTC, not as the server's zone.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float | None) -> str | None:
    return iso_timestamp(ts) if ts is not None else None


def _alert(alert: Alert, muted_by: str) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.name,
        "severity": alert.severity,
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "activeAt": _iso(alert.active_at),
        "firedAt": _iso(alert.fired_at),
        "value": alert.value,
        "generatorURL": alert.generator_url,
        "runbookUrl": alert.annotations.get("runbook_url"),
        "mutedBy": muted_by or None,
    }


def _transition(row: Mapping[str, Any]) -> dict[str, Any]:
    alert = row["alert"]
    return {
        "id": row["id"],
        "fingerprint": row["fingerprint"],
        "alertname": row["alertname"],
        "from": row["from_status"],
        "to": row["to_status"],
        "at": _iso(row["at"]),
        "labels": alert.get("labels", {}),
        "annotations": alert.get("annotations", {}),
        "value": alert.get("value"),
    }


def _notification(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "channel": row["channel"],
        "alertname": row["alertname"],
        "groupKey": row["group_key"],
        "kind": row["kind"],
        "reason": row["reason"],
        "fingerprints": row["fingerprints"],
        "status": row["status"],
        "attempts": row["attempts"],
        "error": row["error"],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
        "nextAttemptAt": _iso(row["next_attempt_at"]),
    }


def _silence(silence: Silence, now: float) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": [m.to_dict() for m in silence.matchers],
        "startsAt": _iso(silence.starts_at),
        "endsAt": _iso(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "createdAt": _iso(silence.created_at),
        "state": silence.state(now),
    }
