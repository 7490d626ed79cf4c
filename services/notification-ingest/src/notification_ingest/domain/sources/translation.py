"""The one rule that turns any platform's callbacks into canonical events.

A callback becomes at most two events: the message's `notification.sent` (the platform rarely
reports a send before anything else, and a message is shown from its sent event on) under an
event id made from the message alone, so the first callback of a message creates it and every
later one is a duplicate; and, unless the status is the send itself, the event its table maps it
to, under an event id made from the callback's dedup key, so a retried callback counts once.

A status the table maps to none of ours, or does not list, is one `notification.status` event in
the platform's words, and no send: a message queued or scheduled is not yet sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from insights_common.clock import rfc3339
from notification_ingest.domain.sources.model import (
    REPORTED,
    Callback,
    Outcome,
    PlatformTable,
    Read,
    Unreadable,
)

MAX_EVENT_ID = 128
TEMPLATE_VERSION = 1
_NOT_A_KEY = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True, slots=True)
class Ignored:
    """A callback acknowledged without an event: a status the table does not show, or one it
    does not know (kept in the answer with the platform's word)."""

    index: int
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A callback that cannot become an event, and why (e.g. it names no user)."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Translation:
    events: list[dict[str, Any]]
    origins: list[int]
    """For each event, the index of the callback it came from."""
    ignored: list[Ignored]
    refused: list[Refused]


def translate(table: PlatformTable, reads: Sequence[Read], *, app_id: str) -> Translation:
    events: list[dict[str, Any]] = []
    origins: list[int] = []
    ignored: list[Ignored] = []
    refused: list[Refused] = []
    for index, read in enumerate(reads):
        if isinstance(read, Unreadable):
            refused.append(Refused(index, read.reason))
            continue
        outcome = table.statuses.get(read.status, REPORTED)
        if outcome is None:
            ignored.append(Ignored(index, read.status, "says nothing of a message sent"))
            continue
        channel = _channel(table, read)
        if channel is None:
            ignored.append(
                Ignored(index, read.status, f"channel '{read.channel}' is not one we show")
            )
            continue
        if read.user_id is None:
            refused.append(Refused(index, f"The callback names no user. {read.user_hint}".strip()))
            continue
        for event in _events(table, read, outcome, channel=channel, app_id=app_id):
            events.append(event)
            origins.append(index)
    return Translation(events=events, origins=origins, ignored=ignored, refused=refused)


def explanation(table: PlatformTable, code: str | None, *, channel: str) -> str | None:
    """The dictionary's text for a failure's code, when the platform's dictionary explains codes
    of this channel and has one for it."""
    explains = table.failures_for is None or channel in table.failures_for
    return table.failures.get(code or "") if explains else None


def _channel(table: PlatformTable, read: Callback) -> str | None:
    if read.channel is None:
        return table.default_channel
    return table.channels.get(read.channel)


def _events(
    table: PlatformTable, read: Callback, outcome: Outcome, *, channel: str, app_id: str
) -> list[dict[str, Any]]:
    base = {
        "schema_version": 1,
        "app_id": app_id,
        "message_id": read.message_id,
        "user_id": read.user_id,
        "occurred_at": rfc3339(read.occurred_at, precision="auto"),
    }
    if outcome == REPORTED:
        return [
            {
                **base,
                "event_id": event_id(table.name, read.dedup_key),
                "event_type": "notification.status",
                "status": read.status[:64],
                "reported_by": table.title,
            }
        ]
    template = _NOT_A_KEY.sub("-", read.template)[:128] if read.template else table.name
    sent = {
        **base,
        "event_id": event_id(table.name, f"{read.message_id}:sent"),
        "event_type": "notification.sent",
        "channel": channel,
        "template": {
            "key": template,
            "name": read.template or table.no_template,
            "version": TEMPLATE_VERSION,
        },
    }
    if outcome == "sent":
        return [sent]
    event: dict[str, Any] = {
        **base,
        "event_id": event_id(table.name, read.dedup_key),
        "event_type": f"notification.{outcome}",
    }
    if outcome == "failed":
        event["code"] = (read.code or read.status)[:128]
        event["reason"] = (read.reason or "")[:2000]
        known = explanation(table, read.code, channel=channel)
        if known:
            event["explanation"] = known[:500]
            event["explained_by"] = table.failure_source[:200]
    elif outcome == "clicked" and read.url:
        event["url"] = read.url[:2048]
    return [sent, event]


def event_id(platform: str, key: str) -> str:
    """`<platform>:<key>`, or the key's SHA-256 when that would pass the event id's length."""
    readable = f"{platform}:{key}"
    if len(readable) <= MAX_EVENT_ID:
        return readable
    return f"{platform}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
