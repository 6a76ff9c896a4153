"""Typed settings: explicit argument, then ``CODEQUAL_*`` environment, then YAML file, then default.

Every environment variable is a field of :class:`Settings`; the variable's name is
``CODEQUAL_`` plus the field name in upper case. Invalid values raise :class:`ConfigError` with
one sentence naming the variable and what is allowed, so ``codequal serve`` can stop before it
binds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from codequal.exceptions import ConfigError
from codequal.redaction import HIDDEN, redact_url
from codequal.vocabulary import DURATION_HINT, Level, parse_duration

ENV_PREFIX = "CODEQUAL_"
LogLevel = Level


# Every interval, timeout and retention setting takes Prometheus's duration syntax ("15s", "1m",
# "2h", "7d") or a plain number of seconds (of days for tsdb_retention_days).
def seconds(value: Any) -> float:
    """A setting's duration in seconds (one argument: pydantic passes more to a function that
    takes more)."""
    return parse_duration(value)


def days(value: Any) -> float:
    """A setting's duration in days; a plain number is already days."""
    return parse_duration(value, 86_400.0) / 86_400.0


Duration = Annotated[float, BeforeValidator(seconds)]
Days = Annotated[float, BeforeValidator(days)]
LogFormat = Literal["json", "console", "auto"]
# What a process runs: everything, the HTTP API and ingest only, or the analysis workers only.
Role = Literal["all", "api", "worker"]

# Words that mark a setting as secret: masked by `codequal config show`, never logged.
SECRET_HINTS = (
    "secret", "password", "token", "dsn", "api_key", "database_url", "redis_url",
    "webhook_url", "smtp_url", "routing_key", "remote_write_url",
)  # fmt: skip


class Settings(BaseSettings):
    """Everything CodeQual can be configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path(".codequal")
    database_url: SecretStr | None = None
    service_name: str = "codequal"
    environment: str = "development"
    release: str | None = None

    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"
    log_queue_size: int = Field(default=10_000, ge=10)
    log_batch_size: int = Field(default=500, ge=1)
    log_flush_interval: Duration = Field(default=0.25, gt=0)
    shutdown_timeout: Duration = Field(default=10.0, ge=0)
    # How long start-up may wait for an unreachable database before `codequal serve` gives up.
    startup_timeout: Duration = Field(default=120.0, gt=0)

    redis_url: SecretStr | None = None
    sentry_dsn: SecretStr | None = None
    otlp_endpoint: str | None = None
    loki_url: str | None = None  # log entries are also pushed here (spooled while it is down)
    elasticsearch_url: str | None = None  # and bulk-indexed here, into codequal-logs-YYYY.MM.DD
    deepwiki_dir: Path | None = None
    label_cap: int = Field(default=50, ge=1, le=10_000)
    # `api` serves HTTP and ingest without analysis workers; `worker` runs the workers and the
    # leader's duties and serves only probes and /metrics. Both share one PostgreSQL.
    role: Role = "all"
    # OTLP over gRPC (traces, logs, metrics) on this port of CODEQUAL_HOST; 0 turns it off.
    otlp_grpc_port: int = Field(default=4317, ge=0, le=65535)
    # Every sample the metric history stores is also shipped here (Prometheus remote write 1.0,
    # spooled on disk while the receiver is down): Prometheus, Mimir, Thanos, VictoriaMetrics.
    remote_write_url: str | None = None

    # -- authentication (see codequal.security) ----------------------------------------------
    jwt_secret: SecretStr | None = None  # HS256; generated into the data dir when unset
    jwt_public_key: Path | None = None  # PEM file; RS256 or ES256
    jwt_jwks: Path | None = None  # JWKS file; RS256 or ES256
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] | None = None  # default from the above
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    metrics_token: SecretStr | None = None  # /metrics requires this bearer token when set
    public_dashboard: bool = True
    long_running_seconds: Duration = Field(default=600.0, gt=0)  # dashboard flags analyses past it
    auth_failures_per_minute: int = Field(default=30, ge=1)

    # -- metric history and alerting ----------------------------------------------------------
    scrape_interval: Duration = Field(default=15.0, ge=1.0)
    tsdb_retention_days: Days = Field(default=15.0, gt=0)
    rule_interval: Duration = Field(default=15.0, ge=1.0)
    # Several replicas on one PostgreSQL: each one's samples carry its own `instance` label
    # (default <hostname>:<port>), and each writes its in-memory samples every flush interval,
    # which is how stale another replica's newest samples can look to the leader's rules.
    instance: str | None = None
    tsdb_flush_interval: Duration = Field(default=60.0, ge=1.0)
    rule_files: str | None = None  # comma-separated paths or globs, added to the shipped rules
    slack_webhook_url: SecretStr | None = None
    smtp_url: SecretStr | None = None  # smtp://user:pass@host:587?starttls=true
    alert_email_to: str | None = None
    alert_email_from: str = "codequal@localhost"
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_url: str = "https://events.pagerduty.com"
    webhook_url: SecretStr | None = None
    alertmanager_url: str | None = None
    external_url: str | None = None  # the base of runbook and generator links in alerts
    # Alertmanager's route timing, used by the embedded notifier and by `rules export`.
    alert_group_wait: Duration = Field(default=30.0, ge=0)
    alert_group_interval: Duration = Field(default=300.0, gt=0)
    alert_repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)
    # -- PromQL query limits (API, rules, dashboard; see codequal.tsdb.promql.limits) ----------
    query_timeout: Duration = Field(default=120.0, gt=0)
    query_max_samples: int = Field(default=5_000_000, ge=1000)  # see tsdb/promql/limits.py
    query_max_concurrency: int = Field(default=2, ge=1, le=64)  # CPU-bound under one GIL

    # -- the analysis pipeline -----------------------------------------------------------------
    max_concurrent_analyses: int = Field(default=2, ge=1, le=64)
    agent_timeout: Duration = Field(default=300.0, gt=0)
    # The whole analysis (clone, agents, report); agents that run past it are stopped.
    analysis_timeout: Duration = Field(default=900.0, gt=0)
    # One tool run on one file: a file a tool hangs on is skipped and the rest analysed.
    file_timeout: Duration = Field(default=60.0, gt=0)
    exclude: str | None = None  # comma-separated gitignore-style patterns never analysed
    # -- repository policy for analyses submitted over the API (the CLI reads what its user can)
    repository_roots: str | None = None  # comma-separated directories local paths may be under
    allow_private_repositories: bool = False  # loopback / private / link-local hosts allowed
    allow_ssh_repositories: bool = False  # ssh:// and user@host:path URLs allowed
    clone_timeout: Duration = Field(default=300.0, gt=0)  # the whole clone
    clone_connect_timeout: Duration = Field(default=10.0, gt=0)  # until the remote answers
    llm_base_url: str | None = None  # an OpenAI-compatible API, e.g. https://api.openai.com/v1
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None
    pricing_file: Path | None = None  # LLM prices per model; the shipped table by default
    price_cpu_hour: float = Field(default=0.04048, ge=0)
    price_memory_gb_hour: float = Field(default=0.004445, ge=0)
    price_disk_gb_month: float = Field(default=0.08, ge=0)
    daily_budget: float | None = Field(
        default=None, ge=0
    )  # dollars; cost analytics flags days over it
    analysis_cost_alert: float | None = Field(default=None, ge=0)  # dollars per analysis

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalise_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warn" if value == "warning" else value
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _normalise_role(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("remote_write_url")
    @classmethod
    def _check_remote_write_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an http:// or https:// URL, such as http://prometheus:9090/api/v1/write"
            )
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _normalise_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _parse_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            url = make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("backend must be sqlite or postgresql")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file is passed as init data under a private key by load_settings, so the
        # order explicit > environment > file > default holds.
        return init_settings, env_settings

    # -- derived locations -------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in force: the configured one or SQLite in the data dir."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'codequal.db').resolve()}"

    @property
    def alert_timing(self) -> tuple[float, float, float]:
        """(group_wait, group_interval, repeat_interval) in seconds."""
        return (self.alert_group_wait, self.alert_group_interval, self.alert_repeat_interval)

    @property
    def resolved_deepwiki_dir(self) -> Path:
        return self.deepwiki_dir if self.deepwiki_dir is not None else self.data_dir / "deepwiki"


# Human sentences for what each constrained field allows, used in ConfigError messages.
_ALLOWED = {
    "port": "a whole number from 1 to 65535",
    "log_level": "one of debug, info, warn, error, critical",
    "log_format": "one of json, console, auto",
    "role": "one of all, api, worker",
    "otlp_grpc_port": "a whole number from 0 (off) to 65535",
    "database_url": "a URL such as postgresql+psycopg://user@host:5432/db or sqlite:///path.db",
    "log_queue_size": "a whole number of at least 10",
    "log_batch_size": "a whole number of at least 1",
    "label_cap": "a whole number from 1 to 10000",
    "jwt_algorithm": "one of HS256, RS256, ES256",
    "public_dashboard": "true or false",
    "auth_failures_per_minute": "a whole number of at least 1",
    "max_concurrent_analyses": "a whole number from 1 to 64",
    "allow_private_repositories": "true or false",
    "allow_ssh_repositories": "true or false",
    "query_max_samples": "a whole number of at least 1000",
    "query_max_concurrency": "a whole number from 1 to 64",
}
_DURATIONS = (
    "log_flush_interval", "shutdown_timeout", "startup_timeout", "long_running_seconds",
    "scrape_interval", "tsdb_retention_days", "rule_interval", "tsdb_flush_interval",
    "alert_group_wait", "alert_group_interval", "alert_repeat_interval", "agent_timeout",
    "analysis_timeout", "file_timeout", "clone_timeout", "clone_connect_timeout",
    "query_timeout",
)  # fmt: skip
_LIMITS = {
    "log_flush_interval": "above 0", "shutdown_timeout": "0 or more", "startup_timeout": "above 0",
    "long_running_seconds": "above 0", "scrape_interval": "1s or more",
    "tsdb_retention_days": "above 0 (a number alone is days)", "rule_interval": "1s or more",
    "tsdb_flush_interval": "1s or more", "alert_group_wait": "0 or more",
    "alert_group_interval": "above 0", "alert_repeat_interval": "above 0",
    "agent_timeout": "above 0", "query_timeout": "above 0",
    "analysis_timeout": "above 0", "file_timeout": "above 0",
    "clone_timeout": "above 0", "clone_connect_timeout": "above 0",
}  # fmt: skip
_ALLOWED.update({name: f"{DURATION_HINT}, {_LIMITS[name]}" for name in _DURATIONS})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value.")
    return {str(k).lower(): v for k, v in data.items()}


def load_settings(config_file: Path | str | None = None, **explicit: Any) -> Settings:
    """Build settings from explicit values, the environment, an optional YAML file, defaults.

    Explicit values of ``None`` are ignored, so CLI options left unset fall through.
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    file_values = _read_yaml(Path(config_file)) if config_file else {}
    env_names = {
        name for name in Settings.model_fields if f"{ENV_PREFIX}{name.upper()}" in os.environ
    }
    # The file only fills what neither an explicit argument nor the environment set.
    merged = {k: v for k, v in file_values.items() if k not in env_names} | given
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    variable = f"{ENV_PREFIX}{field.upper()}"
    if first["type"] == "extra_forbidden":
        return f"unknown setting {field!r}: see `codequal config show` for the known ones."
    allowed = _ALLOWED.get(field)
    value = first.get("input")
    shown = "***" if is_secret(field) else repr(value)
    if allowed:
        return f"{variable} is {shown}, but it must be {allowed}."
    return f"{variable} is {shown}: {first['msg']}."


def is_secret(field: str) -> bool:
    return any(hint in field for hint in SECRET_HINTS)


# Secret settings whose whole path is the credential (a webhook's URL is its password).
_SECRET_PATH_SETTINGS = ("slack_webhook_url", "webhook_url")


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets masked, for `codequal config show`.

    A URL keeps where it points (scheme, host, port, path) and loses who and with what: its
    userinfo, its secret query values, and a webhook's path (:func:`codequal.redaction.
    redact_url`); any other secret is ``***``.
    """
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            pass
        elif isinstance(value, SecretStr) or is_secret(name):
            value = _mask(name, value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str) and "://" in value:
            value = redact_url(value)
        out[name] = value
    return out


def _mask(name: str, value: Any) -> str:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if "://" not in raw:
        return HIDDEN
    return redact_url(raw, hide_path=name in _SECRET_PATH_SETTINGS)
