"""Documents of the OpenSearch store, built with the pure domain folds.

A message document keeps the raw events of its message (not indexed) beside the fields folded
from them, so merging new events is: union by event_id, fold again. A user document keeps the
raw facts of its user.upserted events and the span of its messages' activity. A template
document keeps the best-origin description of one version. Every builder is a pure function of
(stored document, new input), deterministic whatever the order the inputs came in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from insights_contracts import MessageEvent
from insights_contracts.events import NotificationEvent
from insights_query.domain.messages import MessageProjection, project_message
from insights_query.domain.search import nickname_tokens, phone_digits
from insights_query.domain.templates import TemplateVersion
from insights_query.domain.time import from_ts_key, ts_key
from insights_query.domain.users import ActivitySpan, UserFact, UserProfile, project_user

Doc = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_message_event: TypeAdapter[MessageEvent] = TypeAdapter(NotificationEvent)


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


StoredEvents = dict[str, tuple[MessageEvent, Doc]]
"""A message's events by event_id: each as a model and as the JSON its document keeps."""


def stored_events(doc: Mapping[str, Any] | None) -> StoredEvents:
    if doc is None:
        return {}
    return {raw["event_id"]: (_message_event.validate_python(raw), raw) for raw in doc["events"]}


def stored_span(doc: Mapping[str, Any]) -> ActivitySpan | None:
    """The activity span a message document was folded with; None while it is not visible."""
    if not doc["visible"]:
        return None
    return ActivitySpan(from_micros(doc["first_event_us"]), from_micros(doc["last_event_us"]))


def message_doc(
    app_id: str, message_id: str, stored: StoredEvents, new: Iterable[MessageEvent]
) -> tuple[Doc, MessageProjection | None] | None:
    """The document of a message from its stored and new events; None when nothing is new.

    Earlier copies of an event_id win; a stored event keeps the JSON it was stored with.
    """
    unique = dict(stored)
    for event in new:
        if event.event_id not in unique:
            unique[event.event_id] = (event, event.model_dump(mode="json"))
    if len(unique) == len(stored):
        return None
    events = [unique[event_id][1] for event_id in sorted(unique)]
    doc: Doc = {
        "app_id": app_id,
        "message_id": message_id,
        "visible": False,
        "events": events,
    }
    projection = project_message(event for event, _ in unique.values())
    if projection is None:
        # Not shown (reads filter on `visible`), but findable by its user: erasing them finds
        # the events they were named in before the message's `sent` arrived.
        doc["user_id"] = events[0]["user_id"]
        return doc, None
    detail = projection.detail
    doc |= {
        "visible": True,
        "detail": detail.model_dump(mode="json"),
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
    return doc, projection


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


def facts_of(doc: Mapping[str, Any] | None) -> list[UserFact]:
    """The user.upserted facts a user document keeps."""
    return [_fact(raw) for raw in (doc or {}).get("facts", [])]


def _span(raw: Mapping[str, Any] | None) -> ActivitySpan | None:
    if raw is None:
        return None
    return ActivitySpan(first=from_ts_key(raw["first"]), last=from_ts_key(raw["last"]))


def widen(spans: Iterable[ActivitySpan | None]) -> ActivitySpan | None:
    """The smallest span holding every given one.

    A message's activity only grows as its events arrive, so widening by every partial span
    seen gives the span of the complete message whatever the order.
    """
    known = [span for span in spans if span is not None]
    if not known:
        return None
    return ActivitySpan(
        first=min(span.first for span in known), last=max(span.last for span in known)
    )


def user_doc(
    app_id: str,
    user_id: str,
    stored: Mapping[str, Any] | None,
    *,
    facts: Iterable[UserFact],
    spans: Iterable[ActivitySpan],
) -> Doc | None:
    """The user's document with `facts` and `spans` folded in (a copy of `stored` when they add
    nothing to it), or None when nothing is known of the user."""
    stored_facts = [_fact(raw) for raw in (stored or {}).get("facts", [])]
    unique: dict[str, UserFact] = {fact.event_id: fact for fact in stored_facts}
    for fact in facts:
        unique.setdefault(fact.event_id, fact)
    stored_span = _span((stored or {}).get("span"))
    span = widen([stored_span, *spans])
    unchanged = len(unique) == len(stored_facts) and span == stored_span
    if stored is not None and unchanged and (unique or span is not None):
        return dict(stored)
    profile = project_user(user_id, unique.values(), span)
    if profile is None:
        return None
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
        "facts": [_fact_doc(unique[event_id]) for event_id in sorted(unique)],
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
