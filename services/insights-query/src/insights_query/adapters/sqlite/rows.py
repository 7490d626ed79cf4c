"""Values to and from the store's rows: ids in chunks per app, timestamps, JSON columns."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from pydantic import TypeAdapter

from insights_contracts import Channel, ChannelContent, MessageEvent, VariableSpec
from insights_contracts.events import NotificationEvent
from insights_query.domain.stats import Counts
from insights_query.domain.time import from_ts_key
from insights_query.domain.users import UserProfile

T = TypeVar("T")

_CHUNK = 500
_AFTER_ALL = "\U0010ffff"

_message_event_list: TypeAdapter[list[MessageEvent]] = TypeAdapter(list[NotificationEvent])
_channels: TypeAdapter[dict[Channel, ChannelContent]] = TypeAdapter(dict[Channel, ChannelContent])
_variables: TypeAdapter[list[VariableSpec]] = TypeAdapter(list[VariableSpec])


def _chunks(items: Iterable[T], size: int = _CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _by_app(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for app_id, identifier in sorted(keys):
        grouped[app_id].append(identifier)
    return grouped


def _opt_ts(value: str | None) -> datetime | None:
    return from_ts_key(value) if value else None


@lru_cache(maxsize=1024)
def _imports_json(imports: tuple[str, ...]) -> str:
    # An import's users all name the same imports: encoding each list again took a tenth of
    # projecting them.
    return json.dumps(list(imports))


@lru_cache(maxsize=1024)
def _imports_of(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _profile(row: sqlite3.Row) -> UserProfile:
    return UserProfile(
        user_id=row["user_id"],
        nickname=row["nickname"],
        phone_number=row["phone_number"],
        created_at=from_ts_key(row["created_at"]),
        updated_at=from_ts_key(row["updated_at"]),
        last_activity_at=from_ts_key(row["last_activity_at"]),
        imports=_imports_of(row["imports"]),
    )


def _counts(row: sqlite3.Row) -> Counts:
    return Counts(
        sent=row["sent"],
        delivered=row["delivered"],
        read=row["read"],
        clicked=row["clicked"],
        failed=row["failed"],
        responded=row["responded"],
    )
