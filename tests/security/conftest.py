"""The embedded deployment in this process, with an API key, for the security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from insights.composition.embedded import build_embedded
from insights.embedded import Embedded, EmbeddedSettings, create_app


@dataclass
class InProcess:
    embedded: Embedded
    client: httpx.AsyncClient
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with embedded_in_process(tmp_path) as running:
        yield running


@asynccontextmanager
async def embedded_in_process(tmp_path: Path) -> AsyncIterator[InProcess]:
    embedded = build_embedded(EmbeddedSettings(data_dir=tmp_path / "data"))
    app = create_app(embedded)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://insights.test") as client,
    ):
        key = await embedded.keys.create_api_key("acme")
        yield InProcess(embedded, client, key)
