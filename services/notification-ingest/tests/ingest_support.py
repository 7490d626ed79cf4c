"""Events and a recording bus shared by the ingest tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from insights_common.bus import InProcessBus
from insights_contracts import AnyEvent
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS

EVENTS_FILE = Path(__file__).with_name("contract_events.json")


def contract_events() -> list[dict[str, Any]]:
    """One event of each of the eight types the webhook takes, for app 'acme', as sent."""
    events: list[dict[str, Any]] = json.loads(EVENTS_FILE.read_text(encoding="utf-8"))
    return events


def delivered(app_id: str, event_id: str, message_id: str = "m1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "notification.delivered",
        "schema_version": 1,
        "app_id": app_id,
        "occurred_at": "2026-11-02T10:00:00Z",
        "message_id": message_id,
        "user_id": "alex",
    }


class RecordingBus(InProcessBus):
    """The real in-process bus that also remembers each publish call's batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[AnyEvent]] = []
        self.received: list[AnyEvent] = []
        self.subscribe([NOTIFICATIONS, USERS, TEMPLATES], self._collect, group="recorder")

    async def publish(self, events: Sequence[AnyEvent]) -> tuple[()]:
        self.calls.append(list(events))
        return await super().publish(events)

    async def _collect(self, batch: Sequence[AnyEvent]) -> None:
        self.received.extend(batch)
