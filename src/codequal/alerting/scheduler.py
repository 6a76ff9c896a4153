"""The rule scheduler: evaluate every interval, append what rules record, hand transitions on.

The evaluator is pure; this shell owns the clock, the metric history, the persisted state (so
a restart keeps pending timers and firing alerts) and the notifier.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from codequal.alerting.evaluator import EvaluationResult, evaluate
from codequal.alerting.rules import RuleGroup
from codequal.alerting.state import EvaluationState, rules_overview
from codequal.storage.kv import KeyValueStore
from codequal.telemetry.metrics import RULE_EVALUATION_FAILURES
from codequal.tsdb.promql import Engine
from codequal.tsdb.promql.limits import QueryLimits
from codequal.tsdb.store import SampleStore

STATE_KEY = "rule-evaluation-state"


class RuleScheduler:
    def __init__(
        self,
        groups: Sequence[RuleGroup],
        history: SampleStore,
        state_store: KeyValueStore,
        *,
        interval: float,
        on_result: Callable[[EvaluationResult], None],
        on_error: Callable[[BaseException], None],
        external_url: str = "",
        clock: Callable[[], float] = time.time,
        limits: QueryLimits | None = None,
    ) -> None:
        self.groups = list(groups)
        self._limits = limits
        self._history = history
        self._store = state_store
        self._interval = interval
        self._on_result = on_result
        self.on_error = on_error
        self._external_url = external_url
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = True
        self.consecutive_failures = 0  # rounds in a row that failed (the database is down...)
        # Read on the first evaluation, not here: the app builds this before migrations run.
        self.state = EvaluationState()
        self._restored = False
        self.last_evaluation: float | None = None

    def evaluate_once(self, now: float | None = None) -> EvaluationResult:
        now = self._clock() if now is None else now
        if not self._restored:
            saved = self._store.get(STATE_KEY)
            self.state = EvaluationState.from_json(saved) if saved else EvaluationState()
            self._restored = True
        result = evaluate(
            self.groups,
            Engine(self._history, limits=self._limits),
            self.state,
            now,
            default_interval=self._interval,
            external_url=self._external_url,
        )
        self._history.append((s.labels, s.t, s.value) for s in result.samples)
        _count_failures(self.groups, result, now)
        self.state = result.state
        self._store.put(STATE_KEY, result.state.to_json())
        self.last_evaluation = now
        self._on_result(result)
        return result

    def overview(self) -> list[dict[str, Any]]:
        return rules_overview(self.groups, self.state)

    def set_active(self, active: bool) -> None:
        """Leadership: only the leader evaluates. A new leader first re-reads the state the
        previous one persisted (pending timers, firing alerts) and evaluates at once."""
        if active and not self._active:
            self._restored = False
        self._active = active
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cq-rules", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._active:
                self.run_round()

    def run_round(self, now: float | None = None) -> None:
        """One scheduled round: evaluate; count and report a failure instead of raising."""
        try:
            self.evaluate_once(now)
            self.consecutive_failures = 0
        except Exception as exc:  # noqa: BLE001 - keep evaluating; report the failure
            self.consecutive_failures += 1
            self.on_error(exc)


def _count_failures(groups: Sequence[RuleGroup], result: EvaluationResult, now: float) -> None:
    """A failing rule (over a query limit, say) is counted under its group's name."""
    for group in groups:
        state = result.state.groups.get(group.key)
        if state is not None and state.last_evaluation == now and state.errors:
            RULE_EVALUATION_FAILURES.labels(group.name).inc(len(state.errors))
