"""Twilio message status callbacks (form-encoded), signed with X-Twilio-Signature.

Source documents: twilio.com/docs/messaging/guides/track-outbound-message-status (the callback's
parameters and MessageStatus values), twilio.com/docs/usage/webhooks/webhooks-security (the
signature: base64 HMAC-SHA1, with the Auth Token, of the full URL Twilio called followed by each
POST parameter's name and value sorted by name; HMAC-SHA256 with a shared key when a Webhooks Rule
applies, announced by X-Twilio-Webhooks-Signature-Settings), twilio.com/docs/api/errors (codes).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, parse_qsl

from insights_common.signatures import MalformedSignature, Signature
from notification_ingest.domain.errors import MalformedBody
from notification_ingest.domain.sources.model import (
    REPORTED,
    Callback,
    Platform,
    PlatformTable,
    Read,
    SourceRequest,
)

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
USER_PARAMETER = "user_id"
MAX_PARAMETERS = 200

TABLE = PlatformTable(
    name="twilio",
    title="Twilio",
    statuses={
        "accepted": REPORTED,
        "scheduled": REPORTED,
        "queued": REPORTED,
        "sending": REPORTED,
        "sent": "sent",
        "delivered": "delivered",
        "read": "read",
        "undelivered": "failed",
        "failed": "failed",
        "canceled": "failed",
        "partially_delivered": "delivered",
    },
    failures={
        "30001": "Queue overflow: too many messages queued for the sender",
        "30002": "Account suspended",
        "30003": "Unreachable destination handset (switched off or out of coverage)",
        "30004": "Message blocked (the recipient blocked it, or the carrier did)",
        "30005": "Unknown destination handset (the number does not exist)",
        "30006": "Landline or unreachable carrier",
        "30007": "Message filtered by the carrier",
        "30008": "Unknown error from the carrier",
        "30034": "Message from an unregistered US A2P 10DLC number",
        "21610": "The recipient replied STOP: sending to them is blocked",
        "63016": "WhatsApp: a free-form message outside the 24-hour window (use a template)",
        "63024": "WhatsApp: the recipient is not a valid WhatsApp user",
    },
    failure_source="Twilio error dictionary, twilio.com/docs/api/errors",
    channels={"sms": "sms", "whatsapp": "whatsapp"},
    no_template="(Twilio callbacks name no template)",
)


def credential(request: SourceRequest) -> Signature:
    header = request.header(SIGNATURE_HEADER)
    if not header:
        raise MalformedSignature(f"Missing header {SIGNATURE_HEADER}.")
    try:
        digest = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedSignature(f"{SIGNATURE_HEADER} is not base64.") from exc
    algorithm = "sha1"
    settings = request.header(SETTINGS_HEADER) or ""
    if "HMAC_SHA256" in settings.upper():
        algorithm = "sha256"
    if len(digest) != (32 if algorithm == "sha256" else 20):
        raise MalformedSignature(f"{SIGNATURE_HEADER} is not an HMAC-{algorithm.upper()} digest.")
    if not request.public_url:
        raise MalformedSignature(
            "Twilio signs the URL it called, and this server does not know its public URL: set"
            " PUBLIC_BASE_URL (e.g. https://insights.example.com)."
        )
    url = request.public_url.rstrip("/") + request.path
    if request.query:
        url += "?" + request.query

    def frame(body: bytes) -> bytes:
        pairs = sorted(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return (url + "".join(name + value for name, value in pairs)).encode()

    return Signature(digests=(digest,), frame=frame, algorithm=algorithm)


def read(body: bytes, request: SourceRequest) -> list[Read]:
    try:
        form = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_PARAMETERS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedBody(
            "The body is not a form (application/x-www-form-urlencoded) as Twilio posts its"
            f" status callbacks: {exc}."
        ) from exc

    def field(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values and values[0] else None

    sid = field("MessageSid") or field("SmsSid")
    status = field("MessageStatus") or field("SmsStatus")
    if sid is None or status is None:
        raise MalformedBody(
            "A Twilio status callback carries MessageSid and MessageStatus; this body has "
            f"{'neither' if sid is None and status is None else 'only one of them'}."
        )
    # WhatsApp reports a read as its own EventType, beside the last MessageStatus.
    if (field("EventType") or "").upper() == "READ":
        status = "read"
    address = field("To") or ""
    query = parse_qs(request.query)
    # A configured user field is a parameter of the form or of the StatusCallback URL (which wins).
    parameters = {name: values[0] for name, values in (form | query).items() if values}
    user, hint = request.user(
        parameters,
        default=query.get(USER_PARAMETER, [None])[0],
        hint=f"Twilio's callback names only the number {address or '(none)'}, which no"
        " imported user of the app has: import the user with that phone number, or"
        f" add ?{USER_PARAMETER}=<the user's id> to the message's StatusCallback URL.",
    )
    code = field("ErrorCode")
    done = field("RawDlrDoneDate") or ""
    return [
        Callback(
            status=status,
            message_id=sid,
            user_id=user,
            # Twilio's callbacks carry no time (RawDlrDoneDate is the carrier's, to the minute).
            occurred_at=request.received_at,
            dedup_key=f"{sid}:{status}:{code or ''}:{done}",
            channel="whatsapp" if address.startswith("whatsapp:") else "sms",
            code=code if code and code != "0" else None,
            phone=address.removeprefix("whatsapp:") or None,
            reason=field("ErrorMessage"),
            user_hint=hint,
        )
    ]


PLATFORM = Platform(table=TABLE, credential=credential, read=read, credential_name="Auth Token")
