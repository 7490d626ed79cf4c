"""Concluding a validated import: its changes planned against the users registry, its users'
events published in one transaction, then the import completed once the projection has made
them all visible."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from import_svc.domain.model import Counts, FileIssue, ImportRecord, ImportStatus, OnError
from import_svc.domain.planning import UserChange, plan_changes
from import_svc.domain.validation import Validation
from import_svc.issues import projection_behind, projection_stalled
from import_svc.ports import EventPublisher, ImportStore, RegistryEntry, UserRegistry
from import_svc.runs import ImportRun, OwnershipLost
from insights_common.bus import ProjectionWatermark, Written, written_records
from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent, UserUpserted

logger = logging.getLogger(__name__)

VISIBLE_POLL = 0.2  # seconds between two looks at the projection's watermark


class Conclusion:
    """Publishes a validated import's users (or rejects it, or completes a dry run), then waits
    until they are visible to complete it.

    `owner` names this replica: it publishes only while it still owns the import.
    """

    def __init__(
        self,
        *,
        store: ImportStore,
        registry: UserRegistry,
        publisher: EventPublisher,
        owner: str,
        watermark: ProjectionWatermark,
        behind_after: timedelta,
        stalled_after: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._registry = registry
        self._publisher = publisher
        self._owner = owner
        self._watermark = watermark
        self._behind_after = behind_after
        self._stalled_after = stalled_after
        self._clock = clock

    async def reject(self, run: ImportRun, validation: Validation) -> None:
        assert validation.file_error is not None  # noqa: S101 - the caller checked
        counts = Counts(total_rows=validation.total_rows, rejected=validation.rejected)
        record = run.record.rejected(
            (validation.file_error,), counts, at=self._clock(), warnings=validation.warnings
        )
        await run.finish(record, validation.errors, ())

    async def conclude(self, run: ImportRun, validation: Validation) -> None:
        """Plan the changes and publish them; the record is then published (or final: a
        rejection or a dry run). Safe to run again until it is published."""
        record = run.record
        if record.published:
            return
        total = validation.total_rows
        warnings = validation.warnings
        if validation.file_error is not None:
            await self.reject(run, validation)
            return

        known = await self._registry.known_users(
            record.app_id, [row.user_id for row in validation.rows]
        )
        plan = plan_changes(validation.rows, known, record.options.mode)
        errors = validation.errors
        if plan.errors:
            errors = sorted(errors + plan.errors, key=lambda error: error.line)
        rejected = validation.rejected + len(plan.errors)

        if rejected and record.options.on_error is OnError.REJECT_FILE:
            issue = FileIssue(
                "rows_rejected",
                f"{rejected:,} of {total:,} rows have errors and on_error=reject_file, so nothing "
                "was imported. Fix the rows in the error report, or import with "
                "on_error=skip_rows to import the valid rows and skip the others.",
            )
            counts = Counts(total_rows=total, rejected=rejected)
            record = record.rejected((issue,), counts, at=self._clock(), warnings=warnings)
            await run.finish(record, errors, ())
            return

        counts = Counts(total, plan.created, plan.updated, plan.unchanged, rejected)
        if record.options.dry_run:
            await run.finish(
                record.completed(counts, at=self._clock(), warnings=warnings), errors, ()
            )
            return

        if record.status is not ImportStatus.IMPORTING:  # a resumed import is importing already
            record = record.importing(counts)
            await run.save(record)
        events = self._events(record, plan.changes)
        written: Written = ()
        if events:
            # Publish only while this replica still owns the import: a replica taken for stopped
            # has had its import failed by another, and publishing now would contradict that.
            if not await self._store.heartbeat(record, owner=self._owner, at=self._clock()):
                raise OwnershipLost
            # One publish, all or nothing: one Kafka transaction in the distributed mode, one
            # SQLite transaction of the projector in the embedded mode.
            written = await self._publisher.publish(events)
        entries = [
            RegistryEntry(record.app_id, c.user_id, c.phone, c.kept_nickname, record.created_at)
            for c in plan.changes
        ]
        # The row errors and the registry are kept with the published record, in one
        # transaction: a restart from here on only waits for the users to be visible.
        await run.finish(
            record.publishing_done(written, at=self._clock(), warnings=warnings), errors, entries
        )

    async def until_visible(self, run: ImportRun) -> None:
        """Complete a published import once the projection has made all its users visible.

        Its progress moves as the projection's watermark passes its records. A projection
        standing still for `behind_after` adds a warning saying so; for `stalled_after`, the
        import fails, its users kept (they appear when the projection resumes). A watermark
        that cannot be read (Kafka down) counts as standing still.
        """
        record = run.record
        if record.status is not ImportStatus.IMPORTING or not record.published:
            return
        total = written_records(record.written)
        loop = asyncio.get_running_loop()
        best, since = -1, loop.time()
        while True:
            try:
                visible = await self._watermark.visible(run.record.written)
            except DependencyUnavailable as outage:
                logger.warning("import %s: the watermark is unreadable: %s", record.id, outage)
                visible = best
            if visible >= total:
                break
            now = loop.time()
            still = timedelta(seconds=now - since)
            if visible > best:
                best, since = visible, now
                moved = run.record.becoming_visible(visible)
                if moved.progress - run.record.progress >= 0.01:
                    await run.save(moved)
            elif still >= self._stalled_after:
                logger.error("import %s: the projection stalled", record.id)
                issue = projection_stalled(max(best, 0), total, self._stalled_after)
                await run.save(run.record.failed(issue, at=self._clock()))
                return
            elif still >= self._behind_after:
                warned = run.record.warned(projection_behind(max(best, 0), total, still))
                if warned is not run.record:
                    await run.save(warned)
            await asyncio.sleep(VISIBLE_POLL)
        await run.save(run.record.completed(run.record.counts, at=self._clock()))

    @staticmethod
    def _events(record: ImportRecord, changes: Sequence[UserChange]) -> list[AnyEvent]:
        # The rows were validated by the CSV rules already, so each event is a copy of one
        # validated prototype with the row's fields (about 3x cheaper than constructing each).
        prototype = UserUpserted(
            event_id=f"{record.id}:0",
            app_id=record.app_id,
            occurred_at=record.created_at,
            user_id="prototype",
            source=f"import:{record.id}",
        )
        prefix = f"{record.id}:"
        return [
            prototype.model_copy(
                update={
                    "event_id": f"{prefix}{change.line}",
                    "user_id": change.user_id,
                    "phone_number": change.phone,
                    "nickname": change.nickname,
                }
                if change.nickname is not None
                else {
                    "event_id": f"{prefix}{change.line}",
                    "user_id": change.user_id,
                    "phone_number": change.phone,
                }
            )
            for change in changes
        ]
