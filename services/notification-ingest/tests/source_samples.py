"""Callbacks of the five platforms as their documents show them (written here from those
documents, with our own ids), and each platform's signing, done the way its document says, so the
tests sign in the platform's place.

- Twilio: twilio.com/docs/messaging/guides/track-outbound-message-status,
  twilio.com/docs/usage/webhooks/webhooks-security
- Knock: docs.knock.app/developer-tools/outbound-webhooks (and its event-types page)
- Customer.io: docs.customer.io/api/webhooks (Reporting Webhooks)
- Braze: braze.com/docs/.../braze_currents/setting_up_currents/custom_http_connector and the
  Currents message engagement events glossary
- Sendbird: sendbird.com/docs/business-messaging/guide/v2/settings/webhooks
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

PUBLIC_URL = "https://insights.example.com"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
KNOCK_SECRET = "knock-signing-secret"
CIO_KEY = "cio-webhook-signing-key"
BRAZE_TOKEN = "braze-current-bearer-token"
SENDBIRD_TOKEN = "sendbird-master-api-token"


# Twilio ----------------------------------------------------------------------------------------


def twilio_status(
    status: str, *, sid: str = "SM0123456789abcdef0123456789abcdef", **extra: str
) -> dict[str, str]:
    """The parameters of a message status callback, as the tracking guide lists them."""
    return {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "ApiVersion": "2010-04-01",
        "From": "+15017250604",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+14155550171",
        **extra,
    }


def twilio_sign(
    url: str, body: bytes, token: str = TWILIO_TOKEN, *, algorithm: str = "sha1"
) -> str:
    params = sorted(parse_qsl(body.decode(), keep_blank_values=True))
    signed = url + "".join(name + value for name, value in params)
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), algorithm).digest()).decode()


def twilio_request(
    params: dict[str, str], *, path: str, query: str = "user_id=alex", token: str = TWILIO_TOKEN
) -> tuple[bytes, dict[str, str], str]:
    """(body, headers, path and query) of a signed status callback to PUBLIC_URL + path."""
    body = urlencode(params).encode()
    target = f"{path}?{query}" if query else path
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_sign(PUBLIC_URL + target, body, token),
    }
    return body, headers, target


# Knock -----------------------------------------------------------------------------------------


def knock_message(
    kind: str, *, message_id: str = "2FVHPWxRqNuXQ9krvNP5A6Z4qXe", at: str, **event_data: Any
) -> dict[str, Any]:
    """A message webhook: the base shape, with the message as data."""
    payload: dict[str, Any] = {
        "__typename": "WebhookEvent",
        "created_at": at,
        "type": kind,
        "data": {
            "__typename": "Message",
            "id": message_id,
            "channel_id": "3b9e4d6a-8f1c-4e2a-9d7b-1c2e3f4a5b6c",
            "recipient": "alex",
            "workflow": "order-shipped",
            "tenant": None,
            "status": kind.removeprefix("message."),
            "engagement_statuses": [],
            "inserted_at": at,
            "updated_at": at,
            "source": {"__typename": "NotificationSource", "key": "order-shipped"},
        },
    }
    if event_data:
        payload["event_data"] = event_data
    return payload


def knock_sign(body: bytes, *, at_ms: int, secret: str = KNOCK_SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{at_ms}.".encode() + body, hashlib.sha256).digest()
    return f"t={at_ms},s={base64.b64encode(digest).decode()}"


# Customer.io -----------------------------------------------------------------------------------


def cio_event(metric: str, *, event_id: str, at: int, **data: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "object_type": "email",
        "metric": metric,
        "timestamp": at,
        "data": {
            "customer_id": "alex",
            "identifiers": {"id": "alex", "email": "alex@example.com", "cio_id": "a1b2c3"},
            "email_address": "alex@example.com",
            "delivery_id": "RPILAgABcRhIBqSp7kiPekGBIeVh",
            "campaign_id": 23,
            "action_id": 96,
            "subject": "Your order shipped",
            "recipient": "alex@example.com",
            **data,
        },
    }


def cio_headers(body: bytes, *, at: int, key: str = CIO_KEY) -> dict[str, str]:
    signed = f"v0:{at}:".encode() + body
    return {
        "X-CIO-Timestamp": str(at),
        "X-CIO-Signature": hmac.new(key.encode(), signed, hashlib.sha256).hexdigest(),
    }


# Braze -----------------------------------------------------------------------------------------


def braze_event(kind: str, *, event_id: str, at: int, **properties: Any) -> dict[str, Any]:
    return {
        "event_type": f"users.messages.{kind}",
        "id": event_id,
        "time": at,
        "user": {
            "user_id": "5f8d0b1e2c3a4b5c6d7e8f90",
            "external_user_id": "alex",
            "timezone": "America/Los_Angeles",
        },
        "properties": {
            "campaign_id": "8a3b0c1d-campaign",
            "campaign_name": "Order shipped",
            "dispatch_id": "dispatch-0001",
            "to_phone_number": "+14155550171",
            "subscription_group_id": "sg-1",
            **properties,
        },
    }


# Sendbird --------------------------------------------------------------------------------------


def sendbird_send(*, message_id: int, receivers: list[str], at_ms: int) -> dict[str, Any]:
    return {
        "category": "notification:send_realtime",
        "app_id": "0A1B2C3D-sendbird-app",
        "created_at": at_ms,
        "message_id": message_id,
        "receiver_ids": receivers,
        "template": {"key": "order-shipped", "variables": {"order": "A-1"}},
        "channel_url": "notification_12345_feed",
    }


def sendbird_sign(body: bytes, token: str = SENDBIRD_TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def json_body(payload: Any) -> bytes:
    return orjson.dumps(payload)
