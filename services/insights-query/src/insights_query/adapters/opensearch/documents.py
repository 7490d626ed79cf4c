"""Documents of the OpenSearch store: what the fold (`domain.projection`) reads and writes.

A message document keeps the raw events of its message (not indexed) beside the fields folded
from them. A user document keeps the raw facts of its user.upserted events and the span of its
messages' activity. A template document keeps the best-origin description of one version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter

from insights_contracts import MessageEvent
from insights_contracts.events import NotificationEvent
from insights_query.domain.messages import MessageProjection
from insights_query.domain.projection import StoredMessage, StoredUser
from insights_query.domain.search import nickname_tokens, phone_digits
from insights_query.domain.templates import TemplateVersion
from insights_query.domain.time import from_ts_key, ts_key
from insights_query.domain.users import ActivitySpan, UserFact, UserProfile

Doc = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_message_events: TypeAdapter[list[MessageEvent]] = TypeAdapter(list[NotificationEvent])
K = TypeVar("K")


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: float) -> datetime:
    # Aggregations answer doubles; microseconds up to year 2255 fit a double's 53 bits exactly.
    return _EPOCH + timedelta(microseconds=round(value))


_MAX_ID_BYTES = 512


def message_key(app_id: str, message_id: str) -> str:
    key = f"{app_id}:{message_id}"
    if len(key.encode()) <= _MAX_ID_BYTES:
        return key
    # A message id of 128 multibyte characters can exceed OpenSearch's 512-byte _id.
    return f"{app_id}:sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"


def user_key(app_id: str, user_id: str) -> str:
    return f"{app_id}:{user_id}"


def template_key(app_id: str, key: str, version: int) -> str:
    return f"{app_id}:{key}:{version}"


def split_key(key: str) -> tuple[str, str]:
    """(app_id, user_id) of a user key: app ids hold no ':'."""
    app_id, _, rest = key.partition(":")
    return app_id, rest


# -- messages -----------------------------------------------------------------------------


def stored_messages(docs: Mapping[K, Mapping[str, Any]]) -> dict[K, StoredMessage]:
    """What each message document holds, for the fold."""
    # Every document's events in one call into pydantic-core, not one an event.
    decoded = iter(
        _message_events.validate_python([raw for doc in docs.values() for raw in doc["events"]])
    )
    found: dict[K, StoredMessage] = {}
    for key, doc in docs.items():
        events = {raw["event_id"]: next(decoded) for raw in doc["events"]}
        if not doc["visible"]:
            found[key] = StoredMessage(events, None, None)
            continue
        span = ActivitySpan(from_micros(doc["first_event_us"]), from_micros(doc["last_event_us"]))
        found[key] = StoredMessage(events, doc["user_id"], span)
    return found


def message_doc(
    app_id: str,
    message_id: str,
    stored: Mapping[str, Any] | None,
    added: Iterable[MessageEvent],
    projection: MessageProjection | None,
) -> Doc:
    """The document of a message: its stored events (each keeps the JSON it was stored with)
    and the added ones, and the fields of its projection once it is visible.

    What the fold made goes in as pydantic-core's JSON (`orjson.Fragment`), not as Python
    objects that orjson would encode a second time."""
    raw: dict[str, tuple[str, Any]] = {
        event["event_id"]: (event["user_id"], event) for event in (stored or {}).get("events", [])
    }
    raw |= {
        event.event_id: (event.user_id, orjson.Fragment(event.model_dump_json())) for event in added
    }
    ordered = sorted(raw)
    doc: Doc = {
        "app_id": app_id,
        "message_id": message_id,
        "visible": False,
        "events": [raw[event_id][1] for event_id in ordered],
    }
    if projection is None:
        # Not shown (reads filter on `visible`), but findable by its user: erasing them finds
        # the events they were named in before the message's `sent` arrived.
        doc["user_id"] = raw[ordered[0]][0]
        return doc
    detail = projection.detail
    return doc | {
        "visible": True,
        "detail": orjson.Fragment(detail.model_dump_json()),
        "user_id": detail.user_id,
        "channel": detail.channel,
        "status": detail.status,
        "template_key": detail.template.key,
        "template_version": detail.template.version,
        "delivered": int(projection.delivered),
        "read": int(projection.read),
        "clicked": int(projection.clicked),
        "failed": int(projection.failed),
        "responded": int(projection.responded),
        "sent_us": micros(detail.sent_at),
        "sent_day": ts_key(detail.sent_at)[:10],
        "engaged_us": micros(projection.last_engaged_at) if projection.last_engaged_at else None,
        "first_event_us": micros(projection.first_event_at),
        "last_event_us": micros(projection.last_event_at),
    }


# -- users --------------------------------------------------------------------------------


def _fact_doc(fact: UserFact) -> Doc:
    return {
        "event_id": fact.event_id,
        "occurred_at": ts_key(fact.occurred_at),
        "phone_number": fact.phone_number,
        "nickname": fact.nickname,
        "source": fact.source,
    }


def _fact(raw: Mapping[str, Any]) -> UserFact:
    return UserFact(
        event_id=raw["event_id"],
        occurred_at=from_ts_key(raw["occurred_at"]),
        phone_number=raw["phone_number"],
        nickname=raw["nickname"],
        source=raw["source"],
    )


def stored_user(doc: Mapping[str, Any]) -> StoredUser:
    """What a user document holds, for the fold."""
    facts = {raw["event_id"]: _fact(raw) for raw in doc.get("facts", [])}
    span = doc.get("span")
    return StoredUser(
        facts=facts,
        span=ActivitySpan(from_ts_key(span["first"]), from_ts_key(span["last"])) if span else None,
        profile=profile_of(doc),
    )


def user_doc(
    app_id: str,
    user_id: str,
    profile: UserProfile,
    facts: Iterable[UserFact],
    span: ActivitySpan | None,
) -> Doc:
    return {
        "app_id": app_id,
        "user_id": user_id,
        "user_id_lc": user_id.lower(),
        "nickname": profile.nickname,
        "name_tokens": sorted(nickname_tokens(profile.nickname)),
        "phone_number": profile.phone_number,
        "phone_digits": phone_digits(profile.phone_number),
        "created_at": ts_key(profile.created_at),
        "updated_at": ts_key(profile.updated_at),
        "last_activity_at": ts_key(profile.last_activity_at),
        "activity_us": micros(profile.last_activity_at),
        "imports": list(profile.imports),
        "facts": [_fact_doc(fact) for fact in sorted(facts, key=lambda f: f.event_id)],
        "span": {"first": ts_key(span.first), "last": ts_key(span.last)} if span else None,
    }


def profile_of(doc: Mapping[str, Any]) -> UserProfile:
    return UserProfile(
        user_id=doc["user_id"],
        nickname=doc["nickname"],
        phone_number=doc["phone_number"],
        created_at=from_ts_key(doc["created_at"]),
        updated_at=from_ts_key(doc["updated_at"]),
        last_activity_at=from_ts_key(doc["last_activity_at"]),
        imports=tuple(doc["imports"]),
    )


PROFILE_FIELDS = [
    "user_id",
    "nickname",
    "phone_number",
    "created_at",
    "updated_at",
    "last_activity_at",
    "imports",
]


# -- templates ----------------------------------------------------------------------------


def template_doc(version: TemplateVersion) -> tuple[str, Doc]:
    """The document of a template version, keyed by its id; `origin` orders its sources
    (`insights_query.domain.templates`)."""
    doc: Doc = {
        "app_id": version.app_id,
        "key": version.key,
        "version": version.version,
        "name": version.name,
        "channels": version.channels,
        "variable_schema": version.variable_schema,
        "origin": version.origin,
    }
    return template_key(version.app_id, version.key, version.version), doc
