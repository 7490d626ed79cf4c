"""The platforms' own callbacks through `SourceService`, on the real SQLite key store and dedup:
each platform's scheme (Twilio's published vector, our signing in each platform's place), a wrong
secret, a stale timestamp, a body edited after signing, a retried callback counted once, and the
status each table maps or ignores."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from ingest_support import RecordingBus
from source_samples import (
    BRAZE_TOKEN,
    CIO_KEY,
    KNOCK_SECRET,
    PUBLIC_URL,
    SENDBIRD_TOKEN,
    TWILIO_TOKEN,
    braze_event,
    cio_event,
    cio_headers,
    json_body,
    knock_message,
    knock_sign,
    sendbird_send,
    sendbird_sign,
    twilio_request,
    twilio_sign,
    twilio_status,
)

from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_contracts import NotificationFailed, NotificationSent, NotificationStatus
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.domain.directory import PhoneEntry
from notification_ingest.domain.errors import MalformedBody, Unauthenticated
from notification_ingest.domain.sources import twilio
from notification_ingest.domain.sources.model import SourceRequest
from notification_ingest.service import IngestService
from notification_ingest.source_service import SourceResult, SourceService, UnknownPlatform

pytestmark = pytest.mark.unit

# A fixed clock, injected: the verdicts do not depend on today.
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ISO = "2026-11-02T09:59:30Z"
PATH = "/api/v1/sources/{}/acme"


@pytest.fixture
async def sources(db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore) -> SourceService:
    for platform, secret in (
        ("twilio", TWILIO_TOKEN),
        ("knock", KNOCK_SECRET),
        ("customerio", CIO_KEY),
        ("braze", BRAZE_TOKEN),
        ("sendbird", SENDBIRD_TOKEN),
    ):
        await keys.set_source_secret("acme", platform, secret)
    ingest = IngestService(
        dedup=SqliteDedupStore(db), publisher=bus, secrets=keys, max_batch=1000, clock=lambda: NOW
    )
    phones = SqlitePhoneDirectory(db)
    await phones.record([PhoneEntry("acme", "kim", "+821012345678")])
    return SourceService(
        ingest=ingest,
        secrets=keys,
        phones=phones,
        pending=SqlitePendingCallbacks(db, clock=lambda: NOW),
        tolerance=timedelta(seconds=300),
        clock=lambda: NOW,
    )


async def post(
    sources: SourceService,
    platform: str,
    body: bytes,
    headers: dict[str, str],
    target: str = "",
    *,
    origin: str | None = PUBLIC_URL,
) -> SourceResult:
    path, _, query = (target or PATH.format(platform)).partition("?")
    sender = await sources.authenticate(
        platform=platform,
        app_id="acme",
        headers={name.lower(): value for name, value in headers.items()},
        path=path,
        query=query,
        public_origin=origin,
    )
    return await sources.take(sender, body)


def twilio_post(status: str, **extra: str) -> tuple[bytes, dict[str, str], str]:
    return twilio_request(twilio_status(status, **extra), path=PATH.format("twilio"))


# Twilio ----------------------------------------------------------------------------------------


def test_twilio_scheme_matches_the_vector_twilio_publishes() -> None:
    """twilio.com/docs/usage/webhooks/webhooks-security: token 12345, this URL and these
    parameters sign to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    request = SourceRequest(
        headers={"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="},
        path="/myapp.php",
        query="foo=1&bar=2",
        public_url="https://mycompany.com",
        received_at=NOW,
    )
    body = urlencode(params).encode()
    assert twilio.credential(request).matches(["12345"], body)
    assert not twilio.credential(request).matches(["12346"], body)
    assert not twilio.credential(request).matches(["12345"], body.replace(b"1234", b"9999", 1))


def test_twilio_sha256_variant_is_taken_when_the_settings_header_announces_it() -> None:
    body = urlencode(twilio_status("sent")).encode()
    url = PUBLIC_URL + "/p"
    request = SourceRequest(
        headers={
            "x-twilio-signature": twilio_sign(url, body, "shared-key", algorithm="sha256"),
            "x-twilio-webhooks-signature-settings": "key=KS123,algorithm=HMAC_SHA256",
        },
        path="/p",
        query="",
        public_url=PUBLIC_URL,
        received_at=NOW,
    )
    assert twilio.credential(request).matches(["shared-key"], body)


async def test_twilio_sent_delivered_read_make_one_message_and_a_retry_counts_once(
    sources: SourceService, bus: RecordingBus
) -> None:
    first = await post(sources, "twilio", *twilio_post("sent"))
    assert (first.accepted, first.duplicates) == (1, 0)
    delivered = twilio_post("delivered", RawDlrDoneDate="2611021000")
    second = await post(sources, "twilio", *delivered)
    assert (second.accepted, second.duplicates) == (1, 1)  # the sent is already there
    again = await post(sources, "twilio", *delivered)
    assert (again.accepted, again.duplicates) == (0, 2)
    read = await post(sources, "twilio", *twilio_post("read", EventType="READ"))
    assert read.accepted == 1
    kinds = [event.event_type for event in bus.received]
    assert kinds == ["notification.sent", "notification.delivered", "notification.read"]
    sent = bus.received[0]
    assert isinstance(sent, NotificationSent)
    assert (sent.user_id, sent.channel, sent.template.key) == ("alex", "sms", "twilio")
    assert {event.message_id for event in bus.received} == {"SM0123456789abcdef0123456789abcdef"}


async def test_twilio_failure_carries_the_code_and_the_dictionary_text(
    sources: SourceService, bus: RecordingBus
) -> None:
    await post(sources, "twilio", *twilio_post("undelivered", ErrorCode="30003"))
    failed = bus.received[-1]
    assert isinstance(failed, NotificationFailed)
    assert failed.code == "30003"
    assert failed.reason == ""
    assert failed.explanation is not None
    assert failed.explanation.startswith("Unreachable destination handset")
    assert failed.explained_by is not None and "twilio.com/docs/api/errors" in failed.explained_by


async def test_twilio_whatsapp_is_its_channel(sources: SourceService, bus: RecordingBus) -> None:
    await post(sources, "twilio", *twilio_post("sent", To="whatsapp:+14155550171"))
    sent = bus.received[0]
    assert isinstance(sent, NotificationSent)
    assert sent.channel == "whatsapp"


async def test_twilio_queued_is_on_the_timeline_in_twilios_word_and_sends_nothing(
    sources: SourceService, bus: RecordingBus
) -> None:
    result = await post(sources, "twilio", *twilio_post("queued"))
    assert (result.accepted, result.ignored) == (1, ())
    [status] = bus.received
    assert isinstance(status, NotificationStatus)
    assert (status.status, status.reported_by, status.user_id) == ("queued", "Twilio", "alex")
    again = await post(sources, "twilio", *twilio_post("queued"))
    assert (again.accepted, again.duplicates) == (0, 1)


async def test_twilio_naming_only_an_imported_number_is_that_users(
    sources: SourceService, bus: RecordingBus
) -> None:
    body, headers, target = twilio_request(
        twilio_status("delivered", To="+821012345678"), path=PATH.format("twilio"), query=""
    )
    result = await post(sources, "twilio", body, headers, target)
    assert (result.accepted, result.refused) == (2, ())
    assert {event.user_id for event in bus.received} == {"kim"}


async def test_a_callback_for_a_number_nobody_has_yet_is_taken_once_its_user_is_imported(
    sources: SourceService, bus: RecordingBus
) -> None:
    body, headers, target = twilio_request(
        twilio_status("undelivered", To="+14155550199", ErrorCode="30005"),
        path=PATH.format("twilio"),
        query="",
    )
    first = await post(sources, "twilio", body, headers, target)
    again = await post(sources, "twilio", body, headers, target)  # Twilio's retry: kept once
    assert first.accepted == again.accepted == 0
    assert "Kept" in first.refused[0].reason
    assert await sources.retake([PhoneEntry("acme", "sam", "+14155550123")]) == 0
    assert bus.received == []
    assert await sources.retake([PhoneEntry("acme", "sam", "+14155550199")]) == 2
    assert [(e.event_type, e.user_id) for e in bus.received] == [
        ("notification.sent", "sam"),
        ("notification.failed", "sam"),
    ]
    assert await sources.retake([PhoneEntry("acme", "sam", "+14155550199")]) == 0


async def test_twilio_without_a_user_is_refused_with_how_to_name_one(
    sources: SourceService, bus: RecordingBus
) -> None:
    body, headers, target = twilio_request(
        twilio_status("sent"), path=PATH.format("twilio"), query=""
    )
    result = await post(sources, "twilio", body, headers, target)
    assert result.accepted == 0
    assert "+14155550171" in result.refused[0].reason
    assert "?user_id=" in result.refused[0].reason
    assert "import the user" in result.refused[0].reason


async def test_twilio_signature_over_another_url_or_with_another_token_is_refused(
    sources: SourceService,
) -> None:
    body, headers, target = twilio_post("sent")
    with pytest.raises(Unauthenticated):
        await post(sources, "twilio", body, headers, target.replace("alex", "kim"))
    wrong = twilio_request(twilio_status("sent"), path=PATH.format("twilio"), token="nope")
    with pytest.raises(Unauthenticated, match="not signed by Twilio"):
        await post(sources, "twilio", *wrong)
    with pytest.raises(Unauthenticated):
        await post(sources, "twilio", body + b"&Extra=1", headers, target)


async def test_twilio_without_a_public_url_says_what_to_set(sources: SourceService) -> None:
    with pytest.raises(Unauthenticated, match="PUBLIC_BASE_URL"):
        await post(sources, "twilio", *twilio_post("sent"), origin=None)


async def test_a_body_that_is_not_a_twilio_callback_is_malformed(sources: SourceService) -> None:
    body = b"Hello=1"
    headers = {"X-Twilio-Signature": twilio_sign(PUBLIC_URL + PATH.format("twilio"), body)}
    with pytest.raises(MalformedBody, match="MessageSid and MessageStatus"):
        await post(sources, "twilio", body, headers)


# Knock -----------------------------------------------------------------------------------------


def knock_post(
    kind: str, *, at_ms: int = T * 1000, **event_data: str
) -> tuple[bytes, dict[str, str]]:
    body = json_body(knock_message(kind, at=ISO, **event_data))
    return body, {"x-knock-signature": knock_sign(body, at_ms=at_ms)}


async def test_knock_message_events_map_and_a_retry_counts_once(
    sources: SourceService, bus: RecordingBus
) -> None:
    for kind in ("message.sent", "message.delivered", "message.read", "message.link_clicked"):
        await post(sources, "knock", *knock_post(kind, url="https://shop.example/o/1"))
    again = await post(sources, "knock", *knock_post("message.read"))
    assert (again.accepted, again.duplicates) == (0, 2)
    kinds = [event.event_type for event in bus.received]
    assert kinds == [
        "notification.sent",
        "notification.delivered",
        "notification.read",
        "notification.clicked",
    ]
    sent = bus.received[0]
    assert isinstance(sent, NotificationSent)
    assert (sent.user_id, sent.channel, sent.template.key) == ("alex", "in_app", "order-shipped")
    assert sent.occurred_at == datetime(2026, 11, 2, 9, 59, 30, tzinfo=UTC)


async def test_knock_undelivered_keeps_the_failure_reason(
    sources: SourceService, bus: RecordingBus
) -> None:
    await post(
        sources,
        "knock",
        *knock_post("message.undelivered", failure_reason="invalid_token", failure_details="x"),
    )
    failed = bus.received[-1]
    assert isinstance(failed, NotificationFailed)
    assert (failed.code, failed.reason) == ("invalid_token", "x")


async def test_knock_stale_wrong_or_edited_signatures_are_refused(sources: SourceService) -> None:
    body, _ = knock_post("message.sent")
    stale = {"x-knock-signature": knock_sign(body, at_ms=(T - 301) * 1000)}
    with pytest.raises(Unauthenticated, match="301 s old"):
        await post(sources, "knock", body, stale)
    wrong = {"x-knock-signature": knock_sign(body, at_ms=T * 1000, secret="other")}
    with pytest.raises(Unauthenticated, match="not signed by Knock"):
        await post(sources, "knock", body, wrong)
    _, headers = knock_post("message.sent")
    with pytest.raises(Unauthenticated):
        await post(sources, "knock", body.replace(b"alex", b"kim1"), headers)
    with pytest.raises(Unauthenticated, match="t=<unix milliseconds>"):
        await post(sources, "knock", body, {"x-knock-signature": "v1=abc"})


async def test_knock_unknown_event_type_is_kept_on_the_timeline_with_its_word(
    sources: SourceService, bus: RecordingBus
) -> None:
    result = await post(sources, "knock", *knock_post("message.snoozed"))
    assert (result.accepted, result.ignored) == (1, ())
    [status] = bus.received
    assert isinstance(status, NotificationStatus)
    assert (status.status, status.reported_by) == ("message.snoozed", "Knock")


# Customer.io -----------------------------------------------------------------------------------


async def test_customerio_metrics_map_with_smtp_bounces_explained(
    sources: SourceService, bus: RecordingBus
) -> None:
    for metric, event_id, extra in (
        ("sent", "01E4C4C6P79C12J5A6KPE6XNFD", {}),
        ("opened", "01E4C4C6P79C12J5A6KPE6XNFE", {}),
        ("bounced", "01E4C4C6P79C12J5A6KPE6XNFF", {"failure_message": "550 5.1.1 no mailbox"}),
    ):
        body = json_body(cio_event(metric, event_id=event_id, at=T - 30, **extra))
        await post(sources, "customerio", body, cio_headers(body, at=T))
    kinds = [event.event_type for event in bus.received]
    assert kinds == ["notification.sent", "notification.read", "notification.failed"]
    sent, failed = bus.received[0], bus.received[-1]
    assert isinstance(sent, NotificationSent) and isinstance(failed, NotificationFailed)
    assert (sent.channel, sent.template.key) == ("email", "campaign-23")
    assert failed.code == "550"
    assert failed.reason == "550 5.1.1 no mailbox"
    assert failed.explanation is not None and failed.explained_by is not None
    assert "RFC 5321" in failed.explained_by


async def test_customerio_stale_or_wrong_key_is_refused(sources: SourceService) -> None:
    body = json_body(cio_event("sent", event_id="e1", at=T))
    with pytest.raises(Unauthenticated, match="old"):
        await post(sources, "customerio", body, cio_headers(body, at=T - 600))
    with pytest.raises(Unauthenticated):
        await post(sources, "customerio", body, cio_headers(body, at=T, key="other"))
    with pytest.raises(Unauthenticated, match="X-CIO-Timestamp"):
        await post(sources, "customerio", body, {"X-CIO-Signature": "00"})


# Braze -----------------------------------------------------------------------------------------


async def test_braze_batch_with_a_delivery_failure_shows_the_readable_reason(
    sources: SourceService, bus: RecordingBus
) -> None:
    batch = {
        "events": [
            braze_event("sms.Send", event_id="b-1", at=T - 60),
            braze_event("sms.Delivery", event_id="b-2", at=T - 50),
            braze_event(
                "sms.DeliveryFailure",
                event_id="b-3",
                at=T - 40,
                dispatch_id="dispatch-0002",
                error="Unreachable destination handset",
                provider_error_code="30003",
            ),
            braze_event("whatsapp.Read", event_id="b-4", at=T - 30, dispatch_id="dispatch-0003"),
            braze_event("sms.Unheard", event_id="b-5", at=T - 20),
        ]
    }
    body = json_body(batch)
    result = await post(sources, "braze", body, {"Authorization": f"Bearer {BRAZE_TOKEN}"})
    assert result.callbacks == 5
    assert result.ignored == ()
    unheard = next(e for e in bus.received if isinstance(e, NotificationStatus))
    assert (unheard.status, unheard.reported_by) == ("Unheard", "Braze")
    failed = next(e for e in bus.received if isinstance(e, NotificationFailed))
    assert (failed.code, failed.message_id) == ("30003", "dispatch-0002:alex")
    assert failed.reason == "Unreachable destination handset"
    again = await post(sources, "braze", body, {"Authorization": f"Bearer {BRAZE_TOKEN}"})
    assert again.accepted == 0
    channels = {e.channel for e in bus.received if isinstance(e, NotificationSent)}
    assert channels == {"sms", "whatsapp"}


async def test_braze_wrong_or_missing_token_is_refused(sources: SourceService) -> None:
    body = json_body({"events": [braze_event("sms.Send", event_id="b-1", at=T)]})
    with pytest.raises(Unauthenticated, match="not signed by Braze"):
        await post(sources, "braze", body, {"Authorization": "Bearer nope"})
    with pytest.raises(Unauthenticated, match="Bearer"):
        await post(sources, "braze", body, {})


async def test_braze_body_without_events_is_malformed(sources: SourceService) -> None:
    with pytest.raises(MalformedBody, match="events"):
        await post(sources, "braze", b'{"event": 1}', {"Authorization": f"Bearer {BRAZE_TOKEN}"})


# Sendbird --------------------------------------------------------------------------------------


async def test_sendbird_send_is_a_sent_message_per_receiver(
    sources: SourceService, bus: RecordingBus
) -> None:
    body = json_body(sendbird_send(message_id=4242, receivers=["alex", "kim"], at_ms=T * 1000))
    result = await post(sources, "sendbird", body, {"x-sendbird-signature": sendbird_sign(body)})
    assert (result.callbacks, result.accepted) == (2, 2)
    assert {(e.user_id, e.message_id) for e in bus.received} == {
        ("alex", "4242:alex"),
        ("kim", "4242:kim"),
    }
    template = json_body({"category": "notification:template_edit", "template": {"key": "x"}})
    edit = await post(
        sources, "sendbird", template, {"x-sendbird-signature": sendbird_sign(template)}
    )
    assert [i.status for i in edit.ignored] == ["notification:template_edit"]


async def test_sendbird_wrong_token_or_edited_body_is_refused(sources: SourceService) -> None:
    body = json_body(sendbird_send(message_id=1, receivers=["alex"], at_ms=T * 1000))
    with pytest.raises(Unauthenticated):
        await post(
            sources, "sendbird", body, {"x-sendbird-signature": sendbird_sign(body, "other")}
        )
    with pytest.raises(Unauthenticated):
        await post(
            sources,
            "sendbird",
            body.replace(b"alex", b"kim1"),
            {"x-sendbird-signature": sendbird_sign(body)},
        )


# Any platform ----------------------------------------------------------------------------------


async def test_an_unknown_platform_or_an_unconfigured_app_is_refused(
    sources: SourceService,
) -> None:
    with pytest.raises(UnknownPlatform, match="twilio, knock, customerio, braze, sendbird"):
        await sources.authenticate(
            platform="mailchimp", app_id="acme", headers={}, path="/", query="", public_origin=None
        )
    body = json_body(sendbird_send(message_id=1, receivers=["alex"], at_ms=T * 1000))
    with pytest.raises(Unauthenticated, match="not signed by Sendbird"):
        await sources.authenticate(
            platform="sendbird",
            app_id="nobody",
            headers={"x-sendbird-signature": sendbird_sign(body)},
            path="/",
            query="",
            public_origin=None,
        )


def test_base64_and_hex_garbage_are_malformed_signatures() -> None:
    request = SourceRequest(
        headers={"x-twilio-signature": base64.b64encode(b"short").decode() + "!"},
        path="/",
        query="",
        public_url=PUBLIC_URL,
        received_at=NOW,
    )
    with pytest.raises(ValueError, match="base64"):
        twilio.credential(request)


async def test_smtp_codes_explain_email_bounces_only(
    sources: SourceService, bus: RecordingBus
) -> None:
    batch = {
        "events": [
            braze_event("email.Bounce", event_id="e-1", at=T, bounce_reason="550 5.1.1 unknown"),
            braze_event(
                "sms.DeliveryFailure",
                event_id="s-1",
                at=T,
                dispatch_id="dispatch-0009",
                error="provider said 550",
                provider_error_code="550",
            ),
        ]
    }
    body = json_body(batch)
    await post(sources, "braze", body, {"Authorization": f"Bearer {BRAZE_TOKEN}"})
    email, sms = (e for e in bus.received if isinstance(e, NotificationFailed))
    assert email.explanation is not None and "Mailbox unavailable" in email.explanation
    assert email.explained_by is not None and "RFC 5321" in email.explained_by
    assert (sms.reason, sms.explanation) == ("provider said 550", None)


async def test_a_callback_whose_events_are_refused_is_listed_once_with_the_value(
    sources: SourceService, bus: RecordingBus
) -> None:
    body = json_body(
        knock_message("message.delivered", at=ISO)
        | {"data": {"id": "m-9", "recipient": "not a valid id"}}
    )
    result = await post(
        sources, "knock", body, {"x-knock-signature": knock_sign(body, at_ms=T * 1000)}
    )
    assert [r.index for r in result.refused] == [0]
    assert "user_id" in result.refused[0].reason
    assert bus.received == []
