"""What the ingest use case needs from outside.

The event publisher is `insights_common.bus.EventPublisher` (in-process bus embedded, Kafka
distributed); webhook secrets come from the `insights_common.auth.KeyStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class DedupStore(Protocol):
    """The event ids already taken, per app, kept across restarts."""

    async def seen(self, app_id: str, event_ids: Sequence[str]) -> set[str]:
        """The subset of event_ids already recorded for the app."""
        ...

    async def record(self, app_id: str, event_ids: Sequence[str]) -> None:
        """Remember event_ids as taken; recording one twice is harmless."""
        ...


class WebhookSecrets(Protocol):
    """The part of `insights_common.auth.KeyStore` the webhook needs."""

    async def webhook_secret(self, app_id: str) -> str | None: ...
