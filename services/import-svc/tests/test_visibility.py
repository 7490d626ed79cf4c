"""An import is `completed` only once the projection has made its users visible.

The bus and the projection here are in-process: a publisher that answers where it wrote, and a
watermark the test moves as a projector's committed positions would move. The distributed mode
runs the same service on Kafka's real positions (tests/e2e/test_import_visible.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from importsvc_support import csv_bytes

from import_svc.adapters.spool import LocalUploadSpool
from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.domain.model import PUBLISHED, ImportOptions, ImportRecord, ImportStatus
from import_svc.service import ImportService
from insights_common.bus import InProcessBus, Span, Written, written_records
from insights_common.outage import DependencyUnavailable
from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import AnyEvent

pytestmark = pytest.mark.unit

ROWS = 40


class PartitionedBus:
    """Publishes in-process, answering offsets as a two-partition topic would give them."""

    def __init__(self) -> None:
        self.bus = InProcessBus()
        self.next = [0, 0]

    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        await self.bus.publish(events)
        spans = []
        for partition in (0, 1):
            mine = [e for n, e in enumerate(events) if n % 2 == partition]
            first = self.next[partition]
            self.next[partition] += len(mine) + 1  # and the transaction's commit marker
            spans.append(Span("users", partition, first, first + len(mine) - 1, len(mine)))
        return tuple(spans)


class MovingWatermark:
    """The projection's committed position per partition, moved by the test."""

    def __init__(self) -> None:
        self.committed = {0: 0, 1: 0}
        self.down = False

    async def visible(self, written: Written) -> int:
        if self.down:
            raise DependencyUnavailable("Kafka", "connection refused")
        return sum(span.covered(self.committed[span.partition]) for span in written)

    def reach(self, written: Written, share: float) -> None:
        for span in written:
            self.committed[span.partition] = span.first + int((span.last + 1 - span.first) * share)


def service(tmp_path: Path, watermark: MovingWatermark, **timing: timedelta) -> ImportService:
    store = SqliteImportStore(SqliteDatabase(tmp_path / "insights.db"))
    return ImportService(
        store=store,
        registry=store,
        publisher=PartitionedBus(),
        spool=LocalUploadSpool(tmp_path / "uploads"),
        owner="replica-a",
        watermark=watermark,
        **timing,
    )


def registry(tmp_path: Path) -> SqliteImportStore:
    return SqliteImportStore(SqliteDatabase(tmp_path / "insights.db"))


def rows() -> bytes:
    return csv_bytes("user_id,phone_number", *(f"u{n},+8210{n:08d}" for n in range(ROWS)))


async def start(svc: ImportService) -> ImportRecord:
    return await svc.submit(
        app_id="acme", filename="u.csv", chunks=_once(rows()), options=ImportOptions()
    )


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def until(
    svc: ImportService, import_id: str, check: Callable[[ImportRecord], object]
) -> ImportRecord:
    for _ in range(500):
        record = await svc.get("acme", import_id)
        assert record is not None
        if check(record):
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached: {record}")


async def test_completed_waits_for_the_projection_and_progress_follows_it(
    tmp_path: Path,
) -> None:
    watermark = MovingWatermark()
    svc = service(tmp_path, watermark)
    accepted = await start(svc)
    published = await until(svc, accepted.id, lambda r: r.published)
    assert published.status is ImportStatus.IMPORTING and published.visible_at is None
    assert written_records(published.written) == ROWS
    # The registry knows the users already: a restart from here does not plan them again.
    assert len(await registry(tmp_path).known_users("acme", ["u0", "u39"])) == 2
    await asyncio.sleep(0.5)  # the projection stands still: so does the import
    assert await until(svc, accepted.id, lambda r: r.status is ImportStatus.IMPORTING)

    watermark.reach(published.written, 0.5)
    halfway = await until(svc, accepted.id, lambda r: r.progress > PUBLISHED)
    assert halfway.status is ImportStatus.IMPORTING and halfway.progress < 1.0

    watermark.reach(published.written, 1.0)
    done = await until(svc, accepted.id, lambda r: r.finished)
    assert done.status is ImportStatus.COMPLETED and done.progress == 1.0
    assert done.published_at is not None and done.visible_at is not None
    assert done.published_at <= done.visible_at == done.finished_at
    assert done.warnings == ()
    await svc.shutdown()


async def test_a_projection_that_stands_still_is_reported_then_fails_the_import(
    tmp_path: Path,
) -> None:
    watermark = MovingWatermark()
    svc = service(
        tmp_path,
        watermark,
        behind_after=timedelta(seconds=0.3),
        stalled_after=timedelta(seconds=1.5),
    )
    accepted = await start(svc)
    behind = await until(svc, accepted.id, lambda r: r.warnings)
    assert behind.status is ImportStatus.IMPORTING
    assert [w.code for w in behind.warnings] == ["projection_behind"]
    assert "0 of 40 can be found" in behind.warnings[0].message
    watermark.down = True  # an unreadable watermark is no progress either
    failed = await until(svc, accepted.id, lambda r: r.finished)
    assert failed.status is ImportStatus.FAILED
    assert [e.code for e in failed.errors] == ["projection_stalled"]
    assert "40 users were published and kept" in failed.errors[0].message
    await svc.shutdown()


async def test_a_restart_while_waiting_resumes_the_wait_without_the_upload(
    tmp_path: Path,
) -> None:
    watermark = MovingWatermark()
    first = service(tmp_path, watermark)
    accepted = await start(first)
    published = await until(first, accepted.id, lambda r: r.published)
    await first.shutdown()  # stops mid-wait, as a deploy would
    await LocalUploadSpool(tmp_path / "uploads").delete(accepted.id)  # nothing to read again

    again = service(tmp_path, watermark)
    await again.recover()
    watermark.reach(published.written, 1.0)
    done = await until(again, accepted.id, lambda r: r.finished)
    assert done.status is ImportStatus.COMPLETED
    assert done.counts == published.counts  # not planned again against the registry
    await again.shutdown()
