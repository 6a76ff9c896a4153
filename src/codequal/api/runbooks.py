"""``/runbooks/<AlertName>``: the runbook each alert's ``runbook_url`` points at.

Runbooks ship in the package (``codequal/alerting/runbooks``; ``docs/runbooks`` in the
repository links there). They are documentation, public like the rule files that name them,
so they need no token; the name is checked against the shipped files, never used as a path.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response

from codequal.api.errors import error_response

RUNBOOKS_DIR = Path(__file__).resolve().parents[1] / "alerting" / "runbooks"


def available() -> dict[str, Path]:
    return {p.stem: p for p in RUNBOOKS_DIR.glob("*.md")}


def install_runbooks(app: FastAPI) -> None:
    shipped = available()

    @app.get("/runbooks/{alert_name}", include_in_schema=False)
    def runbook(alert_name: str) -> Response:
        path = shipped.get(alert_name)
        if path is None:
            return error_response(404, "no runbook for this alert", alert_name)
        return PlainTextResponse(
            path.read_text(encoding="utf-8"),
            media_type="text/markdown; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )
