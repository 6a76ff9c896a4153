"""Load scenario for CodeQual: dashboard and API reads, log / error / span ingest in the wire
formats CodeQual speaks (Loki push JSON, OTLP/HTTP JSON, Sentry envelopes), and analysis
submissions at a fixed rate, against any CodeQual URL.

    export CODEQUAL_TOKEN=$(codequal token create --ttl 2h \\
        --scope monitoring:read --scope analyses:write --scope ingest:write)
    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --users 20 --spawn-rate 5 --run-time 10m

loadtest/README.md lists the options (rates, the repository to analyse, the Sentry DSN, several
replicas). Every request is named by CodeQual's route template, so Locust's statistics line up
with CodeQual's own ``codequal_http_requests_total{route}``; the items each ingest request
carried and CodeQual acknowledged are counted too, and printed (or written with
``--items-json``) when the run ends, to compare with ``codequal_ingest_items_total``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from locust import HttpUser, events, task
from locust.env import Environment
from locust.user.wait_time import constant_pacing

TOKEN_ENV = "CODEQUAL_TOKEN"  # noqa: S105 - the name of the variable, not a secret

# Route templates, exactly as CodeQual's router declares them.
PUBLIC_DASHBOARD = "/api/monitoring/public/dashboard"
DASHBOARD = "/api/monitoring/dashboard"
ANALYSES = "/api/analyses"
ANALYSIS = "/api/analyses/{analysis_id}"
LOGS = "/api/monitoring/logs"
ERRORS = "/api/monitoring/errors"
COSTS = "/api/monitoring/costs"
INSIGHTS = "/api/monitoring/insights"
READY = "/ready"
LOKI_PUSH = "/loki/api/v1/push"
OTLP_TRACES = "/v1/traces"
SENTRY_ENVELOPE = "/api/{project_id}/envelope/"

SERVICES = ("checkout", "payments", "search")
LEVELS = ("debug", "info", "info", "info", "warn", "error")
ERROR_TYPES = ("ValueError", "KeyError", "TimeoutError")  # few types: issues group and count

log = logging.getLogger("codequal.loadtest")

# Items CodeQual acknowledged (2xx), by kind; and analysis ids to read back (bounded).
acknowledged: Counter[str] = Counter()
submitted_ids: deque[str] = deque(maxlen=500)
_user_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("CodeQual scenario")
    group.add_argument(
        "--user-rps",
        type=float,
        default=1.0,
        env_var="LOCUST_USER_RPS",
        help="Task runs per second of each reader and ingest user (total: users x this).",
    )
    group.add_argument(
        "--analyses-per-minute",
        type=float,
        default=6.0,
        env_var="LOCUST_ANALYSES_PER_MINUTE",
        help="Analysis submissions per minute, for the whole run (one submitting user).",
    )
    group.add_argument(
        "--analysis-repo",
        default="",
        env_var="LOCUST_ANALYSIS_REPO",
        help="Repository the server can read (path, file:// or https URL); empty: no analyses.",
    )
    group.add_argument("--analysis-base", default="main", env_var="LOCUST_ANALYSIS_BASE")
    group.add_argument("--analysis-head", default="HEAD", env_var="LOCUST_ANALYSIS_HEAD")
    group.add_argument(
        "--analysis-mode",
        default="quick",
        choices=["quick", "comprehensive", "deep", "auto"],
        env_var="LOCUST_ANALYSIS_MODE",
    )
    group.add_argument(
        "--loki-lines", type=int, default=20, env_var="LOCUST_LOKI_LINES", help="Per push."
    )
    group.add_argument(
        "--otlp-spans", type=int, default=10, env_var="LOCUST_OTLP_SPANS", help="Per request."
    )
    group.add_argument(
        "--sentry-dsn",
        default="",
        env_var="LOCUST_SENTRY_DSN",
        help="DSN from `codequal keys create --sentry-dsn`; empty: no Sentry envelopes.",
    )
    group.add_argument(
        "--hosts",
        default="",
        env_var="LOCUST_HOSTS",
        help="Comma-separated base URLs to spread users over (several replicas, no balancer).",
    )
    group.add_argument(
        "--items-json",
        default="",
        env_var="LOCUST_ITEMS_JSON",
        help="Write the acknowledged item counts to this JSON file at the end.",
    )


@events.test_start.add_listener
def _check_setup(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if not os.environ.get(TOKEN_ENV):
        log.error("%s is not set: every authenticated request will fail with 401", TOKEN_ENV)
    if options is not None and not options.analysis_repo:
        log.warning("analysis submissions are off: pass --analysis-repo")
    if options is not None and not options.sentry_dsn:
        log.warning("Sentry envelopes are off: pass --sentry-dsn")


@events.test_stop.add_listener
def _report_items(environment: Environment, **_kwargs: Any) -> None:
    counts = dict(sorted(acknowledged.items()))
    log.info("acknowledged items: %s", json.dumps(counts))
    path = environment.parsed_options.items_json if environment.parsed_options else ""
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(counts, out, indent=2)


# -- payloads (pure functions of their inputs) ---------------------------------------------------
def loki_push(lines: int, now_ns: int) -> dict[str, Any]:
    """A Loki push body: one stream per level, nanosecond timestamps as strings."""
    streams: dict[tuple[str, str], list[list[str]]] = {}
    for i in range(lines):
        service, level = secrets.choice(SERVICES), secrets.choice(LEVELS)
        line = json.dumps({"msg": "request handled", "n": i, "trace_id": secrets.token_hex(16)})
        streams.setdefault((service, level), []).append([str(now_ns + i), line])
    return {
        "streams": [
            {"stream": {"service": s, "level": lv, "job": "loadtest"}, "values": values}
            for (s, lv), values in streams.items()
        ]
    }


def otlp_traces(spans: int, now_ns: int) -> dict[str, Any]:
    """An OTLP/HTTP JSON trace export: one trace, hex ids, a root and its children."""
    trace_id, root_id = secrets.token_hex(16), secrets.token_hex(8)
    items = []
    for i in range(spans):
        start = now_ns + i * 1_000_000
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": root_id if i == 0 else secrets.token_hex(8),
            "name": "GET /checkout" if i == 0 else f"db.query {i}",
            "kind": 2 if i == 0 else 3,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 500_000),
            "attributes": [{"key": "loadtest", "value": {"boolValue": True}}],
            "status": {"code": 1},
        }
        if i:
            span["parentSpanId"] = root_id
        items.append(span)
    service = {"key": "service.name", "value": {"stringValue": secrets.choice(SERVICES)}}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [service]},
                "scopeSpans": [{"scope": {"name": "codequal-loadtest"}, "spans": items}],
            }
        ]
    }


def sentry_envelope(dsn: str, now: float) -> bytes:
    """A Sentry envelope with one error event (header line, item header with length, payload)."""
    event_id = secrets.token_hex(16)
    error_type = secrets.choice(ERROR_TYPES)
    event = {
        "event_id": event_id,
        "timestamp": now,
        "platform": "python",
        "level": "error",
        "tags": {"service": secrets.choice(SERVICES)},
        "exception": {
            "values": [
                {
                    "type": error_type,
                    "value": f"load test {error_type} for order {secrets.randbelow(10_000)}",
                    "stacktrace": {
                        "frames": [
                            {"filename": "app.py", "function": "handle", "in_app": True},
                            {"filename": "orders.py", "function": "place", "in_app": True},
                        ]
                    },
                }
            ]
        },
    }
    payload = json.dumps(event).encode()
    sent_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    header = {"event_id": event_id, "dsn": dsn, "sent_at": sent_at}
    item = {"type": "event", "content_type": "application/json", "length": len(payload)}
    return b"\n".join([json.dumps(header).encode(), json.dumps(item).encode(), payload]) + b"\n"


def dsn_parts(dsn: str) -> tuple[str, int]:
    """(public key, project id) of ``http(s)://<key>@<host>:<port>/<project id>``."""
    parts = urlsplit(dsn)
    project = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not parts.username or not project.isdigit():
        raise ValueError(f"not a Sentry DSN: {dsn!r}")
    return parts.username, int(project)


# -- users ---------------------------------------------------------------------------------------
class _CodeQualUser(HttpUser):
    """Bearer token, optional spreading over several base URLs, per-user pacing."""

    abstract = True
    host = "http://127.0.0.1:8080"

    def on_start(self) -> None:
        options = self.environment.parsed_options
        rate = options.user_rps if options is not None else 1.0
        self._connect(next(_user_numbers))
        self._pace = constant_pacing(1.0 / rate if rate > 0 else 1.0)

    def _connect(self, number: int) -> None:
        """The token, and the ``number``-th of --hosts (round robin) when several are given."""
        options = self.environment.parsed_options
        hosts = [h.strip() for h in (options.hosts if options else "").split(",") if h.strip()]
        if hosts:
            self.client.base_url = hosts[number % len(hosts)].rstrip("/")
        self.client.headers["Authorization"] = f"Bearer {os.environ.get(TOKEN_ENV, '')}"

    def wait_time(self) -> float:
        return self._pace(self)

    def _get(self, path: str, name: str, **params: Any) -> None:
        with self.client.get(path, params=params, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")


class DashboardAndApiReader(_CodeQualUser):
    """What a person with the dashboard open and a CI system polling reports cause."""

    weight = 3

    @task(4)
    def public_dashboard(self) -> None:
        self._get(PUBLIC_DASHBOARD, PUBLIC_DASHBOARD, range="1h")

    @task(3)
    def dashboard(self) -> None:
        self._get(DASHBOARD, DASHBOARD, range=secrets.choice(("1h", "6h", "24h")))

    @task(2)
    def analyses(self) -> None:
        self._get(ANALYSES, ANALYSES, limit=20)

    @task(2)
    def analysis(self) -> None:
        if submitted_ids:
            analysis_id = secrets.choice(submitted_ids)
            self._get(f"{ANALYSES}/{analysis_id}", ANALYSIS)
        else:
            self._get(ANALYSES, ANALYSES, limit=5)

    @task(2)
    def logs(self) -> None:
        self._get(LOGS, LOGS, level="warn", limit=50)

    @task(1)
    def errors(self) -> None:
        self._get(ERRORS, ERRORS, limit=20)

    @task(1)
    def costs(self) -> None:
        self._get(COSTS, COSTS, period="1d")

    @task(1)
    def insights(self) -> None:
        self._get(INSIGHTS, INSIGHTS, period="1d")

    @task(1)
    def ready(self) -> None:
        self._get(READY, READY)


class TelemetryIngester(_CodeQualUser):
    """Other services sending their logs, spans and errors to CodeQual."""

    weight = 2

    def on_start(self) -> None:
        super().on_start()
        options = self.environment.parsed_options
        self._lines = options.loki_lines if options else 20
        self._spans = options.otlp_spans if options else 10
        self._dsn = options.sentry_dsn if options else ""
        self._sentry = dsn_parts(self._dsn) if self._dsn else None

    @task(3)
    def loki(self) -> None:
        body = loki_push(self._lines, time.time_ns())
        with self.client.post(
            LOKI_PUSH, json=body, name=LOKI_PUSH, catch_response=True
        ) as response:
            if response.status_code == 204:
                acknowledged["loki_lines"] += self._lines
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(2)
    def otlp(self) -> None:
        body = otlp_traces(self._spans, time.time_ns())
        with self.client.post(
            OTLP_TRACES, json=body, name=OTLP_TRACES, catch_response=True
        ) as response:
            rejected = _rejected_spans(response.text) if response.status_code == 200 else 0
            if response.status_code != 200 or rejected:
                response.failure(f"{response.status_code}, {rejected} rejected: {response.text}")
            else:
                acknowledged["otlp_spans"] += self._spans

    @task(1)
    def sentry(self) -> None:
        if self._sentry is None:
            self.loki()  # no DSN: keep the ingest mix's request rate
            return
        key, project = self._sentry
        path = SENTRY_ENVELOPE.format(project_id=project)
        headers = {
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=codequal-loadtest/1.0, "
            f"sentry_key={key}",
        }
        with self.client.post(
            path,
            data=sentry_envelope(self._dsn, time.time()),
            headers=headers,
            name=SENTRY_ENVELOPE,
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                acknowledged["sentry_events"] += 1
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")


def _rejected_spans(text: str) -> int:
    try:
        partial = json.loads(text or "{}").get("partialSuccess") or {}
    except ValueError:
        return 0
    return int(partial.get("rejectedSpans") or 0)


class AnalysisSubmitter(_CodeQualUser):
    """One user submitting analyses at --analyses-per-minute, whatever the user count."""

    fixed_count = 1

    def on_start(self) -> None:
        options = self.environment.parsed_options
        per_minute = options.analyses_per_minute if options else 6.0
        self._options = options
        self._connect(0)
        # Without a repository there is nothing to submit: sleep between no-op runs.
        idle = not (options and options.analysis_repo) or per_minute <= 0
        self._pace = constant_pacing(3600.0 if idle else 60.0 / per_minute)

    @task
    def submit(self) -> None:
        options = self._options
        if options is None or not options.analysis_repo:
            return
        body = {
            "repositoryUrl": options.analysis_repo,
            "base": options.analysis_base,
            "head": options.analysis_head,
            "mode": options.analysis_mode,
        }
        with self.client.post(ANALYSES, json=body, name=ANALYSES, catch_response=True) as reply:
            if reply.status_code == 202:
                submitted_ids.append(reply.json()["id"])
                acknowledged["analyses"] += 1
            else:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")
