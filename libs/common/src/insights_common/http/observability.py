"""Health, readiness and Prometheus metrics, the same for every service process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ReadinessCheck = Callable[[], Awaitable[None]]


def install_observability(
    app: FastAPI,
    *,
    service: str,
    readiness: list[ReadinessCheck] | None = None,
    collectors: Iterable[Collector] = (),
) -> CollectorRegistry:
    """Add /healthz, /readyz and /metrics (no key needed) and count every request.

    Each readiness check is named after the dependency it probes (its `__name__`); /readyz sets
    `insights_dependency_up` for it. `collectors` (the Kafka bus's metrics) join the registry.
    """
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    up = Gauge(
        "insights_dependency_up",
        "1 when the dependency answered the last readiness probe, 0 when it did not",
        ["service", "dependency"],
        registry=registry,
    )
    requests = Counter(
        "insights_http_requests_total",
        "HTTP requests by route and status",
        ["service", "method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "insights_http_request_duration_seconds",
        "HTTP request latency by route",
        ["service", "method", "route"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    checks = list(readiness or [])

    app.add_middleware(_Measure, service=service, requests=requests, latency=latency)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failures = []
        for check in checks:
            name = getattr(check, "__name__", "check")
            try:
                await check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures.append(f"{name}: {exc}")
                up.labels(service, name).set(0)
            else:
                up.labels(service, name).set(1)
        if failures:
            return JSONResponse({"status": "unavailable", "failures": failures}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry


class _Measure:
    """Counts each request and observes its latency up to the start of its response.

    Plain ASGI: starlette's BaseHTTPMiddleware (`@app.middleware`) passes every response
    through a memory stream and a task group, which cost the gateway more CPU than forwarding.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        requests: Counter,
        latency: Histogram,
    ) -> None:
        self._app = app
        self._service = service
        self._requests = requests
        self._latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()

        async def measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                seconds = time.perf_counter() - started
                route = _route_template(scope)
                method = scope["method"]
                status = str(message["status"])
                self._requests.labels(self._service, method, route, status).inc()
                self._latency.labels(self._service, method, route).observe(seconds)
            await send(message)

        await self._app(scope, receive, measured)


def _route_template(scope: Scope) -> str:
    """The path template of the route the router chose, so metrics do not get one series per
    user id; "unmatched" when no route took the request."""
    return str(getattr(scope.get("route"), "path", "unmatched"))
