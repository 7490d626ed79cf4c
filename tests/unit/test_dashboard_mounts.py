"""`insights dev` serves the dashboard at / and at its deep links, and the API beside it (the
distributed mode's edge does the same: tests/e2e/test_edge.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from insights.composition.embedded import build_embedded
from insights.embedded import EmbeddedSettings, create_app

pytestmark = pytest.mark.unit


async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    parts = build_embedded(EmbeddedSettings(data_dir=tmp_path))
    try:
        async for client in serve(create_app(parts)):
            yield client
    finally:
        parts.db.close()


async def expect_dashboard(client: httpx.AsyncClient) -> None:
    """Each page path answers the same HTML (the build, or the page that says how to build it)."""
    pages = [await client.get(path) for path in ("/", "/users/alex", "/imports", "/templates/w")]
    assert {page.status_code for page in pages} == {200}
    assert {page.headers["cache-control"] for page in pages} == {"no-cache"}
    assert len({page.text for page in pages}) == 1
    assert pages[0].headers["content-type"].startswith("text/html")


async def test_insights_dev_serves_the_dashboard_beside_the_api(
    embedded: httpx.AsyncClient,
) -> None:
    await expect_dashboard(embedded)
    refused = await embedded.get("/api/v1/users", params={"q": "alex"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await embedded.get("/healthz")).status_code == 200
