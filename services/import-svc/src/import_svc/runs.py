"""One running import's latest state, stored and reported as it changes, and its progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from import_svc.domain.model import VALIDATED, ImportRecord, ImportStatus, RowError
from import_svc.domain.validation import FileValidator
from import_svc.ports import ImportStore, RegistryEntry

ProgressCallback = Callable[[ImportRecord], None]

PROGRESS_EVERY = 1000  # rows between two progress reports
VALIDATED_SHARE = VALIDATED  # of the progress bar; publishing and becoming visible take the rest


class OwnershipLost(Exception):
    """This replica no longer owns the import it is running."""


class ProgressReporter:
    """Stores a validating import's progress every PROGRESS_EVERY rows."""

    def __init__(self, run: ImportRun, validator: FileValidator, size_hint: int | None) -> None:
        self._run = run
        self._validator = validator
        self._size_hint = size_hint
        self._reported = 0

    async def report(self) -> None:
        validator = self._validator
        if validator.total_rows - self._reported < PROGRESS_EVERY:
            return
        if self._run.record.status is not ImportStatus.VALIDATING:
            return  # a resumed import has validated once already
        self._reported = validator.total_rows
        size = self._size_hint
        share = min(validator.bytes_read / size, 1.0) if size else 0.0
        await self._run.save(
            self._run.record.with_progress(
                total_rows=self._reported, progress=share * VALIDATED_SHARE
            )
        )


class ImportRun:
    """The latest state of one running import, stored and reported as it changes."""

    def __init__(
        self, store: ImportStore, record: ImportRecord, on_progress: ProgressCallback | None
    ) -> None:
        self._store = store
        self._on_progress = on_progress
        self.record = record

    async def save(self, record: ImportRecord) -> None:
        await self._store.update(record)
        self._stored(record)

    async def finish(
        self, record: ImportRecord, errors: Sequence[RowError], entries: Sequence[RegistryEntry]
    ) -> None:
        await self._store.finish(record, errors=errors, users=entries)
        self._stored(record)

    def _stored(self, record: ImportRecord) -> None:
        self.record = record
        if self._on_progress is not None:
            self._on_progress(record)


def feed_rows(validator: FileValidator, chunks: Iterator[bytes], rows: int) -> bool:
    """Feed chunks until `rows` more rows were read; False once the file is done."""
    target = validator.total_rows + rows
    for chunk in chunks:
        validator.feed(chunk)
        if validator.stopped:
            return False
        if validator.total_rows >= target:
            return True
    return False
