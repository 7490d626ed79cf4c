"""Customer.io reporting webhooks: one JSON object per event, `{"event_id", "object_type",
"metric", "timestamp", "data": {"customer_id", "identifiers", "delivery_id", ...}}`, signed with
X-CIO-Signature, the hex HMAC-SHA256 of "v0:<X-CIO-Timestamp>:<raw body>" with the webhook
signing key.

Source documents: docs.customer.io/api/webhooks (Reporting Webhooks: events, fields, signature),
docs.customer.io/journeys/webhooks (setting one up).
"""

from __future__ import annotations

from datetime import UTC, datetime

from insights_common.signatures import MalformedSignature, Signature
from notification_ingest.domain.errors import MalformedBody
from notification_ingest.domain.sources import smtp
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

SIGNATURE_HEADER = "X-CIO-Signature"
TIMESTAMP_HEADER = "X-CIO-Timestamp"
SHAPE = 'one JSON object {"event_id", "object_type", "metric", "timestamp", "data": {...}}'

TABLE = PlatformTable(
    name="customerio",
    title="Customer.io",
    statuses={
        "drafted": REPORTED,
        "attempted": REPORTED,
        "sent": "sent",
        "delivered": "delivered",
        "opened": "read",
        "clicked": "clicked",
        "converted": REPORTED,
        "unsubscribed": REPORTED,
        "spammed": REPORTED,
        "bounced": "failed",
        "dropped": "failed",
        "failed": "failed",
        "undeliverable": "failed",
        "suppressed": "failed",
    },
    failures=smtp.REPLIES,
    failure_source=smtp.SOURCE,
    failures_for=frozenset({"email"}),
    channels={"email": "email", "push": "push", "sms": "sms", "in_app": "in_app"},
    no_template="(no Customer.io campaign named)",
)


def credential(request: SourceRequest) -> Signature:
    signature = request.header(SIGNATURE_HEADER)
    stamp = request.header(TIMESTAMP_HEADER)
    if not signature or not stamp:
        raise MalformedSignature(f"Send both {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}.")
    if not stamp.isdigit() or len(stamp) > 12:
        raise MalformedSignature(f"{TIMESTAMP_HEADER} must be unix seconds.")
    try:
        digest = bytes.fromhex(signature.strip())
    except ValueError as exc:
        raise MalformedSignature(f"{SIGNATURE_HEADER} must be hex HMAC-SHA256.") from exc
    prefix = f"v0:{stamp}:".encode()
    return Signature(digests=(digest,), timestamp=int(stamp), frame=lambda body: prefix + body)


def read(body: bytes, request: SourceRequest) -> list[Read]:
    payload = json_object(body, platform="Customer.io", shape=SHAPE)
    data = mapping(payload.get("data"))
    metric = text(payload.get("metric"))
    event = text(payload.get("event_id"))
    delivery = text(data.get("delivery_id"))
    if metric is None or event is None or delivery is None:
        raise MalformedBody(
            "A Customer.io reporting webhook has metric, event_id and data.delivery_id;"
            f" send {SHAPE}."
        )
    stamp = payload.get("timestamp")
    when = (
        datetime.fromtimestamp(stamp, UTC)
        if isinstance(stamp, int) and 0 < stamp < 10**11
        else request.received_at
    )
    user, hint = request.user(
        payload,
        default=text(data.get("customer_id")) or text(mapping(data.get("identifiers")).get("id")),
        hint="Customer.io named no customer_id: give people an id in Customer.io.",
    )
    failure = text(data.get("failure_message"))
    template = next(
        (
            f"{name.removesuffix('_id')}-{value}"
            for name in ("campaign_id", "broadcast_id", "newsletter_id", "transactional_message_id")
            if (value := text(data.get(name)))
        ),
        None,
    )
    return [
        Callback(
            status=metric,
            message_id=delivery,
            user_id=user,
            occurred_at=when,
            dedup_key=event,
            channel=text(payload.get("object_type")),
            template=template,
            code=smtp.reply_code(failure),
            reason=failure,
            url=text(data.get("href")),
            user_hint=hint,
        )
    ]


PLATFORM = Platform(table=TABLE, credential=credential, read=read, credential_name="signing key")
