"""An app served by the product's own uvicorn settings on a free port, in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from insights.tuning import server_config
from insights_common.http.guard import HttpSettings
from tests.conftest import free_port


@asynccontextmanager
async def serving(app: FastAPI, http: HttpSettings) -> AsyncIterator[int]:
    """The port `app` listens on, behind the limits of `http`."""
    port = free_port()
    server = uvicorn.Server(
        server_config(app, http, host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send `parts` (waiting `pause` between them), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
