"""The pure rules: body decoding, per-event validation and readable errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from insights_contracts import EVENT_TYPES, PLATFORM_TYPES, UserUpserted
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody
from notification_ingest.domain.model import FieldError, Rejection
from notification_ingest.domain.validation import check_event, decode_batch, validate_batch

pytestmark = pytest.mark.unit

EVENTS_FILE = Path(__file__).with_name("contract_events.json")


def contract_events() -> list[dict[str, Any]]:
    """One event of each of the eight types the webhook takes, for app 'acme', as sent."""
    events: list[dict[str, Any]] = json.loads(EVENTS_FILE.read_text(encoding="utf-8"))
    return events


def test_a_single_object_is_a_batch_of_one() -> None:
    assert decode_batch(b'{"event_id": "e1"}', max_batch=10) == [{"event_id": "e1"}]


def test_an_array_is_taken_as_it_is() -> None:
    assert decode_batch(b'[{"a": 1}, {"b": 2}]', max_batch=10) == [{"a": 1}, {"b": 2}]


def test_not_json_says_where() -> None:
    with pytest.raises(MalformedBody) as raised:
        decode_batch(b'{"event_id": "e1",\n "app_id": }', max_batch=10)
    assert "not valid JSON" in str(raised.value)
    assert "line 2, column 12" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "what"), [(b'"hello"', "a string"), (b"42", "a number"), (b"null", "null")]
)
def test_a_json_scalar_is_not_a_batch(body: bytes, what: str) -> None:
    with pytest.raises(MalformedBody, match=f"The body is {what}; send one event object"):
        decode_batch(body, max_batch=10)


def test_an_empty_array_is_refused() -> None:
    with pytest.raises(MalformedBody, match="empty array"):
        decode_batch(b"[]", max_batch=10)


def test_more_than_the_batch_limit_is_refused() -> None:
    body = orjson.dumps([{}] * 1001)
    assert len(decode_batch(orjson.dumps([{}] * 1000), max_batch=1000)) == 1000
    with pytest.raises(BatchTooLarge, match="has 1,001 events; send at most 1,000"):
        decode_batch(body, max_batch=1000)


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t in PLATFORM_TYPES])
def test_every_event_type_of_the_platform_is_accepted(event_type: str) -> None:
    raw = next(e for e in contract_events() if e["event_type"] == event_type)
    event = check_event(raw, app_id="acme", index=0)
    assert isinstance(event, EVENT_TYPES[event_type])
    assert event.event_id == raw["event_id"]
    assert event.app_id == "acme"


def test_the_products_own_erase_is_refused_from_the_platform() -> None:
    raw = {
        "event_id": "e1",
        "event_type": "user.erased",
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00Z",
        "user_id": "alex",
    }
    [(loc, message)] = _errors(check_event(raw, app_id="acme", index=0))
    assert loc == "event_type" and "the product's own" in message
    assert "user.erased" not in message.split("use one of:")[1]


def _errors(result: object) -> list[tuple[str, str]]:
    assert isinstance(result, Rejection), result
    return [(e.loc, e.message) for e in result.errors]


def test_an_unknown_event_type_lists_the_accepted_ones() -> None:
    raw = {**contract_events()[1], "event_type": "notification.bounced"}
    result = check_event(raw, app_id="acme", index=3)
    assert isinstance(result, Rejection)
    assert result.index == 3
    assert result.event_id == "e-delivered"
    [(loc, message)] = _errors(result)
    assert loc == "event_type"
    assert message.startswith("Unknown event_type 'notification.bounced'; use one of: ")
    for name in EVENT_TYPES:
        assert (name in message) == (name in PLATFORM_TYPES)


def test_a_missing_event_type_says_it_is_required() -> None:
    raw = dict(contract_events()[1])
    del raw["event_type"]
    [(loc, message)] = _errors(check_event(raw, app_id="acme", index=0))
    assert loc == "event_type"
    assert message.startswith("event_type is required; use one of: notification.sent,")


def test_nested_errors_have_a_dotted_location_without_the_union_tag() -> None:
    raw = contract_events()[0]
    raw["template"] = {**raw["template"], "version": "three"}
    raw["content"] = {"body": "x", "buttons": [{"label": "Track"}]}
    errors = dict(_errors(check_event(raw, app_id="acme", index=0)))
    assert set(errors) == {"template.version", "content.buttons.0.id"}
    assert errors["template.version"] == (
        "Input should be a valid integer, unable to parse string as an integer; got 'three'"
    )
    assert errors["content.buttons.0.id"] == "Field required"


def test_a_bad_user_id_says_which_characters_are_allowed() -> None:
    raw = {**contract_events()[1], "user_id": "alex kim"}
    assert _errors(check_event(raw, app_id="acme", index=0)) == [
        ("user_id", "'alex kim' is not allowed here; use 1-80 characters from A-Z a-z 0-9 _ - .")
    ]


def test_a_phone_in_another_notation_gets_its_e164_form() -> None:
    raw = {**contract_events()[6], "phone_number": "+1 415 555 0171"}
    assert _errors(check_event(raw, app_id="acme", index=0)) == [
        ("phone_number", "'+1 415 555 0171' is not in E.164 format; write it as +14155550171")
    ]


def test_a_time_without_zone_shows_the_expected_form() -> None:
    raw = {**contract_events()[1], "occurred_at": "2026-11-02T10:00:00"}
    [(loc, message)] = _errors(check_event(raw, app_id="acme", index=0))
    assert loc == "occurred_at"
    assert "got '2026-11-02T10:00:00'" in message
    assert message.endswith("e.g. 2026-11-02T10:00:00Z")


def test_the_app_id_must_be_the_signing_app() -> None:
    raw = {**contract_events()[1], "app_id": "globex"}
    assert _errors(check_event(raw, app_id="acme", index=0)) == [
        ("app_id", "app_id 'globex' does not match X-Insights-App 'acme'")
    ]


def test_an_app_mismatch_is_reported_with_the_other_errors_once() -> None:
    raw = {**contract_events()[1], "app_id": "not valid!", "message_id": ""}
    errors = _errors(check_event(raw, app_id="acme", index=0))
    assert [loc for loc, _ in errors] == ["app_id", "message_id"]
    assert errors[0][1] == "app_id 'not valid!' does not match X-Insights-App 'acme'"


def test_a_user_upserted_without_source_comes_from_the_platform() -> None:
    raw = contract_events()[6]
    assert "source" not in raw
    event = check_event(raw, app_id="acme", index=0)
    assert isinstance(event, UserUpserted)
    assert event.source == "platform"


def test_a_user_upserted_with_an_import_source_is_refused() -> None:
    raw = {**contract_events()[6], "source": "import:imp_42"}
    [(loc, message)] = _errors(check_event(raw, app_id="acme", index=0))
    assert loc == "source"
    assert message == (
        "source 'import:imp_42' is reserved for CSV imports; "
        "the webhook takes only 'platform' (or no source)"
    )


def test_an_item_that_is_not_an_object_is_rejected_whole() -> None:
    result = check_event(["event"], app_id="acme", index=2)
    assert result == Rejection(
        index=2,
        event_id=None,
        errors=(FieldError("", "An event must be a JSON object; got an array."),),
    )


def test_a_batch_keeps_valid_events_in_order_and_counts_repeats() -> None:
    sent, delivered, read = contract_events()[:3]
    items: list[object] = [sent, {"event_type": "nope"}, delivered, dict(sent), read, 7]
    batch = validate_batch(items, app_id="acme")
    assert [e.event_id for e in batch.events] == ["e-sent", "e-delivered", "e-read"]
    assert batch.duplicates == 1
    assert [r.index for r in batch.rejected] == [1, 5]


def _with(event_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    event = next(e for e in contract_events() if e["event_type"] == event_type)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        target = event
        for part in parents:
            target = target[part]
        target[leaf] = value
    return event


@pytest.mark.parametrize(
    ("event_type", "changes", "loc", "told"),
    [
        ("notification.sent", {"template.version": 2**31}, "template.version", "2147483647"),
        ("template.upserted", {"template.version": 2**63}, "template.version", "2147483647"),
        (
            "notification.sent",
            {"template.variables": {"order": {"lines": [1, 2**63]}}},
            "template.variables.order.lines.1",
            "outside the integers kept",
        ),
        (
            "notification.sent",
            {"template.variables": {"n": 2**64 - 1}},
            "template.variables.n",
            "send it as a string",
        ),
        (
            "notification.responded",
            {"response.value": {"rating": -(2**63) - 1}},
            "response.value.rating",
            "outside the integers kept",
        ),
        ("notification.read", {"event_id": "a\x00b"}, "event_id", "NUL"),
        ("notification.read", {"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at", "1970"),
        ("notification.read", {"occurred_at": "0001-01-01T00:30:00+01:00"}, "occurred_at", "1970"),
        ("notification.read", {"occurred_at": "9999-12-31T23:59:59Z"}, "occurred_at", "2200"),
        ("user.upserted", {"occurred_at": "9999-12-31T23:00:00-05:00"}, "occurred_at", "2200"),
        ("notification.clicked", {"occurred_at": "1969-12-31T23:59:59Z"}, "occurred_at", "1970"),
        ("notification.failed", {"occurred_at": "2200-01-01T00:00:00Z"}, "occurred_at", "2200"),
    ],
)
def test_a_value_no_store_can_keep_is_refused_where_it_is(
    event_type: str, changes: dict[str, Any], loc: str, told: str
) -> None:
    result = check_event(_with(event_type, changes), app_id="acme", index=3)
    assert isinstance(result, Rejection), result
    assert result.index == 3
    assert [error.loc for error in result.errors] == [loc]
    assert told in result.errors[0].message


@pytest.mark.parametrize(
    "changes",
    [
        {"template.version": 2**31 - 1},
        {"template.variables": {"big": 2**63 - 1, "small": -(2**63), "flag": True, "x": 1.5e300}},
        {"occurred_at": "1970-01-01T00:00:00Z"},
        {"occurred_at": "2199-12-31T23:59:59.999999Z"},
        {"occurred_at": "1970-01-01T09:00:00+09:00"},
    ],
)
def test_the_edges_of_what_the_stores_keep_are_taken(changes: dict[str, Any]) -> None:
    result = check_event(_with("notification.sent", changes), app_id="acme", index=0)
    assert not isinstance(result, Rejection), result


def test_one_event_beyond_the_stores_leaves_its_batch_taken() -> None:
    good = contract_events()
    bad = _with("notification.sent", {"event_id": "huge", "template.version": 2**40})
    batch = validate_batch([*good[:2], bad, *good[2:]], app_id="acme")
    assert len(batch.events) == len(good)
    assert [(r.index, r.event_id) for r in batch.rejected] == [(2, "huge")]


@pytest.mark.parametrize(
    ("literal", "loc"),
    [
        ("18446744073709551616", "template.variables.n"),  # 2**64: orjson alone rounds it
        ("-9223372036854775809", "template.variables.n"),
        ("1" * 300, "template.variables.n"),
    ],
)
def test_an_integer_beyond_64_bits_in_the_body_is_read_exactly_and_refused(
    literal: str, loc: str
) -> None:
    event = _with("notification.sent", {"template.variables": {"n": "N"}})
    body = orjson.dumps([event, contract_events()[1]]).replace(b'"N"', literal.encode())
    batch = validate_batch(decode_batch(body, max_batch=10), app_id="acme")
    assert len(batch.events) == 1
    [rejection] = batch.rejected
    assert [error.loc for error in rejection.errors] == [loc]
    assert "outside the integers kept" in rejection.errors[0].message


def test_long_digit_runs_in_strings_and_exponents_are_taken_as_sent() -> None:
    variables = {"card": "12345678901234567890123", "big": 1e300, "max": 2**63 - 1}
    event = _with("notification.sent", {"template.variables": variables})
    [decoded] = decode_batch(orjson.dumps(event), max_batch=10)
    checked = check_event(decoded, app_id="acme", index=0)
    assert not isinstance(checked, Rejection), checked
    assert checked.template.variables == variables  # type: ignore[union-attr]
