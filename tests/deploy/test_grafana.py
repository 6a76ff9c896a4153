"""Grafana: provisioned data sources and dashboards, and every panel query.

Each query is parsed with ``promql_parser`` (after Grafana's own variables are replaced, as
Grafana does before sending it) and may only use metric names and labels from the catalogue
in docs/metrics.md, or the SLO recording rules below (Sloth's names and labels). All queries
also go through Prometheus's own parser and type checks, as recording rules for `promtool
check rules`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml

from codequal.tsdb.promql import Engine, InMemorySource, PromQLError
from tests.deploy.conftest import (
    DASHBOARDS,
    DEPLOY,
    ROOT,
    Generated,
    compose,
    load_yaml,
    run,
    tool,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"
METRICS_DOC = ROOT / "docs" / "metrics.md"
# The dashboards' JSON model version: Grafana 12 (the Compose file's image) reads it as is.
SCHEMA_VERSION = 41
TITLES = {"CodeQual Overview", "DeepWiki", "Costs", "SLOs"}
# What Grafana substitutes before a query reaches the data source.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
# Labels every scraped series carries, whichever engine stored it.
TARGET_LABELS = frozenset({"instance", "job"})

# The SLO recording rules the SLOs dashboard reads, following Sloth's naming (the rule
# generator, `codequal slo generate`, is being written; these names are the contract).
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
SLO_RULES = frozenset(
    {f"slo:sli_error:ratio_rate{w}" for w in SLO_WINDOWS}
    | {
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
    }
)
SLO_LABELS = frozenset({"sloth_id", "sloth_service", "sloth_slo", "sloth_window"})


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str
    legend: str
    datasource: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel}"


def catalogue() -> dict[str, frozenset[str]]:
    """Series name -> labels, from docs/metrics.md (histograms expand to _bucket/_sum/_count)."""
    series: dict[str, frozenset[str]] = {}
    row = re.compile(r"^\| `([a-z_:][a-z0-9_:]*)` \| (\w+) \| ([^|]*) \|")
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = row.match(line)
        if match is None:
            continue
        name, kind, labels = match[1], match[2], frozenset(re.findall(r"`(\w+)`", match[3]))
        if kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = labels
            series[f"{name}_count"] = labels
        else:
            series[name] = labels
    assert len(series) > 30, "docs/metrics.md has no catalogue table"
    return series


def allowed_series() -> dict[str, frozenset[str]]:
    slo = dict.fromkeys(SLO_RULES, SLO_LABELS)
    return {name: labels | TARGET_LABELS for name, labels in (catalogue() | slo).items()}


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def queries() -> Iterator[Query]:
    for name, dashboard in dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                yield Query(
                    name, panel["title"], target["expr"], target.get("legendFormat", ""), uid
                )


def grafana_interpolated(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def selectors(node: Any) -> list[Any]:
    found: list[Any] = []
    pp.walk(node, lambda n: found.append(n) if isinstance(n, pp.VectorSelector) else None)
    return found


def label_problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """Unknown metric names, and labels that none of the selected metrics has."""
    problems: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            labels = series.get(node.name or "")
            if labels is None:
                problems.append(f"unknown metric {node.name!r}")
                return
            used = {m.name for m in node.matchers.matchers if m.name != "__name__"}
            problems.extend(f"{node.name} has no label {u!r}" for u in used - labels)
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            available = union_labels(node.expr, series)
            problems.extend(
                f"{node.op} by {label!r}: no selected metric has it"
                for label in node.modifier.labels
                if label not in available
            )
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            available = union_labels(node.lhs, series) | union_labels(node.rhs, series)
            matching = node.modifier.matching
            names = list(matching.labels) if matching is not None else []
            problems.extend(
                f"on / ignoring {n!r}: unknown label" for n in names if n not in available
            )

    pp.walk(pp.parse(expr), visit)
    return problems


def union_labels(node: Any, series: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*(series.get(s.name or "", frozenset()) for s in selectors(node)))


# -- dashboards ---------------------------------------------------------------------------------
def test_the_four_dashboards_exist_with_unique_uids_and_a_current_schema_version() -> None:
    found = dashboards()
    assert {d["title"] for d in found.values()} == TITLES
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in found.items():
        assert dashboard["schemaVersion"] == SCHEMA_VERSION, name
        assert "id" not in dashboard or dashboard["id"] is None, f"{name}: drop the numeric id"
        panel_ids = [p["id"] for p in dashboard["panels"]]
        assert len(set(panel_ids)) == len(panel_ids), f"{name}: duplicate panel ids"


def test_panels_do_not_overlap_on_the_grid() -> None:
    for name, dashboard in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{name} / {panel['title']} is wider than the grid"
            cells = {
                (pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])
            }
            assert not cells & taken, f"{name} / {panel['title']} overlaps another panel"
            taken |= cells


def test_every_query_uses_a_provisioned_data_source_by_uid() -> None:
    provisioned = {d["uid"]: d for d in datasources()}
    found = list(queries())
    assert len(found) > 40
    for query in found:
        assert query.datasource in provisioned, f"{query.where}: unknown uid {query.datasource}"
        assert provisioned[query.datasource]["type"] == "prometheus", query.where


def test_every_panel_query_parses_with_promql_parser() -> None:
    failures = []
    for query in queries():
        try:
            pp.parse(grafana_interpolated(query.expr))
        except (ValueError, RuntimeError) as exc:
            failures.append(f"{query.where}: {exc}")
    assert not failures, "\n".join(failures)


def test_every_query_uses_only_catalogued_metrics_and_their_labels() -> None:
    series = allowed_series()
    problems = [
        f"{query.where}: {problem}"
        for query in queries()
        for problem in label_problems(grafana_interpolated(query.expr), series)
    ]
    assert not problems, "\n".join(problems)


def test_the_label_check_catches_a_misspelled_label_and_metric() -> None:
    series = allowed_series()
    assert label_problems("sum by (mood) (rate(codequal_analysis_started_total[1m]))", series)
    assert label_problems('codequal_errors_total{component="x"}', series)
    assert label_problems("codequal_analysis_started", series)


def test_every_legend_names_a_label_of_the_metrics_its_query_selects() -> None:
    series = allowed_series()
    for query in queries():
        available = union_labels(pp.parse(grafana_interpolated(query.expr)), series)
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend):
            assert label in available, f"{query.where}: legend uses {label!r}"


def test_every_query_passes_prometheus_own_parser_via_promtool(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": grafana_interpolated(q.expr)}
        for i, q in enumerate(queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_query_evaluates_on_codequals_own_promql_engine() -> None:
    """The engine behind CodeQual's /api/v1/query (the "CodeQual" data source) supports every
    function, operator and modifier the dashboards use. Here on no data: whether both engines
    return the same data is checked against live servers."""
    engine = Engine(InMemorySource([]))
    failures = []
    for query in queries():
        try:
            engine.instant(grafana_interpolated(query.expr), t=86_400_000)
        except PromQLError as exc:
            failures.append(f"{query.where}: {exc}")
    assert not failures, "\n".join(failures)


def test_the_deepwiki_disk_panels_carry_the_70_85_95_percent_thresholds() -> None:
    dashboard = next(d for d in dashboards().values() if d["title"] == "DeepWiki")
    disk = [p for p in dashboard["panels"] if "codequal_deepwiki_disk_usage_ratio" in str(p)]
    assert len(disk) >= 3
    for panel in disk:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, 0.70, 0.85, 0.95], panel["title"]
    assert any("predict_linear(" in q.expr for q in queries() if q.dashboard == "deepwiki.json")


def test_the_slo_dashboard_reads_the_recording_rules_the_generator_writes(
    generated: Generated,
) -> None:
    used = {
        s.name
        for q in queries()
        for s in selectors(pp.parse(grafana_interpolated(q.expr)))
        if s.name and s.name.startswith("slo:")
    }
    assert used <= SLO_RULES
    recorded = {
        rule["record"]
        for path in generated.rule_files()
        for group in load_yaml(path).get("groups", [])
        for rule in group.get("rules", [])
        if "record" in rule
    }
    assert used <= recorded, f"not recorded by `codequal slo generate`: {used - recorded}"


# -- provisioning -------------------------------------------------------------------------------
def datasources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((PROVISIONING / "datasources").glob("*.yml")):
        config = load_yaml(path)
        assert config["apiVersion"] == 1
        found.extend(config["datasources"])
    return found


def test_prometheus_and_codequal_are_provisioned_data_sources() -> None:
    by_uid = {d["uid"]: d for d in datasources()}
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["prometheus"]["isDefault"] is True
    codequal = by_uid["codequal"]
    assert codequal["type"] == "prometheus"
    assert codequal["url"] == "http://codequal:8080"
    # The bearer token comes from Grafana's environment, never from this file.
    assert codequal["jsonData"]["httpHeaderName1"] == "Authorization"
    header = codequal["secureJsonData"]["httpHeaderValue1"]
    variable = re.fullmatch(r"Bearer \$(\w+)", header)
    assert variable is not None, header
    grafana_env = compose()["services"]["grafana"]["environment"]
    assert variable[1] in grafana_env


def test_grafana_loads_the_dashboards_from_the_directory_compose_mounts() -> None:
    mounts = dict(volume.split(":")[:2] for volume in compose()["services"]["grafana"]["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = [
        provider
        for path in sorted((PROVISIONING / "dashboards").glob("*.yml"))
        for provider in load_yaml(path)["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == [mounts["./grafana/dashboards"]]
