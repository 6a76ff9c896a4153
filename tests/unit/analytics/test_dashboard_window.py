"""Dashboard chart buckets are aligned to their step, so a past point keeps its value."""

from __future__ import annotations

import itertools

from codequal.analytics.dashboard_store import Finished, aligned_window, series


def test_the_window_ends_on_a_step_boundary_at_or_after_now() -> None:
    assert aligned_window(1_000_030.0, 3600.0) == (1_000_080.0 - 3600.0, 1_000_080.0)
    assert aligned_window(1_000_080.0, 3600.0) == (1_000_080.0 - 3600.0, 1_000_080.0)


def test_a_past_bucket_keeps_its_value_from_one_refresh_to_the_next() -> None:
    rows = [Finished(1_000_000.0 + 7 * i, "completed", "quick", 1.0 + i) for i in range(400)]
    answers = []
    for now in (1_002_790.0, 1_002_801.0, 1_002_833.0):  # three refreshes, seconds apart
        start, end = aligned_window(now, 3600.0)
        answers.append(series([r for r in rows if r.finished_at >= start], start, end))
    for earlier, later in itertools.pairwise(answers):
        shared = set(earlier["timestamps"][:-1]) & set(later["timestamps"][:-1])
        assert len(shared) >= 58  # the buckets that were complete in both answers
        for t in shared:
            i, j = earlier["timestamps"].index(t), later["timestamps"].index(t)
            assert earlier["analysesPerMinute"][i] == later["analysesPerMinute"][j]
            assert (
                earlier["p95DurationByMode"]["quick"][i] == later["p95DurationByMode"]["quick"][j]
            )
