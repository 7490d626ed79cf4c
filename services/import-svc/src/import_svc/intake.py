"""Taking an import's file: validating it chunk by chunk as it arrives, within one import's
limits of bytes, rows, record length, blank lines and time, and keeping an upload in the spool."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from import_svc.domain.model import ImportStatus
from import_svc.domain.validation import FileValidator, Validation
from import_svc.issues import over_budget
from import_svc.ports import UploadSpool
from import_svc.runs import (
    PROGRESS_EVERY,
    VALIDATED_SHARE,
    ImportRun,
    ProgressReporter,
    feed_rows,
)

logger = logging.getLogger(__name__)


class Intake:
    """Validates an import's file as it is read, its progress stored as it goes; an upload is
    written to the spool at the same time, so that it can be imported in the background."""

    def __init__(
        self,
        *,
        spool: UploadSpool,
        max_rows: int,
        max_bytes: int,
        max_record_bytes: int,
        max_blank_lines: int,
        time_budget: timedelta,
    ) -> None:
        self._spool = spool
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._max_record_bytes = max_record_bytes
        self._max_blank_lines = max_blank_lines
        self._time_budget = time_budget

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def time_budget(self) -> timedelta:
        return self._time_budget

    def validator(self) -> FileValidator:
        return FileValidator(
            max_rows=self._max_rows,
            max_bytes=self._max_bytes,
            max_record_bytes=self._max_record_bytes,
            max_blank_lines=self._max_blank_lines,
        )

    async def within_budget(
        self, validator: FileValidator, reading: Coroutine[Any, Any, Validation]
    ) -> Validation:
        """What `reading` validates, or a refusal once it has taken the import's time budget."""
        budget = asyncio.timeout(self._time_budget.total_seconds())
        try:
            async with budget:
                return await reading
        except TimeoutError:
            if not budget.expired():
                raise
            logger.info("an import ran out of its time budget after %d rows", validator.total_rows)
            return Validation(
                total_rows=validator.total_rows,
                rows=[],
                errors=[],
                rejected=0,
                file_error=over_budget(self._time_budget),
                warnings=(),
            )

    async def receive(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes],
        size_hint: int | None,
    ) -> Validation:
        """Spool an upload as it is validated."""
        await self._spool.save(
            run.record.id, self._validated_chunks(run, validator, chunks, size_hint)
        )
        return await asyncio.to_thread(validator.finish)

    async def validate(
        self,
        run: ImportRun,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        *,
        size_hint: int | None,
    ) -> Validation:
        validator = self.validator()
        validation = await self.within_budget(
            validator, self._read(run, validator, chunks, size_hint)
        )
        if validation.file_error is None:
            await self.validated(run, validation)
        return validation

    @staticmethod
    async def validated(run: ImportRun, validation: Validation) -> None:
        if run.record.status is ImportStatus.VALIDATING:
            await run.save(
                run.record.with_progress(total_rows=validation.total_rows, progress=VALIDATED_SHARE)
            )

    async def _read(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        size_hint: int | None,
    ) -> Validation:
        if isinstance(chunks, AsyncIterator):
            async for _ in self._validated_chunks(run, validator, chunks, size_hint):
                pass
        else:
            reporter = ProgressReporter(run, validator, size_hint)
            iterator = iter(chunks)
            while await asyncio.to_thread(feed_rows, validator, iterator, PROGRESS_EVERY):
                await reporter.report()
        return await asyncio.to_thread(validator.finish)

    async def _validated_chunks(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes],
        size_hint: int | None,
    ) -> AsyncIterator[bytes]:
        """The upload's chunks, each validated before it is passed on; stops at a file problem."""
        reporter = ProgressReporter(run, validator, size_hint)
        async for chunk in chunks:
            await asyncio.to_thread(validator.feed, chunk)
            if validator.stopped:
                return
            yield chunk
            await reporter.report()
