"""Sendbird Business Messaging notification webhooks, signed with x-sendbird-signature: the hex
HMAC-SHA256 of the raw body with the application's master API token.

Source documents: sendbird.com/docs/business-messaging/guide/v2/settings/webhooks and
docs.sendbird.com/docs/business-messaging/server-side/v2/webhooks (headers, signature, the
`notification:*` categories). Sendbird reports the send request of a notification (real-time or
batch), one per receiver; its template events say nothing of a message and are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from insights_common.signatures import MalformedSignature, Signature
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody
from notification_ingest.domain.sources.model import (
    NOT_SHOWN,
    Callback,
    Platform,
    PlatformTable,
    Read,
    SourceRequest,
    json_object,
    mapping,
    text,
)

SIGNATURE_HEADER = "x-sendbird-signature"
MAX_RECEIVERS = 1000
SHAPE = '{"category": "notification:<event>", ...}'

TABLE = PlatformTable(
    name="sendbird",
    title="Sendbird",
    statuses={
        "notification:send_realtime": "sent",
        "notification:send_batch": "sent",
        "notification:template_create": NOT_SHOWN,
        "notification:template_archive": NOT_SHOWN,
        "notification:template_unarchive": NOT_SHOWN,
        "notification:template_edit": NOT_SHOWN,
        "notification:template_approval_update": NOT_SHOWN,
    },
    channels={"in_app": "in_app"},
    default_channel="in_app",
    no_template="(no Sendbird template named)",
)


def credential(request: SourceRequest) -> Signature:
    header = request.header(SIGNATURE_HEADER)
    if not header:
        raise MalformedSignature(f"Missing header {SIGNATURE_HEADER}.")
    try:
        digest = bytes.fromhex(header.strip())
    except ValueError as exc:
        raise MalformedSignature(f"{SIGNATURE_HEADER} must be hex HMAC-SHA256.") from exc
    return Signature(digests=(digest,))


def read(body: bytes, request: SourceRequest) -> list[Read]:
    payload = json_object(body, platform="Sendbird", shape=SHAPE)
    category = text(payload.get("category"))
    if category is None:
        raise MalformedBody(f"A Sendbird webhook names its category; send {SHAPE}.")
    notification = {**payload, **mapping(payload.get("notification"))}
    message_id = text(notification.get("message_id")) or text(notification.get("request_id"))
    receivers = notification.get("receiver_ids") or notification.get("receivers") or []
    if not isinstance(receivers, list):
        raise MalformedBody("receiver_ids of a Sendbird notification is a list of user ids.")
    if len(receivers) > MAX_RECEIVERS:
        raise BatchTooLarge(f"The webhook names {len(receivers):,} receivers; at most 1,000.")
    if message_id is None or not receivers:
        # A template event, or a notification without receivers: one callback to be ignored.
        return [
            Callback(
                status=category,
                message_id=message_id or category,
                user_id=None,
                occurred_at=request.received_at,
                dedup_key=category,
            )
        ]
    stamp = notification.get("created_at")
    when = (
        datetime.fromtimestamp(stamp / 1000, UTC)
        if isinstance(stamp, int) and 0 < stamp < 10**14
        else request.received_at
    )
    template = mapping(notification.get("template"))
    reads: list[Read] = []
    for receiver in receivers:
        # A configured user field is read inside each receiver given as an object.
        user, hint = request.user(
            receiver,
            default=text(mapping(receiver).get("user_id"))
            if isinstance(receiver, dict)
            else text(receiver),
            hint="Sendbird named a receiver without a user id.",
        )
        reads.append(
            Callback(
                status=category,
                message_id=f"{message_id}:{user or ''}"[:128],
                user_id=user,
                occurred_at=when,
                dedup_key=f"{category}:{message_id}:{user or ''}",
                template=text(template.get("key")) or text(notification.get("template_key")),
                user_hint=hint,
            )
        )
    return reads


PLATFORM = Platform(
    table=TABLE, credential=credential, read=read, credential_name="master API token"
)
