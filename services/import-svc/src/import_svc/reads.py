"""The read side of imports: one import, an app's history, an import's row errors and its
error report, each as the app that owns them may see them."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from import_svc.domain.model import ImportRecord, RowError
from import_svc.ports import ImportStore

REPORT_PAGE = 5000


class ImportReads:
    """Answers what an app asks about its imports, page by page."""

    def __init__(self, store: ImportStore) -> None:
        self._store = store

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None:
        return await self._store.get(app_id, import_id)

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> tuple[list[ImportRecord], str | None]:
        """A page of the app's imports, newest first, and the id to continue before."""
        records = await self._store.history(app_id, before_id=before_id, limit=limit + 1)
        more = len(records) > limit
        records = records[:limit]
        return records, records[-1].id if more and records else None

    async def row_errors(
        self, app_id: str, import_id: str, *, after: int, limit: int
    ) -> tuple[list[RowError], int | None] | None:
        """A page of an import's row errors in line order and the position to continue after;
        None when the app has no such import."""
        if await self._store.get(app_id, import_id) is None:
            return None
        stored = await self._store.row_errors(app_id, import_id, after_seq=after, limit=limit + 1)
        more = len(stored) > limit
        stored = stored[:limit]
        return [s.error for s in stored], stored[-1].seq if more and stored else None

    async def error_report(
        self, app_id: str, import_id: str
    ) -> AsyncGenerator[list[RowError], None] | None:
        """Every row error of an import, page by page; None when the app has no such import."""
        if await self._store.get(app_id, import_id) is None:
            return None
        return self._report_pages(app_id, import_id)

    async def _report_pages(
        self, app_id: str, import_id: str
    ) -> AsyncGenerator[list[RowError], None]:
        after = 0
        while True:
            stored = await self._store.row_errors(
                app_id, import_id, after_seq=after, limit=REPORT_PAGE
            )
            if not stored:
                return
            yield [s.error for s in stored]
            if len(stored) < REPORT_PAGE:
                return
            after = stored[-1].seq
