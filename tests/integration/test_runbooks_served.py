"""Every shipped alert's runbook_url is served by the server itself."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from codequal.alerting.rules import default_rule_files
from codequal.api.app import create_app
from codequal.config import load_settings

from ..conftest import TEST_JWT_SECRET


def test_each_shipped_runbook_url_answers_with_its_markdown(tmp_path: Path) -> None:
    app = create_app(
        load_settings(data_dir=tmp_path, jwt_secret=TEST_JWT_SECRET), start_workers=False
    )
    urls = {
        rule["annotations"]["runbook_url"]
        for path in default_rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert len(urls) >= 11
    with TestClient(app) as client:
        for url in sorted(urls):
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("text/markdown")
            assert response.text.startswith(f"# {url.rsplit('/', 1)[1]}")
        assert client.get("/runbooks/NoSuchAlert").status_code == 404
        assert client.get("/runbooks/..%2F..%2Fconfig").status_code == 404
