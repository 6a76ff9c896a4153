"""Error issues on SQLite and PostgreSQL: grouping, counts, status, regressions, the tracker."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from codequal.storage import Database, open_database
from codequal.storage.schema import error_events
from codequal.telemetry.context import bind
from codequal.telemetry.errors import FILTERED, ErrorEvent, ErrorTracker, build_event
from codequal.telemetry.metrics import REGISTRY
from codequal.telemetry.stores.errors import ErrorStore


def _raised(fn: Callable[..., None], *args: Any) -> BaseException:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - returning whatever the code under test raised
        return exc
    raise AssertionError("expected an exception")


def _fetch_repo(repo_id: int) -> None:
    raise RuntimeError(f"repository {repo_id} unreachable (job {uuid.uuid4()}) after 3 tries")


def _from_webhook(repo_id: int) -> None:
    _fetch_repo(repo_id)


def _from_scheduler(repo_id: int) -> None:
    _fetch_repo(repo_id)


def _event(exc: BaseException | None = None, *, now: float = 1000.0, **kwargs: Any) -> ErrorEvent:
    exc = exc if exc is not None else _raised(_from_webhook, 1)
    return build_event(exc, service="worker", environment="test", now=now, **kwargs)


def _issue_id(store: ErrorStore, event: ErrorEvent) -> int:
    issue = store.get_issue_by_fingerprint(event.fingerprint)
    assert issue is not None
    return issue.id


def test_events_with_one_fingerprint_become_one_issue_with_count_and_times(
    database: Database,
) -> None:
    store = ErrorStore(database)
    store.record([_event(now=200.0), _event(now=100.0)])
    store.record([_event(now=300.0)])

    [issue] = store.list_issues()
    assert (issue.count, issue.first_seen, issue.last_seen) == (3, 100.0, 300.0)
    assert issue.status == "unresolved"
    assert issue.regressed_at is None
    assert issue.type == "RuntimeError"
    assert issue.title.startswith("RuntimeError: repository 1 unreachable")
    assert issue.culprit is not None and issue.culprit.endswith(" in _fetch_repo")
    assert [e.timestamp for e in store.events(issue.id)] == [300.0, 200.0, 100.0]


def test_same_error_with_other_ids_groups_and_another_call_site_splits(
    database: Database,
) -> None:
    store = ErrorStore(database)
    store.record(
        [
            _event(_raised(_from_webhook, 17)),
            _event(_raised(_from_webhook, 4242)),
            _event(_raised(_from_scheduler, 17)),
        ]
    )

    counts = sorted(issue.count for issue in store.list_issues())
    assert counts == [1, 2]


def test_explicit_fingerprint_puts_different_errors_into_one_issue(database: Database) -> None:
    store = ErrorStore(database)
    store.record(
        [
            _event(_raised(_from_webhook, 1), fingerprint=["github-outage"]),
            _event(KeyError("x"), fingerprint=["github-outage"]),
            _event(_raised(_from_webhook, 1)),
        ]
    )

    counts = sorted(issue.count for issue in store.list_issues())
    assert counts == [1, 2]


def test_resolved_issue_that_recurs_reopens_as_a_regression(database: Database) -> None:
    store = ErrorStore(database)
    first = _event(now=100.0)
    store.record([first])
    issue_id = _issue_id(store, first)
    resolved = store.set_status(issue_id, "resolved", now=200.0)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_at) == ("resolved", 200.0)

    store.record([_event(now=300.0)])

    issue = store.get_issue(issue_id)
    assert issue is not None
    assert (issue.status, issue.regressed_at, issue.count) == ("unresolved", 300.0, 2)


def test_late_event_from_before_the_resolution_does_not_reopen(database: Database) -> None:
    store = ErrorStore(database)
    first = _event(now=100.0)
    store.record([first])
    issue_id = _issue_id(store, first)
    store.set_status(issue_id, "resolved", now=200.0)

    store.record([_event(now=150.0)])

    issue = store.get_issue(issue_id)
    assert issue is not None
    assert (issue.status, issue.regressed_at, issue.count) == ("resolved", None, 2)


def test_ignored_issue_stays_ignored_but_keeps_counting(database: Database) -> None:
    store = ErrorStore(database)
    first = _event(now=100.0)
    store.record([first])
    issue_id = _issue_id(store, first)
    store.set_status(issue_id, "ignored", now=150.0)

    store.record([_event(now=300.0), _event(now=400.0)])

    issue = store.get_issue(issue_id)
    assert issue is not None
    assert (issue.status, issue.count, issue.last_seen) == ("ignored", 3, 400.0)


def test_unknown_status_is_rejected_with_the_allowed_values(database: Database) -> None:
    store = ErrorStore(database)
    with pytest.raises(ValueError, match="unresolved, resolved, ignored; got 'closed'"):
        store.set_status(1, "closed", now=1.0)
    with pytest.raises(ValueError, match="one of unresolved, resolved, ignored"):
        store.list_issues(status="open")
    with pytest.raises(ValueError, match="order must be one of last_seen, first_seen, count"):
        store.list_issues(order="title")


def test_status_of_a_missing_issue_is_none(database: Database) -> None:
    store = ErrorStore(database)
    assert store.set_status(999_999, "resolved", now=1.0) is None
    assert store.get_issue(999_999) is None
    assert store.latest_event(999_999) is None


def test_issues_are_listed_by_status_order_and_page(database: Database) -> None:
    store = ErrorStore(database)
    webhook = [_event(_raised(_from_webhook, 1), now=t) for t in (10.0, 20.0, 30.0)]
    scheduler = _event(_raised(_from_scheduler, 1), now=50.0)
    store.record([*webhook, scheduler])
    store.set_status(_issue_id(store, scheduler), "resolved", now=60.0)

    assert [i.count for i in store.list_issues()] == [1, 3]  # most recently seen first
    assert [i.count for i in store.list_issues(order="count")] == [3, 1]
    assert [i.count for i in store.list_issues(order="first_seen")] == [1, 3]
    assert [i.status for i in store.list_issues(status="resolved")] == ["resolved"]
    assert [i.count for i in store.list_issues(limit=1, offset=1)] == [3]


def test_latest_event_is_the_newest_and_round_trips(database: Database) -> None:
    store = ErrorStore(database)
    old, new = _event(now=1.0, context={"n": [1, 2]}), _event(now=2.0, context={"n": {"a": 1}})
    store.record([new, old])

    latest = store.latest_event(_issue_id(store, new))

    assert latest == new
    assert [e.event_id for e in store.events(_issue_id(store, new), limit=5)] == [
        new.event_id,
        old.event_id,
    ]


def test_an_event_sent_again_is_counted_but_stored_once_without_failing_its_batch(
    database: Database,
) -> None:
    # SDKs retry a request whose answer they did not see: the retry carries the same event id.
    store = ErrorStore(database)
    event = _event(now=1.0)
    other = _event(now=2.0)
    store.record([event, event])
    store.record([event, other])

    issue_id = _issue_id(store, event)
    issue = store.get_issue(issue_id)
    assert issue is not None and issue.count == 4
    assert sorted(e.event_id for e in store.events(issue_id)) == sorted(
        [event.event_id, other.event_id]
    )


def test_the_stored_event_is_what_to_dict_gives(database: Database) -> None:
    event = _event(now=5.0, context={"n": [1, 2.5, None], "nested": {"ok": True}})
    ErrorStore(database).record([event])

    with database.engine.connect() as conn:
        [payload] = conn.execute(sa.select(error_events.c.payload)).scalars()
    assert payload == event.to_dict()
    assert isinstance(payload["frames"], list) and payload["frames"]


def test_a_refused_write_raises_sqlalchemys_error_and_stores_nothing(database: Database) -> None:
    # The ingest API answers 400 or 503 by SQLAlchemy's exception types; the issue upserted
    # before the failing event insert must be rolled back with it.
    store = ErrorStore(database)
    with database.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE error_events"))

    with pytest.raises(sa.exc.DBAPIError):
        store.record([_event(now=1.0)])

    assert store.list_issues() == []


def _record_concurrently(
    url: str, events: Sequence[ErrorEvent], threads: int, batches: int
) -> None:
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer() -> None:
        db = open_database(url)  # its own engine and connections, like another process
        try:
            store = ErrorStore(db)
            start.wait()
            for _ in range(batches):
                store.record([_again(e) for e in events])
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            failures.append(exc)
        finally:
            db.dispose()

    workers = [threading.Thread(target=writer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []


def _again(event: ErrorEvent) -> ErrorEvent:
    """The same error again: a new event id, same fingerprint."""
    return ErrorEvent.from_dict({**event.to_dict(), "event_id": uuid.uuid4().hex})


def test_concurrent_writers_on_own_connections_make_one_issue_with_exact_count(
    database: Database,
) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    events = [_event(now=float(t)) for t in range(5)]

    _record_concurrently(url, events, threads=6, batches=10)

    store = ErrorStore(database)
    [issue] = store.list_issues()
    assert issue.count == 6 * 10 * 5
    assert (issue.first_seen, issue.last_seen) == (0.0, 4.0)
    assert len(store.events(issue.id, limit=1000)) == 6 * 10 * 5


# -- the tracker, end to end -------------------------------------------------------------


def _errors_total(service: str, error_type: str) -> float:
    labels = {"service": service, "error_type": error_type}
    return REGISTRY.get_sample_value("codequal_errors_total", labels) or 0.0


def test_captured_exception_is_enriched_scrubbed_stored_logged_and_counted(
    database: Database,
) -> None:
    seen: list[ErrorEvent] = []
    tracker = ErrorTracker(
        ErrorStore(database),
        service="tracker-test",
        environment="ci",
        release="1.2.3",
        on_event=seen.append,
    )
    before = _errors_total("tracker-test", "RuntimeError")
    secret = "hunter" + "2-pw"
    with bind(user_id="u-7", repository_url="https://github.com/o/r", analysis_id="a-9"):
        event_id = tracker.capture_exception(
            _raised(_from_webhook, 5), {"password": secret, "step": "clone"}
        )
    assert tracker.flush(10)
    tracker.shutdown(5)

    store = ErrorStore(database)
    [issue] = store.list_issues()
    stored = store.latest_event(issue.id)
    assert stored is not None
    assert stored.event_id == event_id == seen[0].event_id
    assert (stored.user_id, stored.analysis_id) == ("u-7", "a-9")
    assert (stored.environment, stored.release, stored.service) == ("ci", "1.2.3", "tracker-test")
    assert stored.context == {"password": FILTERED, "step": "clone"}
    assert secret not in json.dumps(stored.to_dict())
    assert seen[0].context["password"] == FILTERED
    assert _errors_total("tracker-test", "RuntimeError") == before + 1


class _BrokenStore:
    def record(self, events: Sequence[ErrorEvent]) -> None:
        raise OSError("disk full")


def test_capture_never_raises_when_the_store_or_the_log_hook_fail() -> None:
    def broken_hook(_event: ErrorEvent) -> None:
        raise RuntimeError("logger down")

    tracker = ErrorTracker(_BrokenStore(), service="s", environment="e", on_event=broken_hook)

    event_id = tracker.capture_exception(ValueError("x"))

    assert len(event_id) == 32
    assert tracker.flush(5)
    assert tracker.internal_errors == 1
    tracker.shutdown(5)


def test_capture_returns_while_the_store_is_still_writing() -> None:
    release = threading.Event()
    written: list[int] = []

    class SlowStore:
        def record(self, events: Sequence[ErrorEvent]) -> None:
            release.wait(10)
            written.append(len(events))

    tracker = ErrorTracker(SlowStore(), service="s", environment="e")
    for _ in range(3):
        tracker.capture_exception(ValueError("x"))
    assert written == []  # the captures returned although no write could finish

    release.set()
    assert tracker.flush(10)
    assert sum(written) == 3
    tracker.shutdown(5)


def test_an_error_inside_the_log_hook_does_not_capture_itself_forever() -> None:
    captured: list[str] = []

    def hook(event: ErrorEvent) -> None:
        captured.append(event.message)
        tracker.capture_exception(RuntimeError("while logging"))

    tracker = ErrorTracker(None, service="s", environment="e", on_event=hook)
    assert tracker.capture_exception(ValueError("original"))
    assert captured == ["original"]
    tracker.shutdown(1)
