"""Prometheus and Alertmanager configs, checked by the real tools (Debian's promtool, amtool).

prometheus.yml names paths that exist only inside the Prometheus container (the exported rule
files, the metrics-token secret); the test maps each to its file here, after checking that the
Compose file really mounts it at that path, and runs `promtool check config`, which also checks
every rule file the config loads. The rule files and alertmanager.yml are what `codequal rules
export` and `codequal slo generate` write, run into a temporary directory; a missing or failing
command fails the tests that need its files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY, Generated, compose, load_yaml, run, tool

PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
GENERATED_IN_CONTAINER = "/etc/prometheus/generated"
TOKEN_IN_CONTAINER = "/run/secrets/metrics_token"
RULES_IN_CONTAINER = f"{GENERATED_IN_CONTAINER}/*.rules.yml"
NO_RULES = "`codequal rules export` and `codequal slo generate` wrote no rule file"


def prometheus_config() -> dict[str, object]:
    config = load_yaml(PROMETHEUS_YML)
    assert isinstance(config, dict)
    return config


def test_prometheus_yml_names_the_paths_compose_mounts_into_the_prometheus_container() -> None:
    service = compose()["services"]["prometheus"]
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    assert "/etc/prometheus/prometheus.yml" in targets
    assert GENERATED_IN_CONTAINER in targets
    assert prometheus_config()["rule_files"] == [RULES_IN_CONTAINER]
    # Compose mounts a secret named metrics_token at /run/secrets/metrics_token.
    assert "metrics_token" in service["secrets"]
    assert TOKEN_IN_CONTAINER in PROMETHEUS_YML.read_text(encoding="utf-8")


def test_prometheus_scrapes_every_replica_and_the_worker_with_the_metrics_token() -> None:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}  # type: ignore[attr-defined]
    codequal = jobs["codequal"]
    assert codequal["metrics_path"] == "/metrics"
    assert codequal["authorization"]["credentials_file"] == TOKEN_IN_CONTAINER
    targets = {t for group in codequal["static_configs"] for t in group["targets"]}
    assert targets == {"codequal-1:8080", "codequal-2:8080", "codequal-worker:8080"}
    assert set(compose()["services"]) >= {"codequal-1", "codequal-2", "codequal-worker"}


def promtool_check_config(tmp_path: Path, generated: Path | None) -> str:
    """`promtool check config` on prometheus.yml with its container paths mapped to files here;
    without ``generated``, the rule_files line is dropped (see the module docstring)."""
    token = tmp_path / "metrics_token"
    token.write_text("test-token\n")
    text = PROMETHEUS_YML.read_text(encoding="utf-8").replace(TOKEN_IN_CONTAINER, str(token))
    if generated is not None:
        text = text.replace(GENERATED_IN_CONTAINER, str(generated))
    config = yaml.safe_load(text)
    if generated is None:
        del config["rule_files"]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = run([tool("promtool"), "check", "config", str(checked)])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prometheus_yml_without_its_rule_files_passes_promtool_check_config(
    tmp_path: Path,
) -> None:
    assert "SUCCESS" in promtool_check_config(tmp_path, None)


def test_prometheus_yml_with_the_generated_rule_files_passes_promtool_check_config(
    generated: Generated, tmp_path: Path
) -> None:
    assert generated.rule_files(), NO_RULES
    output = promtool_check_config(tmp_path, generated.root)
    for path in generated.rule_files():
        assert f"Checking {path}" in output, f"prometheus.yml does not load {path.name}"


def test_prometheus_loads_every_generated_rule_file(generated: Generated) -> None:
    files = generated.rule_files()
    assert files, NO_RULES
    promtool = tool("promtool")
    unloaded = [f for f in files if f.parent != generated.root or not f.match("*.rules.yml")]
    assert not unloaded, (
        "prometheus.yml loads generated/*.rules.yml, but the commands also wrote "
        f"{[str(f.relative_to(generated.root)) for f in unloaded]}: align the two"
    )
    result = run([promtool, "check", "rules", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_exported_rules_and_alertmanager_config_are_where_the_stack_reads_them(
    generated: Generated,
) -> None:
    assert generated.alertmanager.is_file(), "codequal rules export wrote no alertmanager.yml"
    exported = [f for f in generated.rule_files() if f.name != "slo.rules.yml"]
    assert exported, "codequal rules export wrote no rule file"


def test_the_exported_alertmanager_config_passes_amtool_check_config(
    generated: Generated,
) -> None:
    result = run([tool("amtool"), "check-config", str(generated.alertmanager)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_runs_the_exported_config_from_the_mounted_directory() -> None:
    service = compose()["services"]["alertmanager"]
    assert "--config.file=/etc/alertmanager/generated/alertmanager.yml" in service["command"]
    assert "./generated:/etc/alertmanager/generated:ro" in service["volumes"]
    # The directory exists in the repository (so the mount works) and ignores its contents
    # (the exported Alertmanager config holds channel secrets).
    ignore = (DEPLOY / "generated" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*" in ignore and "!.gitignore" in ignore
    alerting = prometheus_config()["alerting"]
    targets = alerting["alertmanagers"][0]["static_configs"][0]["targets"]  # type: ignore[index]
    assert targets == ["alertmanager:9093"]
