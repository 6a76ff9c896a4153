"""Failed authentications, counted per subject (a client address, a presented key id).

Counting never refuses a credential: the caller verifies first and consults the limiter only
for a credential that failed, answering 429 instead of 401 once that client (or that key id)
failed too often. Behind a proxy every client shares one address, and one guessing client
must not lock the others out.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

WINDOW_SECONDS = 60.0
MAX_TRACKED = 10_000  # subjects remembered at once; the oldest is forgotten first


class FailureLimiter:
    """A sliding window of failures per subject (thread-safe)."""

    def __init__(
        self, limit: int, window: float = WINDOW_SECONDS, max_clients: int = MAX_TRACKED
    ) -> None:
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, subjects: str | Iterable[str], now: float) -> float | None:
        """Seconds until none of ``subjects`` is over the limit, or None if none is now."""
        waits = [w for s in _many(subjects) if (w := self._wait(s, now)) is not None]
        return max(waits) if waits else None

    def record(self, subjects: str | Iterable[str], now: float) -> bool:
        """Count one failure for each subject; True when it took one over the limit (the
        start of a burst, the moment to log once)."""
        crossed = False
        with self._lock:
            for subject in _many(subjects):
                times = self._failures.get(subject)
                if times is None:
                    if len(self._failures) >= self._max_clients:
                        del self._failures[next(iter(self._failures))]
                    times = self._failures[subject] = deque()
                self._expire(times, now)
                times.append(now)
                crossed = crossed or len(times) == self._limit
                # Only the newest `limit` failures can decide when the subject may retry.
                if len(times) > self._limit:
                    times.popleft()
        return crossed

    def _wait(self, subject: str, now: float) -> float | None:
        with self._lock:
            times = self._failures.get(subject)
            if times is None:
                return None
            self._expire(times, now)
            if not times:
                del self._failures[subject]
            if len(times) < self._limit:
                return None
            return times[0] + self._window - now

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()


def _many(subjects: str | Iterable[str]) -> Iterable[str]:
    return (subjects,) if isinstance(subjects, str) else subjects
