"""SLOs and error budgets: a Sloth-like spec, generated Prometheus rules, and live status.

The generated rules follow Sloth's naming (``slo:sli_error:ratio_rate<window>`` with
``sloth_service`` / ``sloth_slo`` / ``sloth_id`` / ``sloth_window`` labels) and the Google SRE
workbook's multiwindow, multi-burn-rate alerts: page at 14.4x (1h and 5m) or 6x (6h and 30m),
ticket at 3x (1d and 2h) or 1x (3d and 6h); both windows of a pair must exceed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codequal.exceptions import InvalidInput

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (severity, [(factor, long window, short window), ...])
BURN_ALERTS = (
    ("page", ((14.4, "1h", "5m"), (6.0, "6h", "30m"))),
    ("ticket", ((3.0, "1d", "2h"), (1.0, "3d", "6h"))),
)
DEFAULT_SPEC = Path(__file__).with_name("default_slos.yml")
_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


class SLOSpecError(InvalidInput):
    """The SLO spec is invalid; the message names the SLO and the field."""


def window_seconds(window: str) -> float:
    return float(window[:-1]) * _SECONDS[window[-1]]


@dataclass(frozen=True)
class SLO:
    service: str
    name: str
    objective: float  # percent, e.g. 99.9
    error_query: str  # PromQL with {{.window}} where the range goes
    total_query: str
    window: str = "30d"
    description: str = ""
    alert_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    alert_labels: dict[str, str] = field(default_factory=dict)
    page_labels: dict[str, str] = field(default_factory=dict)
    ticket_labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def budget(self) -> float:
        """The error budget as a ratio: 1 - objective (rounded: 0.01, not 0.010000000000000009)."""
        return round(1.0 - self.objective / 100.0, 12)

    def errors(self, window: str) -> str:
        return self.error_query.replace("{{.window}}", window)

    def total(self, window: str) -> str:
        return self.total_query.replace("{{.window}}", window)

    def error_ratio(self, window: str) -> str:
        """Errors over total in ``window``. No error series at all (no 5xx ever) means zero
        errors, not an unknown SLI; no traffic in the window means no ratio at all (a 0/0 NaN
        recorded would make the 30-day average, and every budget figure on it, NaN for 30 days).
        """
        return f"(({self.errors(window)}) or on() vector(0))\n/\n(({self.total(window)}) > 0)\n"


def load_spec(path: Path | None = None) -> list[SLO]:
    """Read a spec file (the shipped defaults when ``path`` is None)."""
    source = path or DEFAULT_SPEC
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SLOSpecError(f"cannot read SLO spec {source}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("slos"), list):
        raise SLOSpecError(f"{source}: expected a mapping with `service` and a list `slos`")
    service = str(data.get("service") or "")
    if not service:
        raise SLOSpecError(f"{source}: `service` is required")
    common = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
    return [_slo(service, common, item, source) for item in data["slos"]]


def _slo(service: str, common: dict[str, str], item: Any, source: Path) -> SLO:
    name = str(item.get("name") or "")
    where = f"{source}: SLO {name or '(unnamed)'}"
    try:
        objective = float(item["objective"])
    except (KeyError, TypeError, ValueError):
        raise SLOSpecError(f"{where}: `objective` must be a percentage such as 99.9") from None
    if not 0 < objective < 100:
        raise SLOSpecError(f"{where}: `objective` must be between 0 and 100 (exclusive)")
    error_query, total_query = _sli(item.get("sli") or {}, where)
    alerting = item.get("alerting") or {}
    return SLO(
        service=service,
        name=name,
        objective=objective,
        error_query=error_query,
        total_query=total_query,
        window=str(item.get("window") or "30d"),
        description=str(item.get("description") or ""),
        alert_name=str(alerting.get("name") or f"{_camel(name)}ErrorBudgetBurn"),
        labels=common | {str(k): str(v) for k, v in (item.get("labels") or {}).items()},
        alert_labels={str(k): str(v) for k, v in (alerting.get("labels") or {}).items()},
        page_labels=_labels(alerting, "page_alert", {"severity": "critical"}),
        ticket_labels=_labels(alerting, "ticket_alert", {"severity": "ticket"}),
        annotations={str(k): str(v) for k, v in (alerting.get("annotations") or {}).items()},
    )


def _sli(sli: dict[str, Any], where: str) -> tuple[str, str]:
    if "events" in sli:
        events = sli["events"]
        if not events.get("error_query") or not events.get("total_query"):
            raise SLOSpecError(f"{where}: sli.events needs error_query and total_query")
        return str(events["error_query"]), str(events["total_query"])
    if "latency" in sli:
        lat = sli["latency"]
        metric, threshold = lat.get("histogram"), lat.get("threshold")
        if not metric or threshold is None:
            raise SLOSpecError(f"{where}: sli.latency needs histogram and threshold (seconds)")
        selector = str(lat.get("selector") or "")
        # The `le` label is written as Prometheus clients write it: 300 → "300.0".
        le = 'le="' + repr(float(threshold)) + '"'
        window = "[{{.window}}]"
        total = f"sum(rate({metric}_count{{{selector}}}{window}))"
        good = f"sum(rate({metric}_bucket{{{_join(selector, le)}}}{window}))"
        return f"({total} - {good})", total
    raise SLOSpecError(f"{where}: `sli` must have `events` or `latency`")


def _join(*parts: str) -> str:
    return ",".join(p for p in parts if p)


def _labels(alerting: dict[str, Any], key: str, default: dict[str, str]) -> dict[str, str]:
    given = (alerting.get(key) or {}).get("labels") or {}
    return default | {str(k): str(v) for k, v in given.items()}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


# -- rule generation -------------------------------------------------------------------------
def _selector(slo: SLO, window: str | None = None) -> str:
    parts = [f'sloth_id="{slo.id}"', f'sloth_service="{slo.service}"', f'sloth_slo="{slo.name}"']
    if window is not None:
        parts.append(f'sloth_window="{window}"')
    return "{" + ", ".join(parts) + "}"


def _base_labels(slo: SLO) -> dict[str, str]:
    return slo.labels | {"sloth_id": slo.id, "sloth_service": slo.service, "sloth_slo": slo.name}


def recording_rules(slo: SLO) -> list[dict[str, Any]]:
    rules = [
        {
            "record": f"slo:sli_error:ratio_rate{w}",
            "expr": slo.error_ratio(w),
            "labels": _base_labels(slo) | {"sloth_window": w},
        }
        for w in WINDOWS
    ]
    sel = _selector(slo, "5m")
    rules.append(
        {
            "record": f"slo:sli_error:ratio_rate{slo.window}",
            "expr": (
                f"sum_over_time(slo:sli_error:ratio_rate5m{sel}[{slo.window}])\n"
                f"/ ignoring (sloth_window)\n"
                f"count_over_time(slo:sli_error:ratio_rate5m{sel}[{slo.window}])\n"
            ),
            "labels": _base_labels(slo) | {"sloth_window": slo.window},
        }
    )
    return rules


def meta_rules(slo: SLO) -> list[dict[str, Any]]:
    base = _base_labels(slo)
    sel = _selector(slo)
    days = window_seconds(slo.window) / 86_400
    return [
        {
            "record": "slo:objective:ratio",
            "expr": f"vector({slo.objective / 100!r})",
            "labels": base,
        },
        {"record": "slo:error_budget:ratio", "expr": f"vector({slo.budget!r})", "labels": base},
        {"record": "slo:time_period:days", "expr": f"vector({days!r})", "labels": base},
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": (
                f"slo:sli_error:ratio_rate5m{sel}\n/ on (sloth_id, sloth_slo, sloth_service) "
                f"group_left\nslo:error_budget:ratio{sel}\n"
            ),
            "labels": base,
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": (
                f"slo:sli_error:ratio_rate{slo.window}{sel}\n/ on (sloth_id, sloth_slo, "
                f"sloth_service) group_left\nslo:error_budget:ratio{sel}\n"
            ),
            "labels": base,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{sel}",
            "labels": base,
        },
    ]


def alert_rules(slo: SLO) -> list[dict[str, Any]]:
    out = []
    for severity, pairs in BURN_ALERTS:
        clauses = [
            f"(\n    max(slo:sli_error:ratio_rate{short}{_selector(slo)} > ({factor!r} * "
            f"{slo.budget!r})) without (sloth_window)\n    and\n    "
            f"max(slo:sli_error:ratio_rate{long_}{_selector(slo)} > ({factor!r} * "
            f"{slo.budget!r})) without (sloth_window)\n)"
            for factor, long_, short in pairs
        ]
        labels = slo.page_labels if severity == "page" else slo.ticket_labels
        out.append(
            {
                "alert": slo.alert_name,
                "expr": "\nor\n".join(clauses) + "\n",
                "labels": _base_labels(slo)
                | slo.alert_labels
                | labels
                | {"sloth_severity": severity},
                "annotations": {
                    "summary": f"{slo.service} {slo.name} SLO error budget burn rate is too fast",
                    "description": (
                        f"{{{{ $labels.sloth_slo }}}} is burning its {slo.objective}% error "
                        f"budget fast enough to need a {severity} (both windows of a pair exceed)."
                    ),
                    "runbook_url": "/runbooks/SLOErrorBudgetBurn",
                }
                | slo.annotations,
            }
        )
    return out


def generate_rules(slos: list[SLO]) -> dict[str, Any]:
    """One Prometheus rule file: per SLO a recording group, a meta group and an alert group."""
    groups: list[dict[str, Any]] = []
    for slo in slos:
        groups.append({"name": f"sloth-slo-sli-recordings-{slo.id}", "rules": recording_rules(slo)})
        groups.append({"name": f"sloth-slo-meta-recordings-{slo.id}", "rules": meta_rules(slo)})
        groups.append({"name": f"sloth-slo-alerts-{slo.id}", "rules": alert_rules(slo)})
    return {"groups": groups}


class _RuleDumper(yaml.SafeDumper):
    """Multi-line expressions as YAML block literals, the way rule files are written by hand."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _str)


def dump_rules(slos: list[SLO]) -> str:
    header = "# Generated by `codequal slo generate` from the SLO spec; do not edit by hand.\n"
    return header + yaml.dump(generate_rules(slos), Dumper=_RuleDumper, sort_keys=False, width=100)


# -- live status (pure over query results) ---------------------------------------------------
def status_from_ratios(
    slo: SLO,
    ratios: dict[str, float | None],
    period_ratio: float | None,
    period_events: float | None,
) -> dict[str, Any]:
    """Current SLI, budget remaining and burn rates from measured error ratios."""
    burn = {
        w: (r / slo.budget if r is not None and not math.isnan(r) else None)
        for w, r in ratios.items()
    }
    remaining = None if period_ratio is None else 1.0 - period_ratio / slo.budget
    budget_events = None if period_events is None else period_events * slo.budget
    current = burn.get("1h")
    exhaustion = None
    if remaining is not None and current and current > 0 and remaining > 0:
        exhaustion = remaining * window_seconds(slo.window) / current
    return {
        "id": slo.id,
        "service": slo.service,
        "name": slo.name,
        "objective": slo.objective,
        "window": slo.window,
        "sli": None if period_ratio is None else 1.0 - period_ratio,
        "errorBudget": {
            "remainingRatio": remaining,
            "totalEvents": budget_events,
            "remainingEvents": (
                None if budget_events is None or remaining is None else budget_events * remaining
            ),
        },
        "burnRates": burn,
        "timeToExhaustionSeconds": exhaustion,
    }
