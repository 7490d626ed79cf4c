"""The dashboard and the API reference are served, in both modes, with a Content-Security-Policy
that allows only the app's own origin, nosniff and no-referrer; the reference loads nothing from
another site and has no inline script. In the distributed mode the dashboard and the edge's own
answers come from nginx (deploy/nginx); the reference from the query service, whose app is built
as `insights dev`'s is (tests/security/test_http_limits.py checks it)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from insights_common.http.guard import CONTENT_SECURITY_POLICY
from tests.conftest import free_port
from tests.deployments import local_edge
from tests.security.conftest import embedded_in_process

pytestmark = pytest.mark.unit

PAGES = [
    "/",
    "/signin",
    "/users/alex",
    "/api/docs",
    "/api/docs/start.js",
    "/api/docs/swagger-ui.css",
]


@pytest.fixture(params=["embedded", "edge"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "embedded":
        async with embedded_in_process(tmp_path) as in_process:
            yield in_process.client
        return
    # nginx serves the dashboard and its own answers itself; no service needs to run.
    closed = f"127.0.0.1:{free_port()}"
    edge = local_edge().Edge(closed, closed, closed, free_port(), work_dir=tmp_path / "edge")
    edge.start()
    try:
        async with httpx.AsyncClient(base_url=edge.url) as served:
            served.headers["x-deployment"] = "edge"
            yield served
    finally:
        edge.stop()


def served_by_query(client: httpx.AsyncClient, path: str) -> bool:
    return client.headers.get("x-deployment") == "edge" and path.startswith("/api/")


def test_the_policy_names_no_other_origin() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    sources = " ".join(directives.values()).split()
    assert set(sources) <= {"'self'", "'none'", "data:"}


@pytest.mark.parametrize("path", PAGES)
async def test_pages_carry_the_browser_headers(client: httpx.AsyncClient, path: str) -> None:
    if served_by_query(client, path):
        pytest.skip("the query service serves the reference behind the edge")
    answer = await client.get(path, headers={"Accept": "text/html"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


async def test_api_answers_and_problems_carry_them_too(client: httpx.AsyncClient) -> None:
    for answer in (
        await client.get("/api/v1/users"),
        await client.get("/nowhere", headers={"Accept": "text/html"}),
        await client.get("/healthz"),
    ):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]


async def test_the_api_reference_loads_only_its_own_files(client: httpx.AsyncClient) -> None:
    if served_by_query(client, "/api/docs"):
        pytest.skip("the query service serves the reference behind the edge")
    page = (await client.get("/api/docs")).text
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all('src="/' in attributes for attributes in scripts)
    assert not re.search(r"<script[^>]*>[^<]", page), "no inline script"
    assert not re.search(r"<style", page)
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and all(link.startswith("/api/docs/") for link in links)
    for link in links:
        served = await client.get(link)
        assert served.status_code == 200, link
        assert served.headers["x-content-type-options"] == "nosniff"
    bundle = await client.get("/api/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
