"""The Alertmanager channel against the real prometheus-alertmanager, which routes to a
webhook receiver on loopback: what we post is what Alertmanager delivers, our inhibition rules
work there too, and our own webhook JSON has exactly the keys Alertmanager's has."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from codequal.alerting.channels import Notification
from codequal.alerting.channels.alertmanager import AlertmanagerChannel
from codequal.alerting.channels.base import NotificationStatus
from codequal.alerting.channels.webhook import webhook_payload
from codequal.alerting.model import Alert
from codequal.alerting.routing import DEFAULT_INHIBIT_RULES, group_key, group_labels

from ..unit.alerting_notify.helpers import CaptureServer, alert, capture_server, free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
STARTUP_SECONDS = 30.0

if BINARY is None and os.environ.get("CODEQUAL_REQUIRE_SERVICES") != "1":
    pytest.skip("prometheus-alertmanager is not installed", allow_module_level=True)


@dataclass
class RealAlertmanager:
    url: str
    hook: CaptureServer

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def webhook(self, status: str, deadline: float = 15.0) -> dict[str, Any]:
        """The next webhook Alertmanager delivers with ``status``."""
        end = time.monotonic() + deadline
        while True:
            body: dict[str, Any] = self.hook.next(max(0.1, end - time.monotonic())).json()
            if body["status"] == status:
                return body


def _config(hook_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "severity"],
            # Short waits so the test sees deliveries within a second or two.
            "group_wait": "200ms",
            "group_interval": "500ms",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": hook_url, "send_resolved": True}]}
        ],
        "inhibit_rules": [rule.to_alertmanager() for rule in DEFAULT_INHIBIT_RULES],
    }


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"alertmanager exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a real process that is starting; there is no clock to move
    pytest.fail(f"alertmanager did not become ready: {log.read_text()[-2000:]}")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RealAlertmanager]:
    assert BINARY is not None, "CODEQUAL_REQUIRE_SERVICES=1 needs prometheus-alertmanager"
    with capture_server() as hook:
        config = tmp_path / "alertmanager.yml"
        config.write_text(yaml.safe_dump(_config(hook.url + "/hook")))
        port = free_port()
        log = tmp_path / "alertmanager.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={config}",
                    f"--storage.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log)
            yield RealAlertmanager(url, hook)
        finally:
            process.terminate()
            process.wait(10)


def _send(am: RealAlertmanager, *alerts: Alert, now: float | None = None) -> None:
    clock = (lambda: now) if now is not None else time.time
    channel = AlertmanagerChannel(am.url, resend_interval=60, clock=clock)
    status: NotificationStatus = (
        "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    )
    channel.notify(Notification("alertmanager", status, alerts))


def _fresh(a: Alert) -> Alert:
    # Alertmanager drops alerts whose endsAt is already past: anchor them at the real now.
    now = time.time()
    return replace(a, active_at=now - 60, fired_at=now - 30)


def test_posted_alert_reaches_the_webhook_through_real_alertmanager(
    alertmanager: RealAlertmanager,
) -> None:
    down = _fresh(alert("DeepWikiDown", "critical", component="deepwiki"))
    _send(alertmanager, down)
    body = alertmanager.webhook("firing")
    assert body["version"] == "4" and body["receiver"] == "hook"
    (delivered,) = body["alerts"]
    assert delivered["labels"] == down.labels
    assert delivered["annotations"] == down.annotations
    assert delivered["generatorURL"] == down.generator_url
    assert delivered["status"] == "firing"
    # We gave it a bounded endsAt (4 x resend interval), so it resolves if we go silent.
    (stored,) = alertmanager.alerts()
    ends = datetime.fromisoformat(stored["endsAt"]).timestamp()
    assert 200 < ends - time.time() <= 240


def test_resolved_alert_is_delivered_as_resolved(alertmanager: RealAlertmanager) -> None:
    down = _fresh(alert("DeepWikiDown", "critical", component="deepwiki"))
    _send(alertmanager, down)
    alertmanager.webhook("firing")
    gone = replace(down, status="resolved", resolved_at=time.time())
    _send(alertmanager, gone)
    body = alertmanager.webhook("resolved")
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["labels"] == down.labels


def test_our_inhibit_rules_work_in_alertmanager(alertmanager: RealAlertmanager) -> None:
    critical = _fresh(alert("DeepWikiDiskUsageCritical", "critical", component="deepwiki"))
    warning = _fresh(alert("DeepWikiDiskUsageHigh", "warning", component="deepwiki"))
    # The source goes first: Alertmanager can let a target through when both arrive together
    # (its inhibitor sees alerts asynchronously), which is not what this test is about.
    _send(alertmanager, critical)
    assert alertmanager.webhook("firing")["commonLabels"]["alertname"] == critical.name
    _send(alertmanager, critical, warning)
    end = time.monotonic() + 15
    state: dict[str, Any] = {}
    while time.monotonic() < end:
        state = {a["labels"]["alertname"]: a["status"] for a in alertmanager.alerts()}
        if state.get(warning.name, {}).get("state") == "suppressed":
            break
        time.sleep(0.1)  # Alertmanager marks inhibition when the target's group flushes
    assert state[warning.name]["state"] == "suppressed"
    assert state[warning.name]["inhibitedBy"] != []
    assert state[critical.name]["state"] == "active"
    delivered = [
        a["labels"]["alertname"] for r in alertmanager.hook.all() for a in r.json()["alerts"]
    ]
    assert warning.name not in delivered


def test_our_webhook_json_has_exactly_alertmanagers_keys(alertmanager: RealAlertmanager) -> None:
    down = _fresh(alert("DeepWikiDown", "critical", component="deepwiki"))
    _send(alertmanager, down)
    theirs = alertmanager.webhook("firing")
    labels = group_labels(down.labels)
    ours = webhook_payload(Notification("hook", "firing", (down,), group_key(labels), labels))
    assert set(ours) == set(theirs)
    assert set(ours["alerts"][0]) == set(theirs["alerts"][0])
    assert ours["alerts"][0]["fingerprint"] != ""
    assert ours["groupLabels"] == theirs["groupLabels"]
    assert ours["commonLabels"] == theirs["commonLabels"]
    assert ours["commonAnnotations"] == theirs["commonAnnotations"]
