"""What the guards in front of every process cost a request: CPU per request of a small
authenticated route with and without them (public origin, browser headers, the disconnect
handler and the rate limits of http.access.Access), called through ASGI in this process.

    uv run python -m bench.http_guards [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import Depends, FastAPI

from insights_common.auth import ApiKeyInfo
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.http.guard import HttpSettings, install_http_guards
from insights_common.http.rate_limit import RateLimits, RateLimitSettings

KEY = "uik_benchkey-0123456789"


class OneKey:
    """A key store that knows one key, answered at once (the cost measured is the HTTP path)."""

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None:
        return ApiKeyInfo(app_id="bench", key_id="uik_benc") if key == KEY else None


def app_with(*, guards: bool) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    limits = RateLimits(RateLimitSettings(enabled=guards, key_burst=10**9, key_per_second=1e9))
    if guards:
        install_http_guards(
            app, HttpSettings(), default_origin="http://127.0.0.1:8000", limits=limits
        )
    else:
        app.state.rate_limits = limits
    auth = Access(OneKey()).app_id(None)  # type: ignore[arg-type]

    @app.get("/api/v1/ping")
    async def ping(app_id: str = Depends(auth)) -> dict[str, str]:
        return {"app_id": app_id}

    return app


async def cpu_per_request(app: FastAPI, requests: int) -> float:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/ping",
        "raw_path": b"/api/v1/ping",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode())],
        "client": ("203.0.113.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message  # noqa: S101

    for _ in range(500):  # warm up
        await app(dict(scope), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for guards in (False, True):
        app = app_with(guards=guards)
        runs = [asyncio.run(cpu_per_request(app, args.requests)) for _ in range(args.rounds)]
        best = min(runs) * 1e6
        print(
            f"guards {'on ' if guards else 'off'}: {best:.1f} µs of CPU a request "
            f"(best of {args.rounds} x {args.requests:,})"
        )


if __name__ == "__main__":
    main()
