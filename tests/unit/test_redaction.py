"""One redaction for every URL CodeQual shows: userinfo, secret parameters, webhook paths."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from codequal.cli.config_cmd import config
from codequal.redaction import redact_text, redact_url
from codequal.telemetry.scrub import scrub_text

CANARY = "S3cretCanary9"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://alice:{CANARY}@git.example.com/x.git", "https://***@git.example.com/x.git"),
        (f"https://{CANARY}@github.com/org/repo", "https://***@github.com/org/repo"),
        (f"http://{CANARY}@127.0.0.1:8080/3", "http://***@127.0.0.1:8080/3"),  # a Sentry DSN
        (f"https://es.example:9200/?api_key={CANARY}&pretty=1",
         "https://es.example:9200/?api_key=***&pretty=1"),
        (f"https://h/p?X-Amz-Signature={CANARY}&a=1", "https://h/p?X-Amz-Signature=***&a=1"),
        (f"https://hooks.slack.com/services/T0/B0/{CANARY}", "https://hooks.slack.com/***"),
        (f"git@github.com:org/{CANARY}.git", f"***@github.com:org/{CANARY}.git"),
        ("http://127.0.0.1:3100", "http://127.0.0.1:3100"),
        ("/srv/repos/app", "/srv/repos/app"),
    ],
)  # fmt: skip
def test_urls_keep_where_they_point_and_lose_their_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_webhook_passed_as_secret_keeps_only_its_host() -> None:
    assert redact_url(f"https://hooks.example.com/a/{CANARY}", hide_path=True) == (
        "https://hooks.example.com/***"
    )


def test_every_url_in_free_text_is_redacted() -> None:
    text = f"clone of https://bot:{CANARY}@git.example.com/r.git failed; see http://ok.example/"
    assert redact_text(text) == (
        "clone of https://***@git.example.com/r.git failed; see http://ok.example/"
    )


def test_scrubbing_removes_a_token_or_dsn_key_used_as_userinfo() -> None:
    argv = f'sentry_sdk.init(dsn="https://{CANARY}abc@o1.ingest.sentry.io/42")'
    assert CANARY not in scrub_text(argv)
    assert CANARY not in scrub_text(f"git clone https://{CANARY}@github.com/o/r")


URL_SETTINGS = {
    "CODEQUAL_LOKI_URL": f"https://loki:{CANARY}@logs.example:3100",
    "CODEQUAL_ELASTICSEARCH_URL": f"https://elastic:{CANARY}@es.example:9200",
    "CODEQUAL_OTLP_ENDPOINT": f"https://otel.example:4318/?token={CANARY}",
    "CODEQUAL_ALERTMANAGER_URL": f"https://am:{CANARY}@am.example:9093",
    "CODEQUAL_SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T0/B0/{CANARY}",
    "CODEQUAL_WEBHOOK_URL": f"https://hooks.example.com/in/{CANARY}",
    "CODEQUAL_SENTRY_DSN": f"https://{CANARY}@o1.ingest.sentry.io/42",
    "CODEQUAL_DATABASE_URL": f"postgresql+psycopg://cq:{CANARY}@db.example:5432/codequal",
    "CODEQUAL_REDIS_URL": f"redis://:{CANARY}@cache.example:6379/0",
    "CODEQUAL_SMTP_URL": f"smtp://mail:{CANARY}@smtp.example:587?starttls=true",
    "CODEQUAL_LLM_API_KEY": CANARY,
    "CODEQUAL_JWT_SECRET": CANARY * 4,
}


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_prints_no_credential_of_any_url_setting(as_json: bool) -> None:
    args = ["show", "--json"] if as_json else ["show"]
    result = CliRunner().invoke(config, args, env=URL_SETTINGS)
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output
    if as_json:
        shown = json.loads(result.output)
        assert shown["loki_url"] == "https://***@logs.example:3100"
        assert shown["slack_webhook_url"] == "https://hooks.slack.com/***"
        assert shown["database_url"] == "postgresql+psycopg://***@db.example:5432/codequal"
