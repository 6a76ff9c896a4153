"""``/api/monitoring/anomalies?status=&limit=``: what the dashboard's anomaly panel asks for."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from codequal.analytics.anomaly import Anomaly
from codequal.analytics.anomaly_store import AnomalyStore, Found
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET, bearer

URL = "/api/monitoring/anomalies"


def window(start: float, status: str) -> Anomaly:
    return Anomaly(
        detector="failure_rate", start=start, end=start + 300, peak_at=start, peak=0.5,
        baseline=0.02, band=(0.0, 0.05), score=25.0, direction="up", status=status,  # type: ignore[arg-type]
        explanation=f"{status} window at {start:.0f}",
    )  # fmt: skip


def test_status_and_limit_narrow_the_newest_first_list(tmp_path: Path) -> None:
    app = create_app(
        load_settings(data_dir=tmp_path, jwt_secret=TEST_JWT_SECRET), start_workers=False
    )
    state = app.state.codequal
    with TestClient(app, headers=bearer("monitoring:read")) as client:
        assert state.wait_ready(30)
        now = time.time()
        statuses = ["closed", "open", "closed", "open", "closed"]
        found = [Found("failure_ratio", window(now - 3600 * (i + 1), s)) for i, s in
                 enumerate(statuses)]  # fmt: skip
        AnomalyStore(state.db).upsert(found, now)

        def starts(**params: str | int) -> list[str]:
            body = client.get(URL, params={"since": "1d", **params}).json()
            return [a["explanation"].split()[0] for a in body["anomalies"]]

        assert starts() == statuses  # newest first
        assert starts(status="open") == ["open", "open"]
        assert starts(status="closed", limit=2) == ["closed", "closed"]
        assert len(starts(limit=3)) == 3
        for params, error in (
            ({"status": "adapting"}, "invalid status"),
            ({"limit": -1}, "invalid limit"),
            ({"limit": 5000}, "invalid limit"),
        ):
            answer = client.get(URL, params=params)
            assert answer.status_code == 400 and answer.json()["error"] == error
