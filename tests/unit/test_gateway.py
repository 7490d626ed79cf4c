"""The gateway sends each API path to the service that owns it, and says which one is down."""

from __future__ import annotations

import httpx
import pytest

from insights.gateway import GatewaySettings, create_gateway, route
from tests.conftest import free_port

pytestmark = pytest.mark.unit

SETTINGS = GatewaySettings(
    import_url="http://imports.internal", ingest_url="http://ingest.internal", query_url="http://q"
)


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/imports", "import"),
        ("/api/v1/imports/imp_1/errors", "import"),
        ("/api/v1/events", "ingest"),
        ("/api/v1/users", "query"),
        ("/api/v1/users/imports", "query"),
        ("/api/v1/importsx", "query"),
        ("/api/v1/messages/m1", "query"),
        ("/api/v1/templates/welcome", "query"),
    ],
)
def test_each_path_goes_to_its_service(path: str, service: str) -> None:
    assert route(path, SETTINGS)[0] == service


async def test_a_service_that_is_down_gives_a_502_naming_it() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app = create_gateway(GatewaySettings(import_url=closed, ingest_url=closed, query_url=closed))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.get("/api/v1/users", params={"q": "alex"})
        ready = await client.get("/readyz")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert "query service" in answer.json()["detail"]
    assert ready.status_code == 503
