"""The ingest use case: validate, drop what was already taken, publish, remember.

The webhook and the consumer of `platform.events.raw` both end in `IngestService.ingest`, so an
event is taken, refused or counted as a duplicate the same way whichever door it came through.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from insights_common.bus import (
    AtOnce,
    EventPublisher,
    ProjectionWatermark,
    Written,
    written_records,
)
from insights_common.clock import utc_now
from insights_common.outage import DependencyUnavailable
from insights_common.service import Recurring
from insights_common.signatures import MalformedSignature, Signature, parse_signature
from insights_contracts import AnyEvent
from notification_ingest.domain.errors import Unauthenticated
from notification_ingest.domain.model import IngestResult, PlatformResult, RecordRejection
from notification_ingest.domain.validation import claimed_app, decode_batch, validate_batch
from notification_ingest.ports import DedupStore, WebhookSecrets

APP_HEADER = "X-Insights-App"
SIGNATURE_HEADER = "X-Insights-Signature"
FORGET_EVERY = timedelta(hours=1)
DEFAULT_TOLERANCE = timedelta(seconds=300)
VISIBLE_POLL = 0.05  # seconds between two looks at the projection's watermark
NOT_SIGNED = (
    f"{SIGNATURE_HEADER} does not match: sign the exact raw body with HMAC-SHA256 and the app's "
    "webhook secret ('insights webhooks secret --app APP' shows it)."
)
SIGNATURE_FORMS = (
    "'t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">' or 'sha256=<hex HMAC-SHA256 "
    "of the raw body>', with the app's webhook secret"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookSender:
    """A webhook whose headers passed: its signature has yet to match the body."""

    app_id: str
    signature: Signature
    secrets: tuple[str, ...]


class IngestService:
    def __init__(
        self,
        *,
        dedup: DedupStore,
        publisher: EventPublisher,
        secrets: WebhookSecrets,
        max_batch: int,
        dedup_window: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
        signature_tolerance: timedelta = DEFAULT_TOLERANCE,
        watermark: ProjectionWatermark | None = None,
    ) -> None:
        """`dedup_window`: how long an event id is remembered, so that the same event sent
        again within it is counted as a duplicate; None remembers every id for ever.
        `signature_tolerance`: how far a timestamped signature's t= may be from `clock()`."""
        self._dedup = dedup
        self._publisher = publisher
        self._secrets = secrets
        self._max_batch = max_batch
        self._dedup_window = dedup_window
        self._clock = clock
        self._tolerance = signature_tolerance
        self._watermark = watermark if watermark is not None else AtOnce()
        self._forgetting = Recurring(
            self.forget_old_ids, every=FORGET_EVERY, name="forget event ids past the dedup window"
        )
        # Serialises check-publish-record per app so two concurrent requests carrying the same
        # event in one process cannot both publish it.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def start(self) -> None:
        """Begin forgetting, now and every hour, the event ids older than the dedup window."""
        if self._dedup_window is not None:
            await self._forgetting.start()

    async def stop(self) -> None:
        await self._forgetting.stop()

    async def forget_old_ids(self) -> int:
        """Drop the ids taken longer ago than the dedup window; answer how many went.

        An event sent again after that is taken again. That changes no state the API shows:
        the projections fold a message's events as a set, by event_id.
        """
        if self._dedup_window is None:
            return 0
        before = self._clock() - self._dedup_window
        forgotten = await self._dedup.forget(before=before)
        if forgotten:
            log.info("forgot %d event id(s) taken before %s", forgotten, before.isoformat())
        return forgotten

    async def authenticate_webhook(
        self, *, app_id: str | None, signature: str | None
    ) -> WebhookSender:
        """Check what the headers alone can show, before any of the body is read: the app is
        named and has a secret, the signature header is well formed, timestamped if the app
        requires it, and its timestamp within the tolerance of this service's clock.

        Raises Unauthenticated; the body's signature is checked by `take_webhook`.
        """
        if not app_id:
            raise Unauthenticated(
                f"Missing header {APP_HEADER}: send the id of the app whose webhook secret "
                "signed the body."
            )
        if not signature:
            raise Unauthenticated(f"Missing header {SIGNATURE_HEADER}: send {SIGNATURE_FORMS}.")
        try:
            parsed = parse_signature(signature)
        except MalformedSignature as exc:
            raise Unauthenticated(f"{SIGNATURE_HEADER} is malformed. {exc}") from exc
        now = self._clock()
        # Before the secrets are looked up: the answer is the same whether the app exists.
        if parsed.timestamp is not None:
            skew = now.timestamp() - parsed.timestamp
            if abs(skew) > self._tolerance.total_seconds():
                when = "old" if skew > 0 else "ahead of this server's clock"
                raise Unauthenticated(
                    f"The signature's timestamp t={parsed.timestamp} is {abs(skew):.0f} s {when};"
                    f" at most {self._tolerance.total_seconds():.0f} s is taken. Sign each"
                    " request when it is sent, with the current unix time, and keep the"
                    " sender's clock in sync (NTP)."
                )
        signing = await self._secrets.webhook_signing(app_id, now=now)
        if signing is None:
            # The answer of a wrong signature: a caller learns nothing of which apps exist.
            raise Unauthenticated(NOT_SIGNED)
        if parsed.timestamp is None and signing.require_timestamp:
            raise Unauthenticated(
                f"App '{app_id}' takes only timestamped signatures: send {SIGNATURE_HEADER}:"
                ' t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">.'
            )
        return WebhookSender(app_id=app_id, signature=parsed, secrets=signing.secrets)

    async def take_webhook(self, sender: WebhookSender, body: bytes) -> IngestResult:
        """Check the body's signature, then ingest its events for the signing app.

        Raises Unauthenticated, MalformedBody or BatchTooLarge, and then nothing is taken.
        """
        if not sender.signature.matches(sender.secrets, body):
            raise Unauthenticated(NOT_SIGNED)
        items = decode_batch(body, max_batch=self._max_batch)
        return await self.ingest(app_id=sender.app_id, items=items)

    async def receive_webhook(
        self, *, app_id: str | None, signature: str | None, body: bytes
    ) -> IngestResult:
        """`authenticate_webhook` then `take_webhook`, for a body already in hand."""
        sender = await self.authenticate_webhook(app_id=app_id, signature=signature)
        return await self.take_webhook(sender, body)

    async def ingest(self, *, app_id: str, items: Sequence[object]) -> IngestResult:
        """Take the valid, new events of `items` for `app_id`, in their order, in one publish.

        Trusted callers (the demo loader, the raw-topic consumer) call this directly; batch size
        is not limited here. At-least-once: events are recorded as seen only after the publish,
        so a crash in between publishes them again and the projector's idempotency absorbs it.
        """
        batch = validate_batch(items, app_id=app_id)
        fresh: list[AnyEvent] = []
        async with self._locks[app_id]:
            if batch.events:
                seen = await self._dedup.seen(app_id, [event.event_id for event in batch.events])
                fresh = [event for event in batch.events if event.event_id not in seen]
            written: Written = ()
            if fresh:
                written = await self._publisher.publish(fresh)
                await self._dedup.record(app_id, [event.event_id for event in fresh])
        return IngestResult(
            accepted=len(fresh),
            duplicates=batch.duplicates + len(batch.events) - len(fresh),
            rejected=batch.rejected,
            written=written,
        )

    async def until_visible(self, result: IngestResult, *, limit: float) -> IngestResult:
        """The result, once the events it published can all be read (`visible`: True), or
        after `limit` seconds (`visible`: False; they are taken and will be visible).

        A watermark that cannot be read (Kafka down) is waited on like one that is behind.
        """
        total = written_records(result.written)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            try:
                if await self._watermark.visible(result.written) >= total:
                    return replace(result, visible=True)
            except DependencyUnavailable as outage:
                log.warning("the projection's watermark is unreadable: %s", outage)
            if loop.time() >= deadline:
                return replace(result, visible=False)
            await asyncio.sleep(min(VISIBLE_POLL, max(deadline - loop.time(), 0.0)))

    async def ingest_platform(self, records: Sequence[Sequence[object]]) -> PlatformResult:
        """Take the events of a batch of raw-topic records, each for the app its envelope names.

        The raw topic is trusted (no signature). The batch's events are grouped per app, keeping
        their order, and each group goes through `ingest`: the webhook's validation and dedup. A
        rejection names its record (position in `records`) and its index in that record.
        """
        groups: defaultdict[str, list[tuple[int, int, object]]] = defaultdict(list)
        for position, items in enumerate(records):
            for index, item in enumerate(items):
                groups[claimed_app(item)].append((position, index, item))
        accepted = duplicates = 0
        rejected: list[RecordRejection] = []
        for app_id, members in groups.items():
            result = await self.ingest(app_id=app_id, items=[item for _, _, item in members])
            accepted += result.accepted
            duplicates += result.duplicates
            for rejection in result.rejected:
                position, index, _ = members[rejection.index]
                rejected.append(RecordRejection(position, replace(rejection, index=index)))
        rejected.sort(key=lambda r: (r.record, r.rejection.index))
        return PlatformResult(accepted=accepted, duplicates=duplicates, rejected=tuple(rejected))
