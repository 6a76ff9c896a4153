"""One backoff policy for everything that retries a delivery: log sinks, Sentry, notifications.

A leaf module: it imports nothing of codequal.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DOUBLINGS = 32  # 2**32 times the base is past any cap; a larger exponent only overflows


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, capped; a destination's Retry-After is a floor.

    The delay after ``failures`` failed attempts in a row is ``base * 2**(failures - 1)``,
    capped at ``cap``, of which up to ``jitter`` (a fraction) is randomised away, so the
    retries of many senders that failed together (one outage) spread out. ``jitter=1`` is
    "full jitter". ``max_attempts`` None retries for ever (a spooled sink keeps its data).
    """

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 1.0
    max_attempts: int | None = None

    def delay(self, failures: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` (1 or more) failures; ``rand`` in [0, 1)."""
        raw = min(self.cap, self.base * 2.0 ** min(max(failures - 1, 0), MAX_DOUBLINGS))
        delay = raw * (1.0 - self.jitter * rand)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return float(delay)

    def exhausted(self, attempts: int) -> bool:
        """True once ``attempts`` tries used up the budget (never without ``max_attempts``)."""
        return self.max_attempts is not None and attempts >= self.max_attempts
