"""Group commit: concurrent requests share a write; a failing request fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from codequal.ingest.batching import GroupCommit


class Recorder:
    """A ``write`` that records each call; the first call can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: Sequence[str]) -> None:
        self.entered.set()
        self.release.wait(10)
        if any(item.startswith("bad") for item in items):
            raise ValueError(f"cannot store {sorted(items)}")
        self.calls.append(list(items))


def wait_until_queued(group: GroupCommit[str], n: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._queue) < n:  # the followers have queued their items
        assert time.monotonic() < deadline, "the submitting threads did not queue"


def test_a_lone_request_is_written_at_once() -> None:
    write = Recorder()
    GroupCommit(write).submit(["a", "b"])
    GroupCommit(write).submit([])
    assert write.calls == [["a", "b"]]


def test_requests_arriving_during_a_write_are_committed_together() -> None:
    write = Recorder(hold_first=True)
    group: GroupCommit[str] = GroupCommit(write)
    first = threading.Thread(target=group.submit, args=(["first"],))
    first.start()
    assert write.entered.wait(10)
    followers = [threading.Thread(target=group.submit, args=([f"r{i}"],)) for i in range(5)]
    for thread in followers:
        thread.start()
    wait_until_queued(group, 5)
    write.release.set()
    for thread in (first, *followers):
        thread.join(10)
    assert write.calls[0] == ["first"]
    assert sorted(write.calls[1]) == [f"r{i}" for i in range(5)]
    assert len(write.calls) == 2


def test_a_bad_request_in_a_group_fails_alone() -> None:
    write = Recorder(hold_first=True)
    group: GroupCommit[str] = GroupCommit(write)
    errors: dict[str, Exception | None] = {}

    def submit(item: str) -> None:
        try:
            group.submit([item])
            errors[item] = None
        except ValueError as exc:
            errors[item] = exc

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    assert write.entered.wait(10)
    others = [threading.Thread(target=submit, args=(item,)) for item in ("ok1", "bad", "ok2")]
    for thread in others:
        thread.start()
    wait_until_queued(group, 3)
    write.release.set()
    for thread in (first, *others):
        thread.join(10)
    assert {k for k, v in errors.items() if v is None} == {"first", "ok1", "ok2"}
    assert "cannot store ['bad']" in str(errors["bad"])
    assert sorted(item for call in write.calls for item in call) == ["first", "ok1", "ok2"]
