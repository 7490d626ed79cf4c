"""What the ingest use case needs from outside.

The event publisher is `insights_common.bus.EventPublisher` (in-process bus embedded, Kafka
distributed); webhook secrets come from the `insights_common.auth.KeyStore`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from insights_common.auth import SourceConfig
from insights_common.bus import MAX_RECORDS, HealthProbe

# The clock the service and the dedup stores use unless a test gives them another.
from insights_common.erasure import UserKey
from insights_common.kafka.bus import RecordHandler
from insights_common.signatures import WebhookSigning
from notification_ingest.domain.directory import PhoneEntry


class DedupStore(Protocol):
    """The event ids already taken, per app, kept across restarts."""

    async def seen(self, app_id: str, event_ids: Sequence[str]) -> set[str]:
        """The subset of event_ids already recorded for the app."""
        ...

    async def record(self, app_id: str, event_ids: Sequence[str]) -> None:
        """Remember event_ids as taken; recording one twice is harmless."""
        ...

    async def forget(self, *, before: datetime) -> int:
        """Drop the ids recorded before `before`, of every app, and answer how many went.

        The work is split into short transactions, so ingest goes on beside it; a store shared
        by replicas may be forgetting in several of them at once.
        """
        ...


class WebhookSecrets(Protocol):
    """The part of `insights_common.auth.KeyStore` the webhook needs."""

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None: ...


class SourceSecrets(Protocol):
    """The part of `insights_common.auth.KeyStore` the platforms' sources need."""

    async def source(self, app_id: str, platform: str) -> SourceConfig | None: ...


class PhoneDirectory(Protocol):
    """Whose phone number is whose, per app, fed by the users topic (`domain.directory`)."""

    async def record(self, entries: Sequence[PhoneEntry]) -> None:
        """Keep each user's number, in order; a user's earlier number no longer names them."""
        ...

    async def users_by_phone(self, app_id: str, phones: Sequence[str]) -> dict[str, str]:
        """The user_id of each of `phones` the app knows."""
        ...

    async def erase(self, app_id: str, user_id: str, *, at: datetime) -> list[str]:
        """Forget the user's numbers, keeping when they were erased (`erased`); answer the
        numbers (the callbacks kept for them go too)."""
        ...

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        """When each of these users was erased; users never erased are missing."""
        ...


@dataclass(frozen=True, slots=True)
class KeptCallback:
    """A callback kept until a user with its phone number is known."""

    id: int
    app_id: str
    platform: str
    phone: str
    kept_at: datetime
    callback: bytes
    """Its JSON (`callback_of` reads it back)."""


class PendingCallbacks(Protocol):
    """Callbacks that named only a phone number nobody of the app had, kept until someone has
    it: the users topic brings the number, and they are taken then."""

    async def keep(
        self, app_id: str, platform: str, callbacks: Sequence[tuple[str, bytes]]
    ) -> None:
        """Keep (phone, callback JSON) pairs; the same callback kept twice is kept once."""
        ...

    async def waiting(self, app_id: str, phones: Sequence[str]) -> list[tuple[int, str, bytes]]:
        """(id, platform, callback JSON) of the callbacks waiting for any of `phones`, oldest
        first."""
        ...

    async def drop(self, ids: Sequence[int]) -> None: ...

    async def erase(self, app_id: str, phones: Sequence[str]) -> None:
        """Drop the callbacks kept for these numbers (their user was erased), leaving no copy."""
        ...

    async def forget(self, *, before: datetime) -> int:
        """Drop the callbacks kept before `before`; answer how many went."""
        ...

    async def kept(
        self, *, ids: Sequence[int] | None, limit: int
    ) -> tuple[list[KeptCallback], int]:
        """The kept callbacks with these ids (every one when None), at most `limit` of them,
        oldest first (the newest `limit` when ids is None), and how many are kept in all."""
        ...


class RawTopic(Protocol):
    """Where the platform's raw records arrive: Kafka's `platform.events.raw` (the embedded mode
    has no raw topic, only the webhook)."""

    def subscribe_records(
        self,
        topics: Sequence[str],
        handler: RecordHandler,
        *,
        group: str,
        healthy: HealthProbe | None = None,
        max_records: int = MAX_RECORDS,
    ) -> None:
        """Feed `handler` batches of raw records; what it answers goes to `<topic>.dlq`."""
        ...
