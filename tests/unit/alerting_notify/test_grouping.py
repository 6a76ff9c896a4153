"""Grouping, group_wait / group_interval, repeats, resolves and Alertmanager resends, with
explicit times (group_wait 30 s, group_interval 300 s, repeat_interval 4 h)."""

from __future__ import annotations

from codequal.alerting.model import Alert
from codequal.alerting.routing import (
    GroupPlan,
    GroupState,
    Timing,
    group_key,
    group_labels,
    plan_forward,
    plan_group,
)

from .helpers import T0, alert, resolved

TIMING = Timing(group_wait=30, group_interval=300, repeat_interval=4 * 3600)
A = alert("HighFailureRate", "critical", instance="a")
B = alert("HighFailureRate", "critical", instance="b")


def step(
    state: GroupState | None, alerts: list[Alert], now: float, muted: frozenset[str] = frozenset()
) -> GroupPlan:
    return plan_group(state, alerts, muted, now, TIMING)


def delivered(plan: GroupPlan) -> GroupState:
    assert plan.on_success is not None
    return plan.on_success


def test_group_key_is_alertname_and_severity_in_alertmanager_form() -> None:
    labels = group_labels(A.labels)
    assert labels == {"alertname": "HighFailureRate", "severity": "critical"}
    assert group_key(labels) == '{}:{alertname="HighFailureRate", severity="critical"}'


def test_new_group_waits_group_wait_then_sends_all_its_alerts_at_once() -> None:
    first = step(None, [A], T0)
    assert first.send == () and first.waiting and not first.idle
    second = step(first.state, [A, B], T0 + 29)
    assert second.send == ()
    third = step(second.state, [A, B], T0 + 30)
    assert third.send == (A, B) and third.reason == "new" and third.status == "firing"


def test_unchanged_group_is_not_resent_until_repeat_interval() -> None:
    state = delivered(step(GroupState(created_at=T0), [A], T0 + 30))
    for t in (T0 + 330, T0 + 3600, T0 + 30 + 4 * 3600 - 1):
        assert step(state, [A], t).send == ()
    repeat = step(state, [A], T0 + 30 + 4 * 3600)
    assert repeat.send == (A,) and repeat.reason == "repeat"


def test_new_alert_in_a_notified_group_waits_for_group_interval() -> None:
    state = delivered(step(GroupState(created_at=T0), [A], T0 + 30))
    assert step(state, [A, B], T0 + 100).send == ()
    changed = step(state, [A, B], T0 + 330)
    assert changed.send == (A, B) and changed.reason == "changed"


def test_resolve_is_sent_for_notified_alert_at_the_next_group_interval() -> None:
    state = delivered(step(GroupState(created_at=T0), [A], T0 + 30))
    gone = resolved(A, T0 + 60)
    assert step(state, [gone], T0 + 100).send == ()
    plan = step(state, [gone], T0 + 330)
    assert plan.send == (gone,) and plan.status == "resolved" and plan.reason == "resolved"
    after = delivered(plan)
    assert after.notified == frozenset()
    assert step(after, [], T0 + 1000).idle


def test_alert_resolved_within_group_wait_is_never_notified() -> None:
    first = step(None, [A], T0)
    plan = step(first.state, [resolved(A, T0 + 10)], T0 + 30)
    assert plan.send == () and plan.idle


def test_resolve_of_one_alert_while_another_fires_sends_both_as_firing_group() -> None:
    state = delivered(step(GroupState(created_at=T0), [A, B], T0 + 30))
    gone = resolved(B, T0 + 100)
    plan = step(state, [A, gone], T0 + 330)
    assert plan.send == (A, gone) and plan.status == "firing"
    assert delivered(plan).notified == {A.fingerprint}


def test_muted_alert_is_not_sent_but_its_resolve_still_closes_the_page() -> None:
    state = delivered(step(GroupState(created_at=T0), [A], T0 + 30))
    muted = frozenset({A.fingerprint})
    assert step(state, [A], T0 + 330, muted).send == ()
    # Still owed a resolve: PagerDuty's incident must be closed when it ends.
    plan = step(state, [resolved(A, T0 + 400)], T0 + 700, muted)
    assert plan.send == (resolved(A, T0 + 400),)


def test_muted_alert_alone_never_opens_a_group() -> None:
    plan = step(None, [A], T0 + 100, frozenset({A.fingerprint}))
    assert plan.send == () and plan.idle


def test_failed_delivery_is_planned_again_after_group_interval() -> None:
    plan = step(GroupState(created_at=T0), [A], T0 + 30)
    # Only plan.state (flushed, not notified) is kept when the delivery fails.
    assert step(plan.state, [A], T0 + 329).send == ()
    again = step(plan.state, [A], T0 + 330)
    assert again.send == (A,) and again.reason == "new"


def test_vanished_alert_is_forgotten_instead_of_waiting_for_a_resolve() -> None:
    state = delivered(step(GroupState(created_at=T0), [A], T0 + 30))
    plan = step(state, [], T0 + 400)
    assert plan.send == () and plan.idle


def test_alertmanager_forwarding_resends_firing_and_sends_each_resolve_once() -> None:
    sent, after = plan_forward({}, [A], T0, 60)
    assert sent == (A,) and after == {A.fingerprint: T0}
    assert plan_forward(after, [A], T0 + 59, 60)[0] == ()
    again, after = plan_forward(after, [A], T0 + 60, 60)
    assert again == (A,)
    gone = resolved(A, T0 + 70)
    final, after = plan_forward(after, [gone], T0 + 70, 60)
    assert final == (gone,) and after == {}
    assert plan_forward(after, [gone], T0 + 80, 60)[0] == ()


def test_alertmanager_forwarding_skips_resolves_it_never_sent_and_pending_alerts() -> None:
    pending = alert("SlowAnalysis", "warning", status="pending")
    never = resolved(B, T0)
    assert plan_forward({}, [pending, never], T0, 60) == ((), {})
