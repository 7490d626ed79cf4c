"""Uploads wait in files under the data directory while their import runs.

An upload is written to `<name>.part` and renamed to `<name>.csv` once whole, so a replica that
restarts can tell an upload it may import again from one that was cut off.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

READ_CHUNK = 64 * 1024
_SAFE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class LocalUploadSpool:
    def __init__(self, directory: Path, *, chunk_size: int = READ_CHUNK) -> None:
        self._directory = directory
        self._chunk_size = chunk_size

    def path(self, name: str) -> Path:
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"not a spool name: {name!r}")
        return self._directory / f"{name}.csv"

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        path = self.path(name).with_suffix(".part")
        await asyncio.to_thread(self._directory.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(path.open, "wb")
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(path.rename, self.path(name))
        return size

    async def complete(self, name: str) -> bool:
        return await asyncio.to_thread(self.path(name).is_file)

    async def read(self, name: str) -> AsyncGenerator[bytes, None]:
        handle = await asyncio.to_thread(self.path(name).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, self._chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, name: str) -> None:
        path = self.path(name)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await asyncio.to_thread(path.with_suffix(".part").unlink, missing_ok=True)
