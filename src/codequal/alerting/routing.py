"""The notifier's pure core: matchers, silences, inhibition, routing, grouping and repeats.

Every function here is a function of its arguments and an explicit ``now``; the notifier shell
(:mod:`codequal.alerting.notifier`) feeds them and acts on what they return. The semantics
follow Alertmanager's: anchored regular expressions, a missing label equals "", a group waits
``group_wait`` before its first message and ``group_interval`` between messages, an unchanged
group is repeated after ``repeat_interval``, and a resolve is only sent for an alert that was
notified as firing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from codequal.alerting.model import Alert

MatchOp = Literal["=", "!=", "=~", "!~"]
OPS: tuple[MatchOp, ...] = ("=~", "!~", "!=", "=")  # longest first, for parsing
_MATCHER_TEXT = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True)
class Matcher:
    """``name op "value"`` on one label; regular expressions are anchored, as in Prometheus."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"matcher operator {self.op!r} must be one of =, !=, =~, !~")
        if not self.name:
            raise ValueError("a matcher needs a label name")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(self.value))
            except re.error as exc:
                raise ValueError(
                    f"matcher {self.name}: invalid regex {self.value!r}: {exc}"
                ) from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._regex is not None:
            found = self._regex.fullmatch(actual) is not None
            return found if self.op == "=~" else not found
        return (actual == self.value) if self.op == "=" else (actual != self.value)

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """Parse ``severity=~"critical|emergency"`` (Alertmanager's matcher syntax)."""
    found = _MATCHER_TEXT.match(text)
    if found is None:
        raise ValueError(f'cannot parse matcher {text!r}; write it as name="value" (or !=, =~, !~)')
    value = re.sub(r"\\(.)", r"\1", found.group(3))
    op: Any = found.group(2)
    return Matcher(found.group(1), op, value)


def _m(*texts: str) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(t) for t in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# -- silences ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    """Mutes notifications for alerts matching every matcher, between starts_at and ends_at."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired: bool = False  # ended early by an operator

    def state(self, now: float) -> Literal["pending", "active", "expired"]:
        if self.expired or now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)


def check_silence(matchers: Sequence[Matcher], starts_at: float, ends_at: float) -> None:
    """Raise ValueError (a sentence for the API client) when a silence cannot be created."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if all(m.matches({}) for m in matchers):
        # Alertmanager's rule: a silence whose matchers all match "" would mute every alert.
        raise ValueError("at least one matcher must not match the empty string")
    if ends_at <= starts_at:
        raise ValueError("endsAt must be after startsAt")


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: float) -> list[str]:
    """The ids of the active silences that mute ``labels``."""
    return [s.id for s in silences if s.mutes(labels, now)]


# -- inhibition ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InhibitRule:
    """While a firing alert matches ``source``, alerts matching ``target`` with the same
    values of the ``equal`` labels are not notified."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def to_alertmanager(self) -> dict[str, list[str]]:
        """This rule as an ``inhibit_rules`` entry of alertmanager.yml."""
        return {
            "source_matchers": [str(m) for m in self.source],
            "target_matchers": [str(m) for m in self.target],
            "equal": list(self.equal),
        }


_DISK = 'alertname=~"DeepWiki.*Disk.*"'
DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    # DeepWiki disk usage: the higher threshold says everything the lower one does.
    InhibitRule(_m(_DISK, 'severity="critical"'), _m(_DISK, 'severity="warning"'), ("component",)),
    InhibitRule(
        _m(_DISK, 'severity="emergency"'), _m(_DISK, 'severity=~"critical|warning"'), ("component",)
    ),
    # The same alert at two severities: only the higher one is worth a message.
    InhibitRule(_m('severity="emergency"'), _m('severity="critical"'), ("alertname", "component")),
    InhibitRule(_m('severity="critical"'), _m('severity="warning"'), ("alertname", "component")),
)


def inhibited_by(
    alert: Alert, firing: Sequence[Alert], rules: Sequence[InhibitRule]
) -> Alert | None:
    """The firing alert that inhibits ``alert``, if any (an alert never inhibits itself)."""
    for rule in rules:
        if not matches_all(rule.target, alert.labels):
            continue
        for source in firing:
            if (
                source.fingerprint != alert.fingerprint
                and matches_all(rule.source, source.labels)
                and all(source.labels.get(n, "") == alert.labels.get(n, "") for n in rule.equal)
            ):
                return source
    return None


# -- routing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Alerts matching every matcher go to ``channels``; the first match wins unless
    ``keep_going`` (Alertmanager's ``continue``)."""

    matchers: tuple[Matcher, ...]
    channels: tuple[str, ...]
    keep_going: bool = False


DEFAULT_ROUTES: tuple[Route, ...] = (
    # The generic webhook feeds automation, which wants every alert.
    Route((), ("webhook",), keep_going=True),
    Route(_m('alertname="DeepWikiDown"'), ("pagerduty", "slack", "email")),
    Route(_m('severity=~"critical|emergency"'), ("pagerduty", "slack")),
    Route(_m('severity="warning"'), ("slack",)),
    Route(_m('severity="ticket"'), ("email",)),
)


def route(labels: Mapping[str, str], routes: Sequence[Route] = DEFAULT_ROUTES) -> tuple[str, ...]:
    """The channel names an alert with ``labels`` goes to, in route order, without repeats."""
    out: list[str] = []
    for r in routes:
        if matches_all(r.matchers, labels):
            out.extend(c for c in r.channels if c not in out)
            if not r.keep_going:
                break
    return tuple(out)


# -- grouping and repeats ------------------------------------------------------------------

GROUP_BY = ("alertname", "severity")
PlanReason = Literal["", "new", "changed", "resolved", "repeat"]


@dataclass(frozen=True)
class Timing:
    """Alertmanager's defaults."""

    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0


def group_labels(labels: Mapping[str, str], by: Sequence[str] = GROUP_BY) -> dict[str, str]:
    return {name: labels.get(name, "") for name in by}


def group_key(labels: Mapping[str, str]) -> str:
    """Alertmanager's shape, ``{}:{alertname="X", severity="critical"}``; stable forever."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{}:{" + inner + "}"


@dataclass(frozen=True)
class GroupState:
    """What one channel last did for one group (persisted, so a restart does not re-page)."""

    created_at: float
    flushed_at: float | None = None  # last time a message was planned (gates group_interval)
    notified_at: float | None = None  # last successful delivery (gates repeat_interval)
    notified: frozenset[str] = frozenset()  # fingerprints delivered as firing
    digest: str = ""  # of the last delivered message's alert sets


@dataclass(frozen=True)
class GroupPlan:
    """``state`` to keep now; ``send`` non-empty means deliver, then keep ``on_success``."""

    state: GroupState
    send: tuple[Alert, ...] = ()
    reason: PlanReason = ""
    on_success: GroupState | None = None
    waiting: bool = False  # unmuted firing alerts wait for group_wait / group_interval

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if any(a.status == "firing" for a in self.send) else "resolved"

    @property
    def idle(self) -> bool:
        """Nothing notified, nothing firing: the group can be forgotten."""
        return not self.state.notified and not self.send and not self.waiting


def plan_group(
    state: GroupState | None,
    alerts: Sequence[Alert],
    muted: frozenset[str] | set[str],
    now: float,
    timing: Timing,
) -> GroupPlan:
    """Decide whether one group sends a message to one channel now, and what it holds."""
    present = {a.fingerprint for a in alerts}
    base = state or GroupState(created_at=now)
    base = replace(base, notified=base.notified & present)  # forget alerts that vanished
    firing = [a for a in alerts if a.status == "firing" and a.fingerprint not in muted]
    resolved = [a for a in alerts if a.status == "resolved" and a.fingerprint in base.notified]
    if not _due(base, now, timing):
        return GroupPlan(base, waiting=bool(firing))
    reason = _reason(base, firing, resolved, now, timing)
    if not reason:
        return GroupPlan(base, waiting=bool(firing))
    still_muted = {a.fingerprint for a in alerts if a.status == "firing" and a.fingerprint in muted}
    notified = frozenset(a.fingerprint for a in firing) | (base.notified & still_muted)
    flushed = replace(base, flushed_at=now)
    done = replace(flushed, notified_at=now, notified=notified, digest=_digest(firing, resolved))
    return GroupPlan(flushed, (*firing, *resolved), reason, done)


def _due(state: GroupState, now: float, timing: Timing) -> bool:
    if state.flushed_at is None:
        return now >= state.created_at + timing.group_wait
    return now >= state.flushed_at + timing.group_interval


def _reason(
    state: GroupState, firing: Sequence[Alert], resolved: Sequence[Alert], now: float, t: Timing
) -> PlanReason:
    if {a.fingerprint for a in firing} - state.notified:
        return "changed" if state.notified_at is not None else "new"
    if resolved:
        return "resolved"
    if firing and state.notified_at is not None and now >= state.notified_at + t.repeat_interval:
        return "repeat"
    return ""


def _digest(firing: Sequence[Alert], resolved: Sequence[Alert]) -> str:
    text = ",".join(sorted(a.fingerprint for a in firing)) + "|"
    text += ",".join(sorted(a.fingerprint for a in resolved))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_forward(
    sent: Mapping[str, float], alerts: Iterable[Alert], now: float, resend_interval: float
) -> tuple[tuple[Alert, ...], dict[str, float]]:
    """For Alertmanager: each firing alert again every ``resend_interval``, each resolve of a
    forwarded alert once. Returns the alerts to send and the new last-sent times."""
    out: list[Alert] = []
    after = dict(sent)
    for alert in alerts:
        fp = alert.fingerprint
        if alert.status == "firing":
            last = sent.get(fp)
            if last is None or now >= last + resend_interval:
                out.append(alert)
                after[fp] = now
        elif alert.status == "resolved" and fp in sent:
            out.append(alert)
            del after[fp]
    return tuple(out), after
