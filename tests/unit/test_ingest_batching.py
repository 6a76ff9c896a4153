"""Group commit: concurrent requests share a write; a failing request fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from codequal.ingest.batching import GroupCommit

from ..helpers import eventually

T = TypeVar("T")


def run_in_own_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` on a thread of its own: another test's event loop (Playwright's
    sync API keeps one in the main thread) must not make this one fail."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


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
    # the followers have queued their items
    eventually(lambda: len(group._queue) >= n, 10, "the submitting threads queueing", every=0.001)


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


# -- from the event loop ---------------------------------------------------------------------
def test_a_lone_coroutine_returns_once_its_items_are_written() -> None:
    write = Recorder()
    group: GroupCommit[str] = GroupCommit(write)

    async def main() -> None:
        await group.submit_async(["a", "b"])
        assert write.calls == [["a", "b"]]  # written before the await returned
        await group.submit_async([])

    run_in_own_loop(main)
    assert write.calls == [["a", "b"]]


def test_coroutines_arriving_during_a_write_are_committed_together_and_fail_alone() -> None:
    write = Recorder(hold_first=True)
    group: GroupCommit[str] = GroupCommit(write)

    async def main() -> dict[str, BaseException | None]:
        first = asyncio.ensure_future(group.submit_async(["first"]))
        await asyncio.to_thread(write.entered.wait, 10)
        names = ["ok1", "bad", "ok2", "ok3"]
        others = [asyncio.ensure_future(group.submit_async([name])) for name in names]
        await asyncio.sleep(0)  # let them queue: the loop's own scheduling, not a delay
        assert len(group._queue) == len(names)
        write.release.set()
        results = await asyncio.gather(first, *others, return_exceptions=True)
        return dict(zip(["first", *names], results, strict=True))

    outcome = run_in_own_loop(main)
    assert {k for k, v in outcome.items() if v is None} == {"first", "ok1", "ok2", "ok3"}
    assert "cannot store ['bad']" in str(outcome["bad"])
    # The first write, the group of four (refused), then each of them alone.
    assert write.calls[0] == ["first"]
    assert sorted(item for call in write.calls[1:] for item in call) == ["ok1", "ok2", "ok3"]


def test_threads_and_coroutines_share_groups() -> None:
    write = Recorder(hold_first=True)
    group: GroupCommit[str] = GroupCommit(write)
    holder = threading.Thread(target=group.submit, args=(["held"],))
    holder.start()
    assert write.entered.wait(10)

    async def main() -> None:
        waiting = asyncio.ensure_future(group.submit_async(["async"]))
        thread = threading.Thread(target=group.submit, args=(["thread"],))
        thread.start()
        await asyncio.to_thread(wait_until_queued, group, 2)
        write.release.set()
        await waiting
        await asyncio.to_thread(thread.join, 10)

    run_in_own_loop(main)
    holder.join(10)
    assert write.calls[0] == ["held"]
    assert sorted(write.calls[1]) == ["async", "thread"]
    assert len(write.calls) == 2
