"""The live dashboard page at ``/`` and ``/dashboard``, and its assets under ``/static``.

The page holds no data, so it needs no token: its script calls the ``/api/monitoring``
endpoints, which enforce theirs. Everything is shipped in the package (no CDN, no build
step) and a strict Content-Security-Policy allows only this origin's files: no inline
script or style, so injected markup could not run even if it slipped through.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from codequal import __version__

STATIC_DIR = Path(__file__).parent / "static"
PAGE_PATHS = ("/", "/dashboard")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The page names its assets with ?v=<version>, so an upgrade fetches new ones at once and an
# hour of caching costs nothing; the page itself is revalidated on every load.
PAGE_HEADERS = SECURITY_HEADERS | {"Cache-Control": "no-cache"}
ASSET_HEADERS = SECURITY_HEADERS | {"Cache-Control": "public, max-age=3600"}


class _Assets(StaticFiles):
    """StaticFiles (ETag, 304, HEAD) plus the cache and security headers above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code < 400:
            response.headers.update(ASSET_HEADERS)
        return response


def render_page() -> str:
    """index.html with the asset URLs pinned to this release (cache busting)."""
    return (
        (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace("__VERSION__", __version__)
    )


def install_web(app: FastAPI) -> None:
    """Serve the dashboard page at ``/`` and ``/dashboard`` and its assets under ``/static``."""
    page = render_page()  # read once: the file cannot change under an installed package

    def dashboard_page() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    for path in PAGE_PATHS:
        app.add_api_route(
            path,
            dashboard_page,
            methods=["GET"],
            include_in_schema=False,
            response_class=HTMLResponse,
        )
    app.mount("/static", _Assets(directory=STATIC_DIR), name="static")
