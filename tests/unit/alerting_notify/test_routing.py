"""Matchers, default routing, inhibition and silences: pure functions with explicit times."""

from __future__ import annotations

import pytest

from codequal.alerting.routing import (
    DEFAULT_INHIBIT_RULES,
    InhibitRule,
    Matcher,
    Route,
    Silence,
    check_silence,
    inhibited_by,
    parse_matcher,
    route,
    silenced_by,
)

from .helpers import T0, alert

# -- matchers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {}, True),
        ('severity=~"crit.*|emergency"', {"severity": "emergency"}, True),
        # Anchored like Prometheus: "crit" does not match "critical".
        ('severity=~"crit"', {"severity": "critical"}, False),
        ('severity!~"warning|ticket"', {"severity": "critical"}, True),
        ('severity!~"warning|ticket"', {"severity": "ticket"}, False),
        # A missing label is the empty string.
        ('component=""', {"severity": "critical"}, True),
        ('component=~".+"', {}, False),
    ],
)
def test_matcher_operators_follow_prometheus_semantics(
    matcher: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_matcher_round_trips_through_its_text_form_with_escapes() -> None:
    m = Matcher("summary", "=", 'say "hi" \\ bye')
    assert parse_matcher(str(m)) == m


@pytest.mark.parametrize("text", ["severity", 'sev erity="x"', "severity=critical", '="x"'])
def test_unparseable_matcher_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match='name="value"'):
        parse_matcher(text)


def test_invalid_regex_is_rejected_with_the_label_name() -> None:
    with pytest.raises(ValueError, match="matcher alertname: invalid regex"):
        Matcher("alertname", "=~", "(")


# -- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "severity", "channels"),
    [
        ("HighFailureRate", "critical", ("webhook", "pagerduty", "slack")),
        ("DeepWikiDiskFull", "emergency", ("webhook", "pagerduty", "slack")),
        ("DeepWikiDown", "critical", ("webhook", "pagerduty", "slack", "email")),
        ("HighMemoryUsage", "warning", ("webhook", "slack")),
        ("CostReview", "ticket", ("webhook", "email")),
        ("Informational", "info", ("webhook",)),
    ],
)
def test_default_routing_by_severity_and_alertname(
    name: str, severity: str, channels: tuple[str, ...]
) -> None:
    assert route(alert(name, severity).labels) == channels


def test_routes_by_component_first_match_wins_unless_continue() -> None:
    routes = (
        Route((parse_matcher('component="deepwiki"'),), ("email",), keep_going=True),
        Route((parse_matcher('severity="warning"'),), ("slack",)),
        Route((), ("pagerduty",)),
    )
    assert route({"severity": "warning", "component": "deepwiki"}, routes) == ("email", "slack")
    assert route({"severity": "warning", "component": "api"}, routes) == ("slack",)
    assert route({"severity": "critical"}, routes) == ("pagerduty",)


# -- inhibition --------------------------------------------------------------------------------


def test_critical_deepwiki_disk_alert_inhibits_the_disk_warning() -> None:
    critical = alert("DeepWikiDiskUsageCritical", "critical", component="deepwiki")
    warning = alert("DeepWikiDiskUsageHigh", "warning", component="deepwiki")
    assert inhibited_by(warning, [critical, warning], DEFAULT_INHIBIT_RULES) == critical
    assert inhibited_by(critical, [critical, warning], DEFAULT_INHIBIT_RULES) is None


def test_emergency_inhibits_critical_of_the_same_alert_and_component() -> None:
    emergency = alert("DeepWikiDiskUsage", "emergency", component="deepwiki")
    critical = alert("DeepWikiDiskUsage", "critical", component="deepwiki")
    other = alert("HighFailureRate", "critical", component="deepwiki")
    firing = [emergency, critical, other]
    assert inhibited_by(critical, firing, DEFAULT_INHIBIT_RULES) == emergency
    assert inhibited_by(other, firing, DEFAULT_INHIBIT_RULES) is None


def test_inhibition_needs_equal_labels_and_never_inhibits_itself() -> None:
    rule = InhibitRule(
        (parse_matcher('severity="critical"'),),
        (parse_matcher('severity=~"critical|warning"'),),
        ("component",),
    )
    source = alert("A", "critical", component="api")
    same_component = alert("B", "warning", component="api")
    other_component = alert("C", "warning", component="worker")
    assert inhibited_by(same_component, [source], [rule]) == source
    assert inhibited_by(other_component, [source], [rule]) is None
    assert inhibited_by(source, [source], [rule]) is None


def test_inhibit_rules_render_as_alertmanager_config() -> None:
    assert DEFAULT_INHIBIT_RULES[0].to_alertmanager() == {
        "source_matchers": ['alertname=~"DeepWiki.*Disk.*"', 'severity="critical"'],
        "target_matchers": ['alertname=~"DeepWiki.*Disk.*"', 'severity="warning"'],
        "equal": ["component"],
    }


# -- silences ----------------------------------------------------------------------------------


def _silence(starts: float, ends: float, *matchers: str, expired: bool = False) -> Silence:
    parsed = tuple(parse_matcher(m) for m in matchers)
    return Silence("s1", parsed, starts, ends, "alice", "maintenance", starts - 10, expired)


def test_silence_mutes_only_between_its_start_and_end() -> None:
    s = _silence(T0, T0 + 3600, 'alertname="HighFailureRate"')
    labels = alert().labels
    assert silenced_by(labels, [s], T0 - 1) == []
    assert silenced_by(labels, [s], T0) == ["s1"]
    assert silenced_by(labels, [s], T0 + 3599) == ["s1"]
    assert silenced_by(labels, [s], T0 + 3600) == []
    assert [s.state(t) for t in (T0 - 1, T0, T0 + 3600)] == ["pending", "active", "expired"]


def test_silence_needs_every_matcher_to_match() -> None:
    s = _silence(T0, T0 + 60, 'alertname=~"High.*"', 'severity!="critical"')
    assert silenced_by(alert("HighMemoryUsage", "warning").labels, [s], T0) == ["s1"]
    assert silenced_by(alert("HighFailureRate", "critical").labels, [s], T0) == []


def test_expired_silence_mutes_nothing() -> None:
    s = _silence(T0, T0 + 3600, 'alertname="HighFailureRate"', expired=True)
    assert silenced_by(alert().labels, [s], T0 + 1) == []


@pytest.mark.parametrize(
    ("matchers", "starts", "ends", "message"),
    [
        ((), T0, T0 + 1, "at least one matcher"),
        (('alertname=~".*"',), T0, T0 + 1, "must not match the empty string"),
        (('alertname="X"',), T0, T0, "endsAt must be after startsAt"),
    ],
)
def test_silence_that_would_mute_everything_or_nothing_is_refused(
    matchers: tuple[str, ...], starts: float, ends: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_silence([parse_matcher(m) for m in matchers], starts, ends)
