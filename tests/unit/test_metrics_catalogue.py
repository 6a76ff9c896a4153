"""The metric catalogue: plan names and buckets, bounded labels, real psutil readings, docs, CLI.

Metrics are process-global, so every test that counts series uses a label value of its own
(a fresh ``type`` / ``language``) or a fresh :class:`LabelCap`, and asserts on that slice.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

import codequal.analysis.collector  # noqa: F401 - the DeepWiki families are in the catalogue
from codequal.cli.metrics_cmd import metrics
from codequal.telemetry import labels
from codequal.telemetry.labels import LabelCap, normalise_organization, normalise_repository
from codequal.telemetry.metrics import (
    CRITICAL_FINDINGS,
    REGISTRY,
    REPOSITORIES_ANALYZED,
    MetricInfo,
    catalogue,
    configure_label_cap,
    organization_label,
    render_markdown,
    repository_label,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

SEED_PLAN_NAMES = (
    "codequal_analysis_started_total",
    "codequal_analysis_completed_total",
    "codequal_analysis_failed_total",
    "codequal_analysis_duration_seconds",
    "codequal_active_analyses",
    "codequal_deepwiki_availability",
    "codequal_vectordb_latency_seconds",
    "codequal_agent_execution_seconds",
    "codequal_deepwiki_errors_total",
    "codequal_errors_total",
    "codequal_repositories_analyzed_total",
    "codequal_critical_findings_total",
    "codequal_analysis_cost_dollars",
)
SYSTEM_NAMES = (
    "codequal_process_cpu_seconds_total",
    "codequal_process_resident_memory_bytes",
    "codequal_process_threads",
    "codequal_system_cpu_usage_ratio",
    "codequal_system_memory_usage_ratio",
    "codequal_system_memory_total_bytes",
    "codequal_system_memory_available_bytes",
)


def _by_name() -> dict[str, MetricInfo]:
    return {info.name: info for info in catalogue()}


def _samples(sample_name: str, **match: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Series of one exposed sample name (e.g. ``..._total``) whose labels include ``match``."""
    found = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == sample_name and match.items() <= sample.labels.items():
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _system_values() -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name in SYSTEM_NAMES
    }


# -- catalogue and docs ---------------------------------------------------------------------
def test_docs_metrics_md_is_generated_from_the_catalogue() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        "docs/metrics.md is out of date with the metric catalogue; regenerate it with "
        "`codequal metrics list --format markdown > docs/metrics.md`"
    )


@pytest.mark.parametrize("name", SEED_PLAN_NAMES + SYSTEM_NAMES)
def test_seed_plan_and_system_names_are_in_the_catalogue(name: str) -> None:
    assert name in _by_name()


def test_catalogue_lists_each_name_once_in_registration_order() -> None:
    names = [info.name for info in catalogue()]
    assert len(names) == len(set(names))
    assert names[0] == "codequal_analysis_started_total"
    start = names.index(SYSTEM_NAMES[0])
    assert names[start : start + len(SYSTEM_NAMES)] == list(SYSTEM_NAMES)


def test_analysis_duration_keeps_plan_buckets_and_adds_finer_ones_below_ten_seconds() -> None:
    buckets = _by_name()["codequal_analysis_duration_seconds"].buckets
    assert [b for b in buckets if b >= 10] == [10, 30, 60, 120, 300, 600]
    assert len([b for b in buckets if b < 10]) >= 3
    assert list(buckets) == sorted(buckets)


def test_analysis_cost_has_the_plan_buckets() -> None:
    buckets = _by_name()["codequal_analysis_cost_dollars"].buckets
    assert {0.01, 0.05, 0.1, 0.5, 1, 2, 5} <= set(buckets)


def test_catalogue_is_read_from_the_registry_not_a_second_list() -> None:
    registry = CollectorRegistry()
    Counter("demo_jobs_total", "Jobs.", ["queue"], registry=registry)
    Histogram("demo_wait_seconds", "Wait | time.", buckets=(0.1, 1.0), registry=registry)
    infos = catalogue(registry)
    assert infos == [
        MetricInfo("demo_jobs_total", "counter", ("queue",), (), "Jobs."),
        MetricInfo("demo_wait_seconds", "histogram", (), (0.1, 1.0), "Wait | time."),
    ]
    # A "|" in help must not split the Markdown table row.
    assert "Wait \\| time." in render_markdown(infos)


# -- bounded labels -------------------------------------------------------------------------
def test_flood_of_distinct_repositories_keeps_series_at_limit_plus_one() -> None:
    cap = LabelCap(25, normalise_repository)
    finding = f"flood-{uuid.uuid4().hex[:8]}"
    for i in range(10_000):
        CRITICAL_FINDINGS.labels(
            type=finding, repository=cap(f"https://github.com/o{i}/r{i}")
        ).inc()

    series = _samples("codequal_critical_findings_total", type=finding)
    assert len(series) == 25 + 1
    assert series[(("repository", "other"), ("type", finding))] == 10_000 - 25
    exposed = generate_latest(REGISTRY).decode().splitlines()
    lines = [x for x in exposed if x.startswith("codequal_critical_findings_total{")]
    assert len([x for x in lines if f'type="{finding}"' in x]) == 25 + 1


def test_module_repository_label_bounds_the_series_of_the_shared_metric() -> None:
    finding = f"flood-{uuid.uuid4().hex[:8]}"
    before = len(_samples("codequal_critical_findings_total"))
    for i in range(10_000):
        url = f"https://github.com/owner{i}/name{i}.git"
        CRITICAL_FINDINGS.labels(type=finding, repository=repository_label(url)).inc()
    mine = _samples("codequal_critical_findings_total", type=finding)
    assert len(mine) <= labels.REPOSITORY_CAP.limit + 1
    assert len(_samples("codequal_critical_findings_total")) - before == len(mine)


def test_organization_label_bounds_repositories_analyzed() -> None:
    language = f"lang-{uuid.uuid4().hex[:8]}"
    for i in range(5_000):
        org = organization_label(f"https://gitlab.com/org{i}/project")
        REPOSITORIES_ANALYZED.labels(organization=org, language=language).inc()
    series = _samples("codequal_repositories_analyzed_total", language=language)
    assert len(series) <= labels.ORGANIZATION_CAP.limit + 1


def test_concurrent_first_sightings_admit_exactly_the_limit() -> None:
    cap = LabelCap(40)
    seen: list[str] = []

    def flood(offset: int) -> None:
        seen.extend(cap(f"repo-{offset}-{i}") for i in range(500))

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cap.admitted) == 40
    assert set(seen) == set(cap.admitted) | {"other"}


def test_admitted_value_keeps_its_label_after_the_cap_fills() -> None:
    cap = LabelCap(2)
    assert cap("a") == "a"
    assert cap("b") == "b"
    assert cap("c") == "other"
    assert cap("a") == "a"


def test_empty_value_is_labelled_unknown_never_empty() -> None:
    cap = LabelCap(3)
    assert cap("") == "unknown"
    assert cap("") == "unknown"


def test_raising_the_limit_admits_values_that_were_other() -> None:
    cap = LabelCap(1)
    cap("a")
    assert cap("b") == "other"
    cap.set_limit(2)
    assert cap("b") == "b"


def test_remembered_raw_inputs_stay_bounded_under_a_flood() -> None:
    cap = LabelCap(5, normalise_repository)
    for i in range(labels.MEMO_SIZE * 2):
        cap(f"https://github.com/o/r{i}")
    assert len(cap._memo) <= labels.MEMO_SIZE


def test_configure_label_cap_sets_every_capped_label() -> None:
    previous = (labels.REPOSITORY_CAP.limit, labels.ORGANIZATION_CAP.limit)
    try:
        configure_label_cap(7)
        assert (labels.REPOSITORY_CAP.limit, labels.ORGANIZATION_CAP.limit) == (7, 7)
    finally:
        labels.REPOSITORY_CAP.set_limit(previous[0])
        labels.ORGANIZATION_CAP.set_limit(previous[1])


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_label_cap_rejects_a_limit_that_is_not_a_positive_whole_number(limit: object) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LabelCap(limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:ghp_s3cr3tT0ken@github.com/Owner/Name.git",
        "https://ghp_s3cr3tT0ken@github.com/owner/name",
        "https://x-access-token:ghp_s3cr3tT0ken@github.com/owner/name/pull/12",
        "https://github.com/owner/name?access_token=ghp_s3cr3tT0ken#frag",
        "http://alice:ghp_s3cr3tT0ken@GITHUB.com:443/owner/name/",
        "git@github.com:owner/name.git",
        "ssh://git@github.com:22/owner/name.git",
        "github.com/owner/name",
    ],
)
def test_repository_label_is_host_owner_name_without_credentials(url: str) -> None:
    label = normalise_repository(url)
    assert label == "github.com/owner/name"
    assert "s3cr3t" not in label
    assert normalise_organization(url) == "github.com/owner"


def test_gitlab_nested_group_keeps_the_full_project_path() -> None:
    url = "https://gitlab.com/group/sub/project/-/merge_requests/4"
    assert normalise_repository(url) == "gitlab.com/group/sub/project"


@pytest.mark.parametrize("url", ["", "   ", "http://[::1", "https://"])
def test_unparseable_repository_url_is_labelled_unknown_instead_of_raising(url: str) -> None:
    assert normalise_repository(url) == "unknown"
    assert normalise_organization(url) == "unknown"


# -- process and system gauges --------------------------------------------------------------
def test_process_gauges_are_real_psutil_readings() -> None:
    process = psutil.Process()
    cpu_before = sum(process.cpu_times()[:2])
    values = _system_values()
    cpu_after = sum(process.cpu_times()[:2])
    rss = process.memory_info().rss

    assert values["codequal_process_resident_memory_bytes"] == pytest.approx(rss, rel=0.2)
    assert cpu_before <= values["codequal_process_cpu_seconds_total"] <= cpu_after
    assert values["codequal_process_threads"] >= 1


def test_process_thread_gauge_follows_threads_started() -> None:
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        assert _system_values()["codequal_process_threads"] >= 1 + len(workers)
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def test_system_gauges_are_real_ratios_and_byte_counts() -> None:
    values = _system_values()
    memory = psutil.virtual_memory()
    assert 0 < values["codequal_system_memory_usage_ratio"] < 1
    assert 0 <= values["codequal_system_cpu_usage_ratio"] <= 1
    assert values["codequal_system_memory_total_bytes"] == memory.total
    available = values["codequal_system_memory_available_bytes"]
    assert available == pytest.approx(memory.available, rel=0.2)


def test_failing_psutil_reading_drops_its_families_not_the_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied() -> None:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "virtual_memory", denied)
    exposed = generate_latest(REGISTRY).decode()
    assert "\ncodequal_system_memory_total_bytes " not in exposed
    assert "\ncodequal_process_resident_memory_bytes " in exposed
    assert "\ncodequal_system_cpu_usage_ratio " in exposed


# -- CLI ------------------------------------------------------------------------------------
def test_metrics_list_prints_every_catalogue_name() -> None:
    result = CliRunner().invoke(metrics, ["list"])
    assert result.exit_code == 0, result.output
    for info in catalogue():
        assert info.name in result.output


def test_metrics_list_markdown_is_docs_metrics_md() -> None:
    result = CliRunner().invoke(metrics, ["list", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == render_markdown()


def test_metrics_list_json_has_one_object_per_metric() -> None:
    result = CliRunner().invoke(metrics, ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == [info.name for info in catalogue()]
    duration = next(r for r in rows if r["name"] == "codequal_analysis_duration_seconds")
    assert duration["buckets"][-1] == 600
