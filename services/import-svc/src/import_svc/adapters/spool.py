"""Uploads wait in files under the data directory while their import runs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from import_svc.ports import UploadTooLarge

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

    async def save(self, name: str, chunks: AsyncIterator[bytes], *, max_bytes: int) -> int:
        path = self.path(name)
        await asyncio.to_thread(self._directory.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(path.open, "wb")
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)
        return size

    async def head(self, name: str, size: int) -> bytes:
        def read() -> bytes:
            with self.path(name).open("rb") as handle:
                return handle.read(size)

        return await asyncio.to_thread(read)

    async def read(self, name: str) -> AsyncGenerator[bytes, None]:
        handle = await asyncio.to_thread(self.path(name).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, self._chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.path(name).unlink, missing_ok=True)
