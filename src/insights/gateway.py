"""The gateway of the distributed mode: one origin for the dashboard and the API.

It forwards each /api/v1 request to the service that owns its path, streaming both bodies (an
upload of a large CSV never sits in the gateway's memory), and serves the dashboard at /.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.background import BackgroundTask

from insights_common.http import Problem, install_problem_handlers
from insights_common.observability import install_observability
from insights_query.entrypoints.dashboard import install_dashboard

API_PREFIX = "/api/v1"

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    import_url: str = "http://127.0.0.1:8001"
    ingest_url: str = "http://127.0.0.1:8002"
    query_url: str = "http://127.0.0.1:8003"
    timeout_seconds: float = Field(default=300.0, gt=0)
    """Longest wait for an upstream answer; CSV uploads of the full size take a while."""


def route(path: str, settings: GatewaySettings) -> tuple[str, str]:
    """The (service name, base URL) that owns an /api/v1 path."""
    rest = path.removeprefix(API_PREFIX)
    if rest == "/imports" or rest.startswith("/imports/"):
        return "import", settings.import_url
    if rest == "/events" or rest.startswith("/events/"):
        return "ingest", settings.ingest_url
    return "query", settings.query_url


def upstream_urls(settings: GatewaySettings) -> list[tuple[str, str]]:
    return [
        ("import", settings.import_url),
        ("ingest", settings.ingest_url),
        ("query", settings.query_url),
    ]


def merge_openapi(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One OpenAPI document from the services' own: their paths and schemas side by side."""
    merged: dict[str, Any] = {
        "openapi": documents[0].get("openapi", "3.1.0"),
        "info": {"title": "User Insights", "version": "1.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for document in documents:
        merged["paths"].update(document.get("paths", {}))
        components = document.get("components", {})
        for section in ("schemas", "securitySchemes"):
            merged["components"][section].update(components.get(section, {}))
    return merged


def create_gateway(settings: GatewaySettings) -> FastAPI:
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(title="User Insights gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)

    async def upstreams() -> None:
        for name, base in upstream_urls(settings):
            try:
                answer = await client.get(f"{base}/readyz", timeout=2.0)
            except httpx.TransportError as error:
                raise RuntimeError(f"{name} at {base} is not answering: {error}") from error
            if answer.status_code != 200:
                raise RuntimeError(f"{name} at {base} is not ready ({answer.status_code})")

    install_observability(app, service="gateway", readiness=[upstreams])

    install_dashboard(app)

    @app.get(API_PREFIX + "/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        """The API's reference: the three services' OpenAPI documents as one."""
        documents = []
        for name, base in upstream_urls(settings):
            try:
                answer = await client.get(f"{base}{API_PREFIX}/openapi.json", timeout=5.0)
                answer.raise_for_status()
            except httpx.HTTPError as error:
                raise Problem(
                    502,
                    "Upstream unavailable",
                    f"The {name} service did not give its API reference ({error}).",
                ) from error
            documents.append(answer.json())
        return JSONResponse(merge_openapi(documents))

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=API_PREFIX + "/openapi.json", title="User Insights")

    @app.api_route(
        API_PREFIX + "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def forward(request: Request) -> Response:
        name, base = route(request.url.path, settings)
        headers = [(key, value) for key, value in request.headers.items() if key not in HOP_BY_HOP]
        client_host = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-for")
        headers.append(
            ("x-forwarded-for", f"{forwarded}, {client_host}" if forwarded else client_host)
        )
        headers.append(("x-forwarded-proto", request.url.scheme))
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = client.build_request(
            request.method,
            f"{base}{request.url.path}",
            params=request.url.query,
            headers=headers,
            content=request.stream() if has_body else None,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException as error:
            raise Problem(
                504,
                "Upstream timeout",
                f"The {name} service did not answer in {settings.timeout_seconds:g} s.",
            ) from error
        except httpx.TransportError as error:
            raise Problem(
                502,
                "Upstream unavailable",
                f"The {name} service at {base} is not answering ({type(error).__name__}). "
                "Check that it runs and that the gateway's GATEWAY_*_URL points at it.",
            ) from error
        response_headers = {
            key: value for key, value in upstream.headers.items() if key not in HOP_BY_HOP
        }
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )

    return app
