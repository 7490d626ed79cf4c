"""What every serving process puts in front of its routes, whichever mode it runs in.

- Absolute URLs (a `Location`, anything `request.url_for` builds) come from the configured
  public base URL, never from the request's `Host`: the app sees that origin as the one asked.
- Every response carries a Content-Security-Policy that lets a page load only from its own
  origin and be framed by nobody, `X-Content-Type-Options: nosniff` and
  `Referrer-Policy: no-referrer`.
- A client that goes away before its request body ends is a 400 in the log, not a traceback.
- The process's rate limits (`rate_limit.py`), one set shared by every door it serves.

The limits below the app (header size and time, body time, connections) are the server's:
`HttpSettings` holds them too, and `insights.tuning` hands them to uvicorn.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from insights_common.http.conventions import Problem, problem_response
from insights_common.http.rate_limit import RateLimits, RateLimitSettings, client_address

log = logging.getLogger(__name__)

# Only the app's own origin: its scripts, styles and fonts are files it serves (the dashboard's
# build, the API reference's Swagger UI); its icon is a data: image.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)


_SECURITY_RAW = tuple((name.encode(), value.encode()) for name, value in SECURITY_HEADERS)
_SECURITY_NAMES = frozenset(name for name, _ in _SECURITY_RAW)


class HttpSettings(BaseSettings):
    """`INSIGHTS_HTTP_*` and `PUBLIC_BASE_URL`: how a process serves HTTP."""

    model_config = SettingsConfigDict(env_prefix="INSIGHTS_HTTP_", extra="ignore")

    public_base_url: str | None = Field(default=None, validation_alias="PUBLIC_BASE_URL")
    """The origin users reach the product at, e.g. https://insights.example.com: every
    absolute URL is built from it. Unset: `insights dev` takes its own address, the distributed
    mode http://127.0.0.1:8000 (the gateway's)."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Most bytes of a request line and headers; more is 431."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest a request's line and headers may take to arrive, counted from its first byte
    (or from the connection, for its first request); slower is 408 and the connection closed."""
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest wait for the next part of a request body the app is reading; longer is 408."""
    keep_alive_seconds: int = Field(default=5, ge=1)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(default=1_000, ge=1)
    """Connections (and requests in progress) at once; more are answered 503 at once."""
    backlog: int = Field(default=2_048, ge=1)
    """Connections the kernel queues before the process accepts them."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks of proxies whose X-Forwarded-For names the client
    (the gateway, for the services behind it). Empty: the peer is the client."""

    @field_validator("public_base_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return public_origin(value)


def public_origin(url: str) -> str:
    """`url` as an origin (scheme://host[:port]); ValueError naming what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"PUBLIC_BASE_URL must be an http or https URL with a host, such as "
            f"https://insights.example.com (got {url!r})"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(
            f"PUBLIC_BASE_URL is an origin only: scheme, host and port, without a path, query "
            f"or user (got {url!r})"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


class _Guard:
    """Plain ASGI (no BaseHTTPMiddleware: it costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, *, origin: str) -> None:
        self._app = app
        parts = urlsplit(origin)
        self._scheme = parts.scheme
        self._host = parts.netloc.encode("latin-1")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._server = (parts.hostname or "", port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope["scheme"] = self._scheme
        scope["server"] = self._server
        scope["headers"] = [
            *((name, value) for name, value in scope["headers"] if name != b"host"),
            (b"host", self._host),
        ]

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Replaced, not added: the gateway passes on a service's answer that has them.
                message["headers"] = [
                    *(
                        (name, value)
                        for name, value in message.get("headers", ())
                        if name.lower() not in _SECURITY_NAMES
                    ),
                    *_SECURITY_RAW,
                ]
            await send(message)

        await self._app(scope, receive, guarded)


def install_http_guards(
    app: FastAPI, settings: HttpSettings, *, default_origin: str, limits: RateLimits | None = None
) -> RateLimits:
    """Put the guards above in front of `app`; answers the rate limits it now shares."""
    origin = settings.public_base_url or public_origin(default_origin)
    app.add_middleware(_Guard, origin=origin)
    app.state.rate_limits = limits or RateLimits(RateLimitSettings())
    app.state.public_origin = origin
    # Set only by PUBLIC_BASE_URL: the address given to others (a platform's callback URL)
    # is never a guess.
    app.state.public_base_url = settings.public_base_url

    async def on_disconnect(request: Request, exc: Exception) -> JSONResponse:
        log.info(
            "400 %s %s: %s went away before its request body ended",
            request.method,
            request.url.path,
            client_address(request),
        )
        problem = Problem(400, "Bad request", "The request body ended before its length.")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(ClientDisconnect, on_disconnect)
    return app.state.rate_limits  # type: ignore[no-any-return]
