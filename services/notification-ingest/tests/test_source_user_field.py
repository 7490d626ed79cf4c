"""A configured user field per app and platform (`insights sources add --user-field`): when the
callback has it, it names the user over the platform's default fields; when it lacks it, the
default fields do, and a callback naming nobody says which field was looked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ingest_support import RecordingBus
from source_samples import (
    BRAZE_TOKEN,
    CIO_KEY,
    KNOCK_SECRET,
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
    twilio_status,
)

from insights_common.sources import PLATFORMS
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.domain.sources import PLATFORMS as ADAPTERS
from notification_ingest.domain.sources.model import field_at
from notification_ingest.service import IngestService
from notification_ingest.source_service import SourceResult, SourceService

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ISO = "2026-11-02T09:59:30Z"
SECRETS = {
    "twilio": TWILIO_TOKEN,
    "knock": KNOCK_SECRET,
    "customerio": CIO_KEY,
    "braze": BRAZE_TOKEN,
    "sendbird": SENDBIRD_TOKEN,
}


@pytest.fixture
def sources(db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore) -> SourceService:
    ingest = IngestService(
        dedup=SqliteDedupStore(db), publisher=bus, secrets=keys, max_batch=1000, clock=lambda: NOW
    )
    return SourceService(
        ingest=ingest,
        secrets=keys,
        phones=SqlitePhoneDirectory(db),
        pending=SqlitePendingCallbacks(db, clock=lambda: NOW),
        tolerance=timedelta(seconds=300),
        clock=lambda: NOW,
    )


async def post(
    sources: SourceService,
    keys: SqliteKeyStore,
    platform: str,
    user_field: str | None,
    body: bytes,
    headers: dict[str, str],
    *,
    query: str = "",
) -> SourceResult:
    await keys.set_source_secret("acme", platform, SECRETS[platform], user_field=user_field)
    sender = await sources.authenticate(
        platform=platform,
        app_id="acme",
        headers={name.lower(): value for name, value in headers.items()},
        path=f"/api/v1/sources/{platform}/acme",
        query=query,
        public_origin="https://insights.example.com",
    )
    return await sources.take(sender, body)


def users(bus: RecordingBus) -> set[str]:
    return {event.user_id for event in bus.received}  # type: ignore[attr-defined]


def test_the_settings_platform_list_and_the_adapters_agree() -> None:
    assert [p.name for p in PLATFORMS] == list(ADAPTERS)
    for platform in PLATFORMS:
        adapter = ADAPTERS[platform.name]
        assert (platform.title, platform.credential) == (
            adapter.table.title,
            adapter.credential_name,
        )


def test_a_path_reads_objects_and_list_items_and_nothing_else() -> None:
    item = {"data": {"ids": [{"id": "kim"}], "n": 7, "flag": True, "empty": ""}}
    assert field_at(item, ("data", "ids", "0", "id")) == "kim"
    assert field_at(item, ("data", "n")) == "7"
    assert field_at(item, ("data", "flag")) is None
    assert field_at(item, ("data", "empty")) is None
    assert field_at(item, ("data", "ids", "1", "id")) is None
    assert field_at(item, ("data", "missing", "id")) is None
    assert field_at("alex", ("id",)) is None


# Twilio ----------------------------------------------------------------------------------------


async def twilio(
    sources: SourceService, keys: SqliteKeyStore, field: str | None, query: str, **extra: str
) -> SourceResult:
    body, headers, target = twilio_request(
        twilio_status("delivered", **extra), path="/api/v1/sources/twilio/acme", query=query
    )
    return await post(sources, keys, "twilio", field, body, headers, query=target.partition("?")[2])


async def test_twilio_a_parameter_of_the_url_names_the_user_over_user_id(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    result = await twilio(sources, keys, "customer", "user_id=alex&customer=kim")
    assert (result.accepted, result.refused) == (2, ())
    assert users(bus) == {"kim"}


async def test_twilio_a_parameter_of_the_form_names_the_user(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    result = await twilio(sources, keys, "customer", "", customer="sam")
    assert result.accepted == 2
    assert users(bus) == {"sam"}


async def test_twilio_without_the_parameter_falls_back_and_says_what_was_looked_for(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    kept = await twilio(sources, keys, "customer", "user_id=alex")
    assert users(bus) == {"alex"} and kept.accepted == 2
    nobody = await twilio(sources, keys, "customer", "", To="+14155550100")
    assert nobody.accepted == 0
    reason = nobody.refused[0].reason
    assert reason.startswith("The callback names no user. It has no customer (the user field")
    assert "+14155550100" in reason


# Knock -----------------------------------------------------------------------------------------


async def knock(
    sources: SourceService, keys: SqliteKeyStore, field: str | None, payload: dict[str, Any]
) -> SourceResult:
    body = json_body(payload)
    headers = {"x-knock-signature": knock_sign(body, at_ms=T * 1000)}
    return await post(sources, keys, "knock", field, body, headers)


async def test_knock_a_field_of_the_recipient_names_the_user(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    payload = knock_message("message.delivered", at=ISO)
    payload["data"]["recipient"] = {"id": "knock-77", "collection": "users", "external": "kim"}
    result = await knock(sources, keys, "data.recipient.external", payload)
    assert result.accepted == 2
    assert users(bus) == {"kim"}


async def test_knock_without_the_field_reads_the_recipient(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    result = await knock(
        sources, keys, "data.recipient.external", knock_message("message.delivered", at=ISO)
    )
    assert result.accepted == 2 and users(bus) == {"alex"}
    nobody = knock_message("message.read", message_id="m-2", at=ISO)
    nobody["data"]["recipient"] = None
    refused = await knock(sources, keys, "data.recipient.external", nobody)
    assert "It has no data.recipient.external" in refused.refused[0].reason
    assert "Knock named no recipient user id." in refused.refused[0].reason


# Customer.io -----------------------------------------------------------------------------------


async def customerio(
    sources: SourceService, keys: SqliteKeyStore, field: str | None, payload: dict[str, Any]
) -> SourceResult:
    body = json_body(payload)
    return await post(sources, keys, "customerio", field, body, cio_headers(body, at=T))


async def test_customerio_an_identifier_names_the_user_over_customer_id(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    event = cio_event("delivered", event_id="01E4C4CT6YDC7Y5M7FE1GWWPQJ", at=T - 30)
    result = await customerio(sources, keys, "data.identifiers.cio_id", event)
    assert result.accepted == 2
    assert users(bus) == {"a1b2c3"}


async def test_customerio_an_email_as_user_field_is_refused_as_no_user_id_can_be_one(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    event = cio_event("delivered", event_id="01E4C4CT6YDC7Y5M7FE1GWWPQK", at=T - 30)
    result = await customerio(sources, keys, "data.identifiers.email", event)
    assert result.accepted == 0
    assert "user_id" in result.refused[0].reason


async def test_customerio_without_the_field_falls_back_and_names_it_when_nobody_is_left(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    event = cio_event("delivered", event_id="01E4C4CT6YDC7Y5M7FE1GWWPQL", at=T - 30)
    result = await customerio(sources, keys, "data.identifiers.external_id", event)
    assert result.accepted == 2 and users(bus) == {"alex"}
    anonymous = cio_event(
        "opened", event_id="01E4C4CT6YDC7Y5M7FE1GWWPQM", at=T - 20, customer_id="", identifiers={}
    )
    refused = await customerio(sources, keys, "data.identifiers.external_id", anonymous)
    assert "It has no data.identifiers.external_id" in refused.refused[0].reason


# Braze -----------------------------------------------------------------------------------------


async def braze(
    sources: SourceService, keys: SqliteKeyStore, field: str | None, events: list[Any]
) -> SourceResult:
    body = json_body({"events": events})
    return await post(
        sources, keys, "braze", field, body, {"Authorization": f"Bearer {BRAZE_TOKEN}"}
    )


async def test_braze_an_alias_names_each_events_user_and_the_rest_fall_back(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    aliased = braze_event("sms.Delivery", event_id="b-1", at=T - 30)
    aliased["user"]["user_alias"] = {"alias_label": "crm", "alias_name": "kim"}
    plain = braze_event("sms.Delivery", event_id="b-2", at=T - 20, dispatch_id="dispatch-0002")
    result = await braze(sources, keys, "user.user_alias.alias_name", [aliased, plain])
    assert (result.callbacks, result.accepted) == (2, 4)
    assert {(e.message_id, e.user_id) for e in bus.received} == {  # type: ignore[attr-defined]
        ("dispatch-0001:alex", "kim"),
        ("dispatch-0002:alex", "alex"),
    }


# Sendbird --------------------------------------------------------------------------------------


async def test_sendbird_a_field_of_each_receiver_names_its_user(
    sources: SourceService, keys: SqliteKeyStore, bus: RecordingBus
) -> None:
    payload = sendbird_send(message_id=4242, receivers=[], at_ms=T * 1000)
    payload["receiver_ids"] = [
        {"user_id": "sb-1", "metadata": {"our_id": "alex"}},
        {"user_id": "sb-2"},
        "kim",
    ]
    body = json_body(payload)
    result = await post(
        sources,
        keys,
        "sendbird",
        "metadata.our_id",
        body,
        {"x-sendbird-signature": sendbird_sign(body)},
    )
    assert (result.callbacks, result.accepted) == (3, 3)
    assert users(bus) == {"alex", "sb-2", "kim"}
