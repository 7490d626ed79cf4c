"""Knock outbound webhooks: `{"type": "message.<status>", "created_at", "data": <message>,
"event_data"?}`, signed with `x-knock-signature: t=<unix ms>,s=<base64 HMAC-SHA256 of
"<t>.<raw body>">` with the webhook's signing secret.

Source documents: docs.knock.app/developer-tools/outbound-webhooks (payload, headers, signing),
docs.knock.app/developer-tools/outbound-webhooks/event-types (the message events and their
event_data), docs.knock.app/send-and-manage-data/messages (the message's fields and statuses).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from urllib.parse import parse_qs

from insights_common.signatures import MalformedSignature, Signature
from notification_ingest.domain.errors import MalformedBody
from notification_ingest.domain.sources.model import (
    REPORTED,
    Callback,
    Platform,
    PlatformTable,
    Read,
    SourceRequest,
    json_object,
    mapping,
    text,
)

SIGNATURE_HEADER = "x-knock-signature"
CHANNEL_PARAMETER = "channel"
SHAPE = 'one JSON object {"type": "message.<status>", "created_at": ..., "data": <message>}'

TABLE = PlatformTable(
    name="knock",
    title="Knock",
    statuses={
        "message.sent": "sent",
        "message.delivered": "delivered",
        "message.delivery_attempted": REPORTED,
        "message.undelivered": "failed",
        "message.bounced": "failed",
        "message.not_sent": "failed",
        "message.seen": "delivered",
        "message.read": "read",
        "message.unread": REPORTED,
        "message.unseen": REPORTED,
        "message.archived": REPORTED,
        "message.unarchived": REPORTED,
        "message.interacted": "clicked",
        "message.link_clicked": "clicked",
    },
    channels={c: c for c in ("in_app", "push", "sms", "whatsapp", "email")}
    | {"in_app_feed": "in_app", "chat": "in_app"},
    default_channel="in_app",
    no_template="(no Knock workflow named)",
)


def credential(request: SourceRequest) -> Signature:
    header = request.header(SIGNATURE_HEADER)
    if not header:
        raise MalformedSignature(f"Missing header {SIGNATURE_HEADER}.")
    parts = dict(part.strip().partition("=")[::2] for part in header.split(",")[:8])
    stamp, signed = parts.get("t", ""), parts.get("s", "")
    if not stamp.isdigit() or len(stamp) > 15 or not signed:
        raise MalformedSignature(
            f"{SIGNATURE_HEADER} must be 't=<unix milliseconds>,s=<base64 HMAC-SHA256>'."
        )
    try:
        digest = base64.b64decode(signed, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedSignature(f"The s= of {SIGNATURE_HEADER} is not base64.") from exc
    prefix = f"{stamp}.".encode()
    return Signature(
        digests=(digest,),
        timestamp=int(stamp) // 1000,
        frame=lambda body: prefix + body,
    )


def read(body: bytes, request: SourceRequest) -> list[Read]:
    payload = json_object(body, platform="Knock", shape=SHAPE)
    kind = text(payload.get("type"))
    message = mapping(payload.get("data"))
    message_id = text(message.get("id"))
    if kind is None or message_id is None:
        raise MalformedBody(f"A Knock message webhook has a type and data.id; send {SHAPE}.")
    recipient = message.get("recipient")
    user, hint = request.user(
        payload,
        default=text(mapping(recipient).get("id"))
        if isinstance(recipient, dict)
        else text(recipient),
        hint="Knock named no recipient user id.",
    )
    details = mapping(payload.get("event_data"))
    when = _instant(payload.get("created_at")) or _instant(message.get("updated_at"))
    channel = parse_qs(request.query).get(CHANNEL_PARAMETER, [None])[0]
    source = mapping(message.get("source"))
    return [
        Callback(
            status=kind,
            message_id=message_id,
            user_id=user,
            occurred_at=when or request.received_at,
            dedup_key=f"{kind}:{message_id}:{text(payload.get('created_at')) or ''}",
            channel=channel,
            template=text(message.get("workflow")) or text(source.get("key")),
            code=text(details.get("failure_reason")),
            reason=text(details.get("failure_details")),
            url=text(details.get("url")),
            user_hint=hint,
        )
    ]


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


PLATFORM = Platform(table=TABLE, credential=credential, read=read, credential_name="signing secret")
