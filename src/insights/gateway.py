"""The gateway of the distributed mode: one origin for the dashboard and the API.

It forwards each /api/v1 request to the service that owns its path over one pool of kept-alive
connections, and serves the dashboard at /. Bodies of unknown or large size are streamed both ways
(an upload of a large CSV or a CSV export never sits in the gateway's memory); the small ones of
the API's JSON are read whole, which costs less.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from yarl import URL

from insights_common.http import Problem, install_problem_handlers, problem_responses
from insights_common.http_guard import HttpSettings, install_http_guards
from insights_common.observability import install_observability
from insights_query.entrypoints.api_docs import install_api_docs
from insights_query.entrypoints.dashboard import install_dashboard

API_PREFIX = "/api/v1"
# Bodies of known length up to this size are read whole: streaming costs more CPU than they take
# memory.
WHOLE_BODY_BYTES = 256 * 1024

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
_HOP_BY_HOP_RAW = frozenset(name.encode() for name in HOP_BY_HOP)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    import_url: str = "http://127.0.0.1:8001"
    ingest_url: str = "http://127.0.0.1:8002"
    query_url: str = "http://127.0.0.1:8003"
    timeout_seconds: float = Field(default=300.0, gt=0)
    """Longest wait for an upstream answer; CSV uploads of the full size take a while."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest wait for a connection to a service."""
    upstream_connections: int = Field(default=200, ge=1)
    """Most connections to the services at once; requests beyond wait for one."""
    upstream_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Longest header line a service's answer may have."""


def route(path: str, settings: GatewaySettings) -> tuple[str, str]:
    """The (service name, base URL) that owns an /api/v1 path."""
    rest = path.removeprefix(API_PREFIX)
    if rest == "/imports" or rest.startswith("/imports/"):
        return "import", settings.import_url
    if rest == "/events" or rest.startswith(("/events/", "/sources/")):
        return "ingest", settings.ingest_url
    return "query", settings.query_url


def upstream_urls(settings: GatewaySettings) -> list[tuple[str, str]]:
    return [
        ("import", settings.import_url),
        ("ingest", settings.ingest_url),
        ("query", settings.query_url),
    ]


# What the gateway itself answers on any route of the API.
GATEWAY_PROBLEMS = problem_responses(
    {
        502: "The service that owns the path is not answering (the gateway cannot reach it).",
        504: "The service that owns the path did not answer within GATEWAY_TIMEOUT_SECONDS.",
    }
)


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
    for operations in merged["paths"].values():
        for operation in operations.values():
            for status, answer in GATEWAY_PROBLEMS.items():
                operation.setdefault("responses", {}).setdefault(str(status), answer)
    return merged


class Upstreams:
    """The gateway's one pool of connections to the services, opened on first use (inside the
    event loop) and closed with the app."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._settings.upstream_connections, limit_per_host=0
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._settings.connect_timeout_seconds,
                    sock_read=self._settings.timeout_seconds,
                ),
                max_line_size=self._settings.upstream_header_bytes,
                max_field_size=self._settings.upstream_header_bytes,
                # Bytes pass through as the service sent them, and only the caller's headers go
                # on (plus Host and the body's framing).
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return self._session

    async def get(self, url: str, *, seconds: float) -> tuple[int, bytes]:
        """The status and body of a GET that must be answered in `seconds`."""
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=seconds)) as answer:
            return answer.status, await answer.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def forwarded_headers(request: Request) -> list[tuple[str, str]]:
    """The caller's headers without the hop-by-hop ones, plus X-Forwarded-For and -Proto."""
    headers = [(key, value) for key, value in request.headers.items() if key not in HOP_BY_HOP]
    client_host = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    headers.append(("x-forwarded-for", f"{forwarded}, {client_host}" if forwarded else client_host))
    headers.append(("x-forwarded-proto", request.url.scheme))
    return headers


async def request_body(request: Request) -> bytes | AsyncIterator[bytes] | None:
    """A small body of known length whole; any other body as a stream, so an upload never sits
    in the gateway's memory."""
    length = request.headers.get("content-length")
    if length is None:
        return _streamed(request) if "transfer-encoding" in request.headers else None
    if length.isdigit() and int(length) <= WHOLE_BODY_BYTES:
        return await request.body()
    return _streamed(request)


async def _streamed(request: Request) -> AsyncIterator[bytes]:
    """The body as it comes; a caller who leaves before its end is noted on the request, since
    the upstream client ends the request without saying why."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        request.state.left_mid_body = True
        raise


def upstream_url(base: str, request: Request) -> URL:
    """The service's URL for the request: its path and query string as the caller sent them."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return URL(f"{base}{path}?{query}" if query else f"{base}{path}", encoded=True)


async def answer_of(upstream: aiohttp.ClientResponse) -> Response:
    """The service's answer as the gateway's: small bodies of known length read whole, any
    other streamed (a CSV export keeps the gateway's memory flat)."""
    headers = [
        (name, value)
        for name, value in ((key.lower(), value) for key, value in upstream.raw_headers)
        if name not in _HOP_BY_HOP_RAW
    ]
    response: Response
    length = upstream.content_length
    if length is not None and length <= WHOLE_BODY_BYTES:
        try:
            body = await upstream.read()
        finally:
            upstream.release()
        response = Response(body, status_code=upstream.status)
    else:
        response = StreamingResponse(
            upstream.content.iter_any(),
            status_code=upstream.status,
            background=BackgroundTask(upstream.release),
        )
    response.raw_headers = headers
    return response


def create_gateway(
    settings: GatewaySettings,
    *,
    http: HttpSettings | None = None,
    origin: str = "http://127.0.0.1:8000",
) -> FastAPI:
    """The gateway's app; its absolute URLs use `http.public_base_url`, else `origin`."""
    upstreams = Upstreams(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstreams.close()

    app = FastAPI(title="User Insights gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    install_http_guards(app, http or HttpSettings(), default_origin=origin)

    async def services() -> None:
        for name, base in upstream_urls(settings):
            try:
                status, _ = await upstreams.get(f"{base}/readyz", seconds=2.0)
            except (aiohttp.ClientError, TimeoutError) as error:
                raise RuntimeError(f"{name} at {base} is not answering: {error!r}") from error
            if status != 200:
                raise RuntimeError(f"{name} at {base} is not ready ({status})")

    install_observability(app, service="gateway", readiness=[services])

    @app.get(API_PREFIX + "/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        """The API's reference: the three services' OpenAPI documents as one."""
        documents = []
        for name, base in upstream_urls(settings):
            try:
                status, body = await upstreams.get(f"{base}{API_PREFIX}/openapi.json", seconds=5.0)
                if status != 200:
                    raise ValueError(f"it answered {status}")
                documents.append(orjson.loads(body))
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                raise Problem(
                    502,
                    "Upstream unavailable",
                    f"The {name} service did not give its API reference ({error!r}).",
                ) from error
        return JSONResponse(merge_openapi(documents))

    install_api_docs(app, openapi_url=API_PREFIX + "/openapi.json")

    @app.api_route(
        API_PREFIX + "/{path:path}",
        # Every method: the service that owns the path says which it allows (405 with Allow).
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"],
        include_in_schema=False,
    )
    async def forward(request: Request) -> Response:
        name, base = route(request.url.path, settings)
        try:
            upstream = await upstreams.session.request(
                request.method,
                upstream_url(base, request),
                headers=forwarded_headers(request),
                data=await request_body(request),
                allow_redirects=False,
            )
            return await answer_of(upstream)
        except (TimeoutError, aiohttp.ClientError) as error:
            if getattr(request.state, "left_mid_body", False):
                # The caller is gone, not the service: logged as the caller's 400.
                raise ClientDisconnect from error
            raise _upstream_problem(name, base, settings, error) from error

    # After the API's routes, which are matched first: the dashboard's page paths never start
    # with /api, and each request only has to be compared with the routes before its own.
    install_dashboard(app)
    return app


def _upstream_problem(name: str, base: str, settings: GatewaySettings, error: Exception) -> Problem:
    if isinstance(error, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return Problem(
            504,
            "Upstream timeout",
            f"The {name} service did not answer in {settings.timeout_seconds:g} s.",
        )
    return Problem(
        502,
        "Upstream unavailable",
        f"The {name} service at {base} is not answering ({type(error).__name__}). "
        "Check that it runs and that the gateway's GATEWAY_*_URL points at it.",
    )
