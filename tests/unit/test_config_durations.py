"""Every interval, timeout and retention setting takes Prometheus's duration syntax."""

from __future__ import annotations

import pytest

from codequal.config import Settings, load_settings, seconds
from codequal.exceptions import ConfigError
from codequal.vocabulary import parse_duration

DURATION_SETTINGS = (
    "log_flush_interval", "shutdown_timeout", "startup_timeout", "long_running_seconds",
    "scrape_interval", "rule_interval", "tsdb_flush_interval", "alert_group_wait",
    "alert_group_interval", "alert_repeat_interval", "agent_timeout", "analysis_timeout",
    "file_timeout", "clone_timeout", "clone_connect_timeout",
)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("15", 15), ("1m", 60), ("2h", 7200), ("7d", 604_800), ("1h30m", 5400),
     ("250ms", 0.25), ("1w", 604_800), (" 90 ", 90), ("0.5", 0.5)],
)  # fmt: skip
def test_prometheus_durations_and_plain_seconds_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "1m1h", "5x", "1s1s", "-5", "inf", "nan", "1.5m"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a duration such as 15s"):
        parse_duration(text)


@pytest.mark.parametrize("name", DURATION_SETTINGS)
def test_every_interval_setting_takes_both_forms(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"CODEQUAL_{name.upper()}", "2m")
    assert getattr(load_settings(), name) == 120.0
    monkeypatch.setenv(f"CODEQUAL_{name.upper()}", "120")
    assert getattr(load_settings(), name) == 120.0


def test_retention_counts_plain_numbers_as_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEQUAL_TSDB_RETENTION_DAYS", "2w")
    assert load_settings().tsdb_retention_days == 14.0
    monkeypatch.setenv("CODEQUAL_TSDB_RETENTION_DAYS", "30")
    assert load_settings().tsdb_retention_days == 30.0


@pytest.mark.parametrize("name", [*DURATION_SETTINGS, "tsdb_retention_days"])
def test_a_bad_duration_is_one_sentence_naming_the_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = f"CODEQUAL_{name.upper()}"
    monkeypatch.setenv(variable, "soon")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"{variable} is 'soon'")
    assert "a duration such as 15s, 1m, 2h, 7d" in message and "\n" not in message


def test_the_duration_settings_are_the_ones_declared() -> None:
    declared = {
        name
        for name, field in Settings.model_fields.items()
        if any(getattr(m, "func", None) is seconds for m in field.metadata)
    }
    assert declared == set(DURATION_SETTINGS)
