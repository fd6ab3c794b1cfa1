"""`GET /docs` (Swagger UI) and `GET /redoc` (ReDoc) served from the package, with no CDN.

FastAPI's default pages load their scripts from a CDN and are blank on a machine without
internet; these load the same scripts (vendored in `heimdall/service/static`, versions and
licenses in its README.md) from this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "STATIC_PREFIX", "install_docs"]

#: The vendored Swagger UI and ReDoc files.
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: Where they are served.
STATIC_PREFIX = "/static/docs"


def install_docs(app: FastAPI) -> None:
    """Serve the static files and the two pages (create the app with docs_url=redoc_url=None)."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="docs-static")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
