from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from importsvc_support import Embedded, build_embedded, make_app


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    env = build_embedded(tmp_path)
    yield env
    env.db.close()


@pytest.fixture
async def client(embedded: Embedded) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(embedded.parts)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        yield http
    await embedded.service.shutdown()
