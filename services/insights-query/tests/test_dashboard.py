"""The dashboard's files at / and its deep links, beside the query API it must never shadow."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from insights_common.audit import GroupedAuditLog
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.http.observability import install_observability
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector, build_query
from insights_query.entrypoints.dashboard import (
    FALLBACK_PAGE,
    IMMUTABLE,
    PAGE_PATHS,
    install_dashboard,
)
from insights_query.settings import QuerySettings

pytestmark = pytest.mark.unit

DASHBOARD_SOURCE = Path(__file__).resolve().parents[1] / "dashboard" / "src"

INDEX = '<!doctype html><title>User Insights</title><script src="/assets/index-Ab12.js"></script>'
SCRIPT = "console.log('dashboard');"
DEEP_LINKS = [
    "/",
    "/signin",
    "/users",
    "/users/alice",
    "/users/alex.kim-2",
    "/messages/m1",
    "/users/alice/messages/m1",
    "/imports",
    "/imports/imp_001",
    "/templates",
    "/templates/welcome",
]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A dashboard build as `make dashboard` lays it out."""
    assets = tmp_path / "dashboard_assets"
    (assets / "assets").mkdir(parents=True)
    (assets / "index.html").write_text(INDEX, encoding="utf-8")
    (assets / "assets" / "index-Ab12.js").write_text(SCRIPT, encoding="utf-8")
    (assets / "assets" / "index-Cd34.css").write_text("body{margin:0}", encoding="utf-8")
    return assets


def app_with_dashboard(assets: Path, db: SqliteDatabase, keys: SqliteKeyStore) -> FastAPI:
    """The query API, health and docs as `insights dev` serves them, plus the dashboard."""
    app = FastAPI(docs_url="/api/docs")
    install_problem_handlers(app)
    install_observability(app, service="query")
    bus, store, settings = InProcessBus(), SqliteInsightsStore(db), QuerySettings()
    build_projector(store=store, bus=bus, group=EMBEDDED_PROJECTOR, settings=settings)
    query = build_query(
        store=store,
        access=Access(keys, SqliteMemberStore(db)),
        audit=GroupedAuditLog(SqliteAuditLog(db)),
        retention=SqliteRetentionSettings(db),
        publisher=bus,
        watermark=AtOnce(),
        settings=settings,
    )
    app.include_router(query.parts.router, prefix="/api/v1")
    install_dashboard(app, assets=assets)
    return app


async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


@pytest.fixture
async def client(
    built: Path, db: SqliteDatabase, keys: SqliteKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(app_with_dashboard(built, db, keys)):
        yield client


@pytest.fixture
async def unbuilt(
    tmp_path: Path, db: SqliteDatabase, keys: SqliteKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(app_with_dashboard(tmp_path / "missing", db, keys)):
        yield client


@pytest.mark.parametrize("path", DEEP_LINKS)
async def test_each_page_path_answers_index_html_uncached(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text == INDEX
    assert answer.headers["cache-control"] == "no-cache"


async def test_every_page_path_answers_index_html(client: httpx.AsyncClient) -> None:
    for template in PAGE_PATHS:
        path = re.sub(r"\{[^}]+\}", "x-1", template)
        answer = await client.get(path)
        assert (answer.status_code, answer.text) == (200, INDEX), path


def test_the_page_paths_are_the_routes_of_the_app() -> None:
    """A route added to the app needs its path here too, or its deep links would not load."""
    source = (DASHBOARD_SOURCE / "app.tsx").read_text(encoding="utf-8")
    routes = {re.sub(r":(\w+)", r"{\1}", path) for path in re.findall(r'path: "([^"]+)"', source)}
    assert routes
    assert routes | {"/", "/signin"} == set(PAGE_PATHS)


async def test_hashed_files_are_served_with_a_long_cache(client: httpx.AsyncClient) -> None:
    script = await client.get("/assets/index-Ab12.js")
    assert script.status_code == 200
    assert script.text == SCRIPT
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == IMMUTABLE
    style = await client.get("/assets/index-Cd34.css")
    assert style.headers["content-type"].startswith("text/css")
    assert style.headers["cache-control"] == IMMUTABLE


@pytest.mark.parametrize("path", ["/assets/index-old.js", "/assets/%2e%2e/index.html", "/assets/"])
async def test_a_missing_or_outside_file_is_a_404_problem(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "cache-control" not in answer.headers


async def test_the_api_and_service_paths_are_not_shadowed(
    client: httpx.AsyncClient, keys: SqliteKeyStore
) -> None:
    key = await keys.create_api_key("acme")
    users = await client.get("/api/v1/users", headers={"Authorization": f"Bearer {key}"})
    assert users.status_code == 200
    assert users.json() == {"items": [], "next_cursor": None}

    refused = await client.get("/api/v1/users/alice")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"

    unknown = await client.get("/api/v1/dashboard")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"

    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "insights_http_requests_total" in metrics.text
    docs = await client.get("/api/docs")
    assert "swagger" in docs.text.lower()
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")


async def test_the_dashboard_is_not_in_the_api_reference(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths
    assert all(path.startswith("/api/v1/") for path in paths)


async def test_a_path_that_is_no_page_is_not_found(client: httpx.AsyncClient) -> None:
    for path in ("/nowhere", "/users/alice/messages", "/index.html"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


async def test_a_browser_opening_no_page_gets_the_dashboard_with_a_404(
    client: httpx.AsyncClient,
) -> None:
    html = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/nowhere", "/users/alice/messages", "/index.html"):
        answer = await client.get(path, headers=html)
        assert answer.status_code == 404, path
        assert answer.text == INDEX
        assert answer.headers["cache-control"] == "no-cache"
    # the API, its files and the service endpoints answer their problem document still
    for path in ("/api/v1/nowhere", "/assets/index-Zz99.js", "/healthz/x"):
        answer = await client.get(path, headers=html)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


async def test_head_answers_for_pages(client: httpx.AsyncClient) -> None:
    answer = await client.head("/users/alice")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/", "/users/alice"])
async def test_without_a_build_the_pages_say_how_to_build_it(
    unbuilt: httpx.AsyncClient, path: str
) -> None:
    answer = await unbuilt.get(path)
    assert answer.status_code == 200
    assert answer.text == FALLBACK_PAGE
    assert "make dashboard" in answer.text
    assert 'href="/api/docs"' in answer.text
    assert answer.headers["cache-control"] == "no-cache"
    assert (await unbuilt.get("/assets/index-Ab12.js")).status_code == 404


async def test_a_build_made_while_serving_shows_on_the_next_request(
    tmp_path: Path, db: SqliteDatabase, keys: SqliteKeyStore
) -> None:
    assets = tmp_path / "later"
    async for client in open_client(app_with_dashboard(assets, db, keys)):
        assert (await client.get("/")).text == FALLBACK_PAGE
        (assets / "assets").mkdir(parents=True)
        (assets / "index.html").write_text(INDEX, encoding="utf-8")
        assert (await client.get("/")).text == INDEX
