"""The web dashboard: its built files, and the page paths that all answer its index.html.

`make dashboard` builds the TypeScript app into `dashboard_assets/` (index.html and hashed files
under assets/). The app routes by path, so a deep link such as /users/alex must answer
index.html too; only the dashboard's own page paths do, so nothing here can shadow the API,
the health endpoints or the API reference.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from insights_common.http.conventions import Problem

DEFAULT_ASSETS = Path(__file__).resolve().parent.parent / "dashboard_assets"

# The dashboard's routes (its src/app.tsx); each answers index.html.
PAGE_PATHS = (
    "/",
    "/signin",
    "/users",
    "/users/{user_id}",
    "/users/{user_id}/messages/{message_id}",
    "/messages/{message_id}",
    "/imports",
    "/imports/{import_id}",
    "/templates",
    "/templates/{key}",
    "/audit",
    "/members",
    "/sources",
    "/settings",
)

# Built file names carry a hash of their content, so a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
# index.html names the current hashed files: a browser must check it on every visit.
REVALIDATE = "no-cache"

# Unstyled: the Content-Security-Policy allows no inline style.
FALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Insights</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>User Insights</h1>
<p>The web dashboard is not built: <code>make dashboard</code> builds it (Node.js 20.19 or
later is needed to build it, not to run it); then reload this page.</p>
<p>The API is served under <code>/api/v1</code>; its reference is at
<a href="/api/docs">/api/docs</a>. Programs call it with <code>Authorization: Bearer
&lt;key&gt;</code> (<code>insights keys create --app APP</code>, with <code>--distributed</code>
when the services run separately); people sign in as members
(<code>insights members add --app APP --email EMAIL --role admin</code>).</p>
<p>Health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>,
<a href="/metrics">/metrics</a>.</p></body></html>
"""


def dashboard_router(assets: Path = DEFAULT_ASSETS) -> APIRouter:
    """Routes for the dashboard built into `assets`; looked up per request, so a build made
    while the server runs shows on the next reload."""
    router = APIRouter(include_in_schema=False)
    hashed = assets / "assets"

    async def page() -> HTMLResponse:
        return _index(assets)

    async def asset(name: str) -> FileResponse:
        base = hashed.resolve()
        target = (base / name).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise Problem(
                404,
                "Not found",
                f"The dashboard has no file 'assets/{name}'. Reload the page; if the dashboard "
                "was rebuilt, its file names changed.",
            )
        return FileResponse(target, headers={"Cache-Control": IMMUTABLE})

    for path in PAGE_PATHS:
        router.add_api_route(path, page, methods=["GET", "HEAD"], response_class=HTMLResponse)
    router.add_api_route("/assets/{name:path}", asset, methods=["GET", "HEAD"])
    return router


def _index(assets: Path, status_code: int = 200) -> HTMLResponse:
    try:
        html = (assets / "index.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        html = FALLBACK_PAGE
    return HTMLResponse(html, status_code, headers={"Cache-Control": REVALIDATE})


# Paths of the API and the service endpoints: a miss there stays the API's problem document.
_NOT_PAGES = ("/api/", "/assets/", "/healthz", "/readyz", "/metrics", "/openapi.json")


def _page_navigation(request: Request) -> bool:
    """A browser opening an address (it asks for HTML) outside the API."""
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
        and not path.startswith(_NOT_PAGES)
    )


def install_dashboard(app: FastAPI, *, assets: Path = DEFAULT_ASSETS) -> None:
    """Serve the dashboard at / and its page paths, beside the app's other routes.

    Install after the problem handlers: a browser that opens an address no page has gets the
    dashboard with a 404 status, which shows its own "Page not found" with the way back; any
    other miss keeps the problem document the API answers.
    """
    app.include_router(dashboard_router(assets))
    problem = app.exception_handlers[StarletteHTTPException]

    async def not_found(request: Request, exc: Exception) -> Response:
        if (
            isinstance(exc, StarletteHTTPException)
            and exc.status_code == 404
            and _page_navigation(request)
        ):
            return _index(assets, 404)
        answer = problem(request, exc)
        return answer if isinstance(answer, Response) else await answer

    app.add_exception_handler(StarletteHTTPException, not_found)
