"""/api/monitoring/alerts, /alerts/rules, /alerts/notifications and /silences: shapes,
paging, scopes, and failures visible to an operator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from codequal.alerting.channels import Channel
from codequal.alerting.model import Transition
from codequal.alerting.notifier import Notifier, NotifierConfig
from codequal.alerting.routing import Timing
from codequal.alerting.store import AlertingStore
from codequal.api.alerts import alerts_router
from codequal.api.auth import build_authenticator
from codequal.api.errors import install_error_handlers
from codequal.config import load_settings
from codequal.retry import Backoff
from codequal.storage import open_database

from ..conftest import TEST_JWT_SECRET, bearer
from ..unit.alerting_notify.helpers import T0, ScriptedChannel, alert

READ = bearer("monitoring:read")
ADMIN = bearer("monitoring:read", "monitoring:admin", subject="alice")
CONFIG = NotifierConfig(
    timing=Timing(group_wait=0, group_interval=300, repeat_interval=3600),
    retry=Backoff(base=2.0, cap=120.0, jitter=0.5, max_attempts=1),
)
RULES = [{"name": "HighFailureRate", "state": "firing", "lastEvaluation": "2027-01-15T08:00:00Z"}]


@dataclass
class Api:
    client: TestClient
    notifier: Notifier
    store: AlertingStore
    state: dict[str, Any]


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    settings = load_settings(
        data_dir=tmp_path / "srv", database_url=database_url, jwt_secret=TEST_JWT_SECRET
    )
    db = open_database(database_url)
    db.migrate()
    store = AlertingStore(db)
    channels: dict[str, Channel] = {
        "slack": ScriptedChannel("slack", ["permanent"]),
        "pagerduty": ScriptedChannel("pagerduty"),
    }
    notifier = Notifier(store, channels, CONFIG, rand=lambda: 0.0)
    holder: dict[str, Any] = {"notifier": notifier, "rules": RULES}
    app = FastAPI()
    install_error_handlers(app)
    auth = build_authenticator(settings, db)
    auth.install(app)
    app.include_router(
        alerts_router(
            db,
            auth.require,
            notifier=lambda: holder["notifier"],
            rules=lambda: holder["rules"],
            clock=lambda: T0,
        )
    )
    with TestClient(app) as client:
        yield Api(client, notifier, store, holder)
    db.dispose()


def _fire_and_notify(api: Api, *names: str) -> None:
    for i, name in enumerate(names):
        a = alert(name, "critical", at=T0 + i)
        api.notifier.submit([Transition(a.fingerprint, name, "pending", "firing", T0 + i, a)])
    api.notifier.tick(T0)
    api.notifier.tick(T0 + 10)


def test_every_route_needs_a_token_and_changes_need_admin(api: Api) -> None:
    for path in ("/api/monitoring/alerts", "/api/monitoring/alerts/rules",
                 "/api/monitoring/alerts/notifications", "/api/monitoring/silences"):  # fmt: skip
        assert api.client.get(path).status_code == 401
        assert api.client.get(path, headers=READ).status_code == 200
    body = {"matchers": [{"name": "alertname", "value": "X"}], "duration": 60, "comment": "c"}
    assert api.client.post("/api/monitoring/silences", json=body, headers=READ).status_code == 403
    assert api.client.delete("/api/monitoring/silences/x", headers=READ).status_code == 403


def test_active_alerts_list_labels_runbook_and_why_muted(api: Api) -> None:
    _fire_and_notify(api, "HighFailureRate")
    items = api.client.get("/api/monitoring/alerts", headers=READ).json()["items"]
    (item,) = items
    assert item["alertname"] == "HighFailureRate" and item["status"] == "firing"
    assert item["severity"] == "critical"
    assert item["runbookUrl"] == "https://runbooks.example/HighFailureRate"
    assert item["firedAt"] == "2027-01-15T08:00:00.000Z"
    assert item["mutedBy"] is None and item["value"] == 0.25


def test_active_alerts_come_from_the_history_when_no_notifier_runs(api: Api) -> None:
    _fire_and_notify(api, "HighFailureRate")
    api.state["notifier"] = None
    (item,) = api.client.get("/api/monitoring/alerts", headers=READ).json()["items"]
    assert item["alertname"] == "HighFailureRate"


def test_history_is_paged_newest_first(api: Api) -> None:
    _fire_and_notify(api, "A", "B", "C")
    first = api.client.get("/api/monitoring/alerts?history=true&limit=2", headers=READ).json()
    assert [t["alertname"] for t in first["items"]] == ["C", "B"]
    assert first["items"][0]["from"] == "pending" and first["items"][0]["to"] == "firing"
    cursor = first["nextCursor"]
    second = api.client.get(
        f"/api/monitoring/alerts?history=true&limit=2&cursor={cursor}", headers=READ
    ).json()
    assert [t["alertname"] for t in second["items"]] == ["A"]
    assert second["nextCursor"] is None


def test_rules_come_from_the_evaluator_and_are_empty_without_one(api: Api) -> None:
    assert api.client.get("/api/monitoring/alerts/rules", headers=READ).json() == {"items": RULES}
    api.state["rules"] = None
    assert api.client.get("/api/monitoring/alerts/rules", headers=READ).json() == {"items": []}


def test_failed_notifications_are_visible_with_their_error(api: Api) -> None:
    _fire_and_notify(api, "HighFailureRate")
    body = api.client.get("/api/monitoring/alerts/notifications?status=failed", headers=READ).json()
    (failed,) = body["items"]
    assert failed["channel"] == "slack" and failed["attempts"] == 1
    assert failed["error"] == "endpoint answered HTTP 404: no_service"
    assert failed["fingerprints"] == [alert("HighFailureRate").fingerprint]
    assert body["channels"]["slack"]["status"] == "error"
    assert body["channels"]["pagerduty"]["status"] == "ok"
    sent = api.client.get("/api/monitoring/alerts/notifications?channel=pagerduty", headers=READ)
    assert [n["status"] for n in sent.json()["items"]] == ["sent"]


def test_silence_lifecycle_create_list_get_expire(api: Api) -> None:
    created = api.client.post(
        "/api/monitoring/silences",
        json={
            "matchers": [{"name": "alertname", "op": "=~", "value": "High.*"}],
            "startsAt": "2027-01-15T08:00:00Z",
            "endsAt": "2027-01-15T10:00:00Z",
            "comment": "deploying",
        },
        headers=ADMIN,
    )
    assert created.status_code == 201
    silence = created.json()
    assert silence["createdBy"] == "alice" and silence["state"] == "active"
    assert silence["matchers"] == [{"name": "alertname", "op": "=~", "value": "High.*"}]
    listed = api.client.get("/api/monitoring/silences", headers=READ).json()["items"]
    assert [s["id"] for s in listed] == [silence["id"]]
    one = api.client.get(f"/api/monitoring/silences/{silence['id']}", headers=READ).json()
    assert one["comment"] == "deploying"
    _fire_and_notify(api, "HighFailureRate")
    (item,) = api.client.get("/api/monitoring/alerts", headers=READ).json()["items"]
    assert item["mutedBy"] == f"silenced by {silence['id']}"
    gone = api.client.delete(f"/api/monitoring/silences/{silence['id']}", headers=ADMIN).json()
    assert gone["state"] == "expired" and gone["endsAt"] == "2027-01-15T08:00:00.000Z"
    assert api.client.get("/api/monitoring/silences", headers=READ).json()["items"] == []
    kept = api.client.get("/api/monitoring/silences?expired=true", headers=READ).json()
    assert [s["id"] for s in kept["items"]] == [silence["id"]]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"matchers": [{"name": "a", "op": "=~", "value": "("}], "duration": 60, "comment": "c"},
         "invalid regex"),
        ({"matchers": [{"name": "a", "op": "=~", "value": ".*"}], "duration": 60, "comment": "c"},
         "must not match the empty string"),
        ({"matchers": [{"name": "a", "value": "x"}], "comment": "c"}, "give endsAt or duration"),
        ({"matchers": [{"name": "a", "value": "x"}], "comment": "c",
          "startsAt": "2027-01-15T09:00:00Z", "endsAt": "2027-01-15T08:00:00Z"},
         "endsAt must be after startsAt"),
    ],
)  # fmt: skip
def test_invalid_silence_is_422_in_the_api_error_shape(
    api: Api, body: dict[str, Any], detail: str
) -> None:
    response = api.client.post("/api/monitoring/silences", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"] == "the silence is invalid"
    assert detail in response.json()["detail"]


def test_unknown_silence_is_404(api: Api) -> None:
    for method in ("get", "delete"):
        response = getattr(api.client, method)("/api/monitoring/silences/nope", headers=ADMIN)
        assert response.status_code == 404
        assert response.json() == {"error": "silence not found", "detail": "nope"}
