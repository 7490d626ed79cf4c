"""The consumer of `platform.events.raw`: decode each record, ingest, hand back what was refused.

A record holds what the webhook takes (one event or an array of them). A record that is not such
JSON, and each event the service rejects, go back to the bus as rejects for the dead-letter topic:
a whole record as it was, an event of an array as its own JSON with its index in the record.
"""

from __future__ import annotations

from collections.abc import Sequence

from insights_common.bus import BatchHandler
from insights_common.erasure import screen, users_of
from insights_common.kafka.bus import Record, RecordHandler, Rejected
from insights_contracts import AnyEvent
from notification_ingest.domain.directory import phone_entries
from notification_ingest.domain.errors import IngestRefused
from notification_ingest.domain.validation import decode_batch, encode_item
from notification_ingest.ports import PhoneDirectory
from notification_ingest.service import IngestService
from notification_ingest.source_service import SourceService


def raw_events_consumer(service: IngestService, *, max_batch: int) -> RecordHandler:
    async def consume(records: Sequence[Record]) -> list[Rejected]:
        taken: list[Record] = []
        decoded: list[list[object]] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                decoded.append(decode_batch(record.value, max_batch=max_batch))
            except IngestRefused as refusal:
                rejected.append(Rejected(record, str(refusal)))
            else:
                taken.append(record)
        result = await service.ingest_platform(decoded)
        for refused in result.rejected:
            record, items = taken[refused.record], decoded[refused.record]
            index, error = refused.rejection.index, refused.rejection.summary()
            if len(items) == 1:
                rejected.append(Rejected(record, error))
            else:
                rejected.append(
                    Rejected(record, error, index=index, value=encode_item(items[index]))
                )
        return rejected

    return consume


def phone_directory_consumer(directory: PhoneDirectory, sources: SourceService) -> BatchHandler:
    """The users topic into the phone directory the sources name users by; the callbacks kept
    for a number a user now has are taken then. An erased user's numbers are forgotten, with
    the callbacks kept for them, and the events dated before their erase are dropped
    (`insights_common.erasure`)."""

    async def consume(events: Sequence[AnyEvent]) -> None:
        screened = screen(events, await directory.erased(users_of(events)))
        for (app_id, user_id), at in screened.erasures.items():
            await sources.forget(app_id, await directory.erase(app_id, user_id, at=at))
        entries = phone_entries(screened.kept)
        await directory.record(entries)
        await sources.retake(entries)

    return consume
