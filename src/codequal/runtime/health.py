"""The health report: every dependency checked now, plus what is reported but never fails the
probe (notification channels, delivering sinks, this replica's leadership).

The ``startup`` check carries what ``/ready`` knows, so the two never disagree: a process that
is not ready (starting, given up, shutting down) is not healthy either.
"""

from __future__ import annotations

import time
from typing import Any

from codequal import __version__
from codequal.runtime import checks
from codequal.runtime.process import Runtime
from codequal.vocabulary import iso_timestamp


def health_data(runtime: Runtime) -> dict[str, Any]:
    """Run every check now; "healthy" when no enabled check failed."""
    results = {
        "startup": _startup(runtime),
        "database": checks.check_database(runtime.db),
        "vectorDB": checks.check_vector_db(runtime.db),
        "deepWiki": checks.check_deepwiki(runtime.settings.resolved_deepwiki_dir),
        "redis": checks.check_redis(runtime.redis),
    }
    healthy = all(c.status != "error" for c in results.values())
    leadership = runtime.leadership
    body: dict[str, Any] = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": iso_timestamp(time.time()),
        "version": __version__,
        "checks": {name: c.to_dict() for name, c in results.items()},
        "replica": {
            "instance": runtime.instance,
            "leader": leadership.is_leader if leadership is not None else False,
        },
        # Reported, never failing the probe: a broken Slack webhook must not restart the pod.
        "notificationChannels": runtime.alerting.notifier.channel_health(),
    }
    sinks = _sink_health(runtime)
    if sinks:
        body["sinks"] = sinks
        if healthy and any(v["status"] != "ok" for v in sinks.values()):
            body["status"] = "degraded"  # still 200: a slow Loki must not fail the probe
    return body


def _startup(runtime: Runtime) -> checks.CheckResult:
    """What /ready knows: started, still starting (and why not yet), given up, shutting down."""
    if runtime.is_ready():
        return checks.CheckResult("ok", None, "started")
    if runtime.shutting_down:
        return checks.CheckResult("error", None, "shutting down")
    if runtime.failed:
        return checks.CheckResult("error", None, f"start-up failed: {runtime.startup_error}")
    return checks.CheckResult("error", None, runtime.startup_error or "starting")


def _sink_health(runtime: Runtime) -> dict[str, dict[str, Any]]:
    if runtime.started is None:
        return {}
    sinks = [*runtime.started.telemetry.delivering_sinks()]
    if runtime.remote_write is not None:
        sinks.append(runtime.remote_write)
    return {sink.name: {"status": sink.health()} for sink in sinks}
