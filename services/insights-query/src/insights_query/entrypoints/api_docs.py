"""The API reference at /api/docs: Swagger UI 5 (it reads OpenAPI 3.1) from the files of the
`fastapi-swagger` package (only its files are used), served by the product itself, so the page
loads no script from another site and runs under the Content-Security-Policy that allows only
its own origin (no inline script: the page's own start-up code is a file too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

DOCS_PATH = "/api/docs"
SWAGGER_UI = Path(str(files("fastapi_swagger") / "resources"))
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# The files change only with the package's version: a browser may keep them for a day.
CACHE = "public, max-age=86400"

START = """window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Insights API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="{docs}/favicon-32x32.png">
<link rel="stylesheet" href="{docs}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{docs}/swagger-ui-bundle.js"></script>
<script src="{docs}/start.js"></script></body></html>
"""


def install_api_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Serve the reference of the OpenAPI document at `openapi_url` (a path of this origin)."""
    router = APIRouter(include_in_schema=False)
    page = PAGE.format(docs=DOCS_PATH, openapi=escape(openapi_url, quote=True))

    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def start() -> Response:
        return Response(START, media_type="text/javascript", headers={"Cache-Control": CACHE})

    router.add_api_route(DOCS_PATH, docs, methods=["GET", "HEAD"])
    router.add_api_route(DOCS_PATH + "/start.js", start, methods=["GET", "HEAD"])
    for name, media_type in SWAGGER_FILES.items():
        router.add_api_route(
            f"{DOCS_PATH}/{name}", _file(SWAGGER_UI / name, media_type), methods=["GET", "HEAD"]
        )
    app.include_router(router)


def _file(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": CACHE})

    return serve
