"""deploy/docker-compose.monitoring.yml, checked offline: the Compose specification's JSON
schema (shipped in the check-jsonschema package), the files it mounts, pinned images, health
checks, named volumes, and no secret in the file."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest

from codequal import __version__
from codequal.config import is_secret
from tests.deploy.conftest import (
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    compose,
    compose_raw,
    compose_variables,
    example_env,
    interpolate,
    known_setting,
    load_yaml,
    read_env_file,
)

SERVICES = {
    "codequal-1",
    "codequal-2",
    "codequal-worker",
    "postgres",
    "prometheus",
    "alertmanager",
    "grafana",
    "loki",
    "elasticsearch",
}
REPLICAS = ("codequal-1", "codequal-2")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "DSN")


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text("utf-8"))
    return schema


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def test_the_compose_file_validates_against_the_compose_specification_schema() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelled_key() -> None:
    broken = compose()
    broken["services"]["postgres"]["healtcheck"] = broken["services"]["postgres"]["healthcheck"]
    schema = compose_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_the_stack_has_every_service_and_two_codequal_replicas_on_postgresql() -> None:
    found = services()
    assert set(found) == SERVICES
    for name in REPLICAS:
        env = found[name]["environment"]
        assert env["CODEQUAL_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["CODEQUAL_DATABASE_URL"]
        assert "codequal" in found[name]["networks"]["default"]["aliases"]
        assert found[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Separate data dirs: a shared one would mix the replicas' workspaces and spools.
    data = [found[name]["volumes"][0].split(":")[0] for name in REPLICAS]
    assert len(set(data)) == len(REPLICAS)


def test_api_replicas_and_the_worker_run_their_roles_on_one_database() -> None:
    found = services()
    for name in REPLICAS:
        assert found[name]["environment"]["CODEQUAL_ROLE"] == "api"
    worker = found["codequal-worker"]
    env = worker["environment"]
    assert env["CODEQUAL_ROLE"] == "worker"
    assert (
        env["CODEQUAL_DATABASE_URL"] == found[REPLICAS[0]]["environment"]["CODEQUAL_DATABASE_URL"]
    )
    assert env["CODEQUAL_LOKI_URL"] == "http://loki:3100"
    assert "networks" not in worker  # not behind the `codequal` alias: it serves no API
    data = {found[name]["volumes"][0].split(":")[0] for name in (*REPLICAS, "codequal-worker")}
    assert len(data) == len(REPLICAS) + 1


def test_codequal_is_wired_to_loki_and_elasticsearch_as_log_sinks() -> None:
    found = services()
    for name in REPLICAS:
        env = found[name]["environment"]
        assert env["CODEQUAL_LOKI_URL"] == "http://loki:3100"
        assert env["CODEQUAL_ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
    loki = load_yaml(DEPLOY / "loki" / "loki.yml")
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["limits_config"]["allow_structured_metadata"] is True


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_codequal_image_is_built_from_the_repository_and_tagged_with_its_version() -> None:
    for name in REPLICAS:
        service = services()[name]
        assert service["image"] == f"codequal:{__version__}"
        context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
        assert context == ROOT
        assert (context / service["build"]["dockerfile"]).is_file()


def test_every_service_has_a_health_check() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_every_file_the_stack_mounts_exists() -> None:
    mounts = [
        (name, volume.split(":")[0])
        for name, service in services().items()
        for volume in service.get("volumes", [])
        if volume.startswith((".", "/"))
    ]
    assert mounts, "no bind mounts found"
    for name, source in mounts:
        path = (COMPOSE_FILE.parent / source).resolve()
        assert path.exists(), f"{name} mounts {source}, which does not exist"
        assert DEPLOY in path.parents or path == DEPLOY, f"{name} mounts {source} outside deploy/"


def test_state_lives_in_named_volumes_declared_at_the_top_level() -> None:
    data = compose()
    declared = set(data["volumes"])
    used = {
        volume.split(":")[0]
        for service in data["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == declared
    for name in ("postgres", "prometheus", "alertmanager", "grafana", "loki", "elasticsearch"):
        assert any(not v.startswith(".") for v in data["services"][name]["volumes"]), name


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Every secret-looking value is a ${VARIABLE} taken from .env, never a literal."""
    raw = compose_raw()
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key.upper() for word in SECRET_WORDS) or is_secret(key.lower()):
                text = str(value)
                assert "${" in text, f"{name}: {key} holds a literal value"
                literal = re.sub(r"\$\{[^}]*\}", "", text)
                assert not re.search(r":[^@/]+@", literal), f"{name}: {key} embeds a credential"


def test_the_filled_in_env_file_is_git_ignored() -> None:
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_every_variable_is_documented_in_env_example_and_every_documented_one_is_used() -> None:
    used = compose_variables(compose_raw())
    documented = set(read_env_file(ENV_EXAMPLE))
    assert used - documented == set(), "used in the Compose file but not in .env.example"
    assert documented - used == set(), "in .env.example but not used by the Compose file"


def test_env_example_ships_no_secret_values_and_the_stack_refuses_to_start_without_them() -> None:
    example = read_env_file(ENV_EXAMPLE)
    required = compose_variables(compose_raw(), required_only=True)
    assert required, "no required variable"
    for variable in required:
        assert example[variable] == "", f"{variable} has a value in .env.example"
        env = example_env()
        del env[variable]
        with pytest.raises(InterpolationError, match=variable):
            interpolate(compose_raw(), env)


def test_every_codequal_variable_is_a_real_setting() -> None:
    names = set(read_env_file(ENV_EXAMPLE)) | {
        key for service in services().values() for key in service.get("environment", {})
    }
    unknown = {n for n in names if n.startswith("CODEQUAL_") and not known_setting(n)}
    assert not unknown, f"not CodeQual settings (see codequal.config.Settings): {unknown}"


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all addresses"


def test_prometheus_gets_the_metrics_token_as_a_compose_secret() -> None:
    data = compose()
    assert data["secrets"]["metrics_token"] == {"environment": "CODEQUAL_METRICS_TOKEN"}
    assert "metrics_token" in data["services"]["prometheus"]["secrets"]
