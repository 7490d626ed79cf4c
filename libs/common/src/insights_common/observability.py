"""Health, readiness and Prometheus metrics, the same for every service process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.routing import Match

ReadinessCheck = Callable[[], Awaitable[None]]


def install_observability(
    app: FastAPI, *, service: str, readiness: list[ReadinessCheck] | None = None
) -> CollectorRegistry:
    """Add /healthz, /readyz and /metrics (no key needed) and count every request."""
    registry = CollectorRegistry()
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

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(app, request)
        requests.labels(service, request.method, route, str(response.status_code)).inc()
        latency.labels(service, request.method, route).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failures = []
        for check in checks:
            try:
                await check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures.append(f"{getattr(check, '__name__', 'check')}: {exc}")
        if failures:
            return JSONResponse({"status": "unavailable", "failures": failures}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry


def _route_template(app: FastAPI, request: Request) -> str:
    """The route's path template, so metrics do not get one series per user id."""
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
