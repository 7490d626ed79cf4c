"""Braze Currents to a custom HTTP connector: `{"events": [event, ...]}` (up to 100 by default),
each `{"event_type": "users.messages.<channel>.<Action>", "id", "time", "user": {...},
"properties": {...}}`, authenticated by `Authorization: Bearer <token>` the Current is given.

Source documents: braze.com/docs/user_guide/data/distribution/braze_currents/setting_up_currents/
custom_http_connector (batches, bearer token) and the Currents message engagement events glossary
(the events, `dispatch_id`, `error`, `provider_error_code`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from insights_common.signatures import BearerToken, MalformedSignature
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody
from notification_ingest.domain.sources import smtp
from notification_ingest.domain.sources.model import (
    NOT_SHOWN,
    REPORTED,
    Callback,
    Platform,
    PlatformTable,
    Read,
    SourceRequest,
    Unreadable,
    json_object,
    mapping,
    text,
)

PREFIX = "users.messages."
MAX_EVENTS = 1000
SHAPE = '{"events": [{"event_type": "users.messages.<channel>.<Action>", ...}, ...]}'

TABLE = PlatformTable(
    name="braze",
    title="Braze",
    # Keyed by the action, the last part of the event type; the channel is the part before it.
    statuses={
        "Send": "sent",
        "Delivery": "delivered",
        "Read": "read",
        "Open": "read",
        "Impression": "read",
        "Click": "clicked",
        "Bounce": "failed",
        "SoftBounce": "failed",
        "DeliveryFailure": "failed",
        "Rejection": "failed",
        "Abort": "failed",
        "MarkAsSpam": REPORTED,
        "Unsubscribe": REPORTED,
        "Delay": REPORTED,
        "InboundReceive": NOT_SHOWN,
    },
    failures=smtp.REPLIES,
    failure_source=smtp.SOURCE,
    failures_for=frozenset({"email"}),
    channels={
        "sms": "sms",
        "whatsapp": "whatsapp",
        "email": "email",
        "pushnotification": "push",
        "inappmessage": "in_app",
        "contentcard": "in_app",
    },
    no_template="(no Braze campaign or Canvas named)",
)


def credential(request: SourceRequest) -> BearerToken:
    header = request.header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MalformedSignature("Send 'Authorization: Bearer <the token set on the Current>'.")
    return BearerToken(token=token.strip())


def read(body: bytes, request: SourceRequest) -> list[Read]:
    events = json_object(body, platform="Braze", shape=SHAPE).get("events")
    if not isinstance(events, list) or not events:
        raise MalformedBody(f"A Braze Currents batch is {SHAPE}, with at least one event.")
    if len(events) > MAX_EVENTS:
        raise BatchTooLarge(f"The batch has {len(events):,} events; at most {MAX_EVENTS:,}.")
    return [_event(item, request) for item in events]


def _event(item: object, request: SourceRequest) -> Read:
    event = mapping(item)
    kind = text(event.get("event_type")) or ""
    # Older exports put the properties beside the event's own fields.
    props = {**event, **mapping(event.get("properties"))}
    user = {**event, **mapping(event.get("user"))}
    channel, _, action = kind.removeprefix(PREFIX).rpartition(".")
    event_id = text(event.get("id"))
    dispatch = text(props.get("dispatch_id")) or text(props.get("send_id"))
    external = text(user.get("external_user_id"))
    if not kind.startswith(PREFIX) or event_id is None:
        return Unreadable(f"not a Braze message engagement event with an id: '{kind}'")
    if dispatch is None:
        return Unreadable(f"the {kind} event {event_id} has no dispatch_id")
    named, hint = request.user(
        event,
        default=external,
        hint="Braze sent no external_user_id, and no imported user has the number it went to:"
        " set an external id on the user in Braze, or import the user.",
    )
    stamp = event.get("time")
    error = text(props.get("error")) or text(props.get("bounce_reason"))
    code = text(props.get("provider_error_code")) or smtp.reply_code(error)
    return Callback(
        status=action,
        # A dispatch is one send to many users: the message is the dispatch to this user.
        message_id=f"{dispatch}:{external or text(user.get('user_id')) or ''}"[:128],
        user_id=named,
        occurred_at=(
            datetime.fromtimestamp(stamp, UTC)
            if isinstance(stamp, int | float) and 0 < stamp < 10**11
            else request.received_at
        ),
        dedup_key=event_id,
        channel=channel,
        template=text(props.get("campaign_name"))
        or text(props.get("canvas_name"))
        or text(props.get("campaign_id"))
        or text(props.get("canvas_id")),
        code=code,
        reason=error,
        url=text(props.get("url")) or text(props.get("link_url")),
        phone=text(props.get("to_phone_number")),
        user_hint=hint,
    )


PLATFORM = Platform(table=TABLE, credential=credential, read=read, credential_name="bearer token")
