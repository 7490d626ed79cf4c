from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from insights_contracts import (
    NotificationClicked,
    NotificationSent,
    TemplateUpserted,
    UserUpserted,
    parse_event,
)
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS, dlq, key_for, topic_for

pytestmark = pytest.mark.unit

SENT = {
    "event_id": "5d0c",
    "event_type": "notification.sent",
    "schema_version": 1,
    "app_id": "acme",
    "occurred_at": "2026-11-02T10:00:00Z",
    "message_id": "m1",
    "user_id": "alex",
    "channel": "push",
    "template": {
        "key": "order_shipped",
        "name": "Order shipped",
        "version": 3,
        "variables": {"order": "A-1001"},
    },
    "content": {
        "title": "Your order shipped",
        "body": "Order A-1001 is on its way",
        "buttons": [{"id": "track", "label": "Track", "url": "https://example.com/t"}],
    },
}


def test_contract_example_parses_into_the_sent_model() -> None:
    event = parse_event(SENT)
    assert isinstance(event, NotificationSent)
    assert event.occurred_at == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert event.template.variables == {"order": "A-1001"}
    assert event.content.buttons[0].url == "https://example.com/t"
    assert topic_for(event) == NOTIFICATIONS
    assert key_for(event) == "acme:alex"


def test_json_round_trip_is_lossless() -> None:
    event = parse_event(SENT)
    assert parse_event(event.model_dump_json()) == event


def test_events_are_frozen() -> None:
    event = parse_event(SENT)
    with pytest.raises(ValidationError):
        event.user_id = "other"  # type: ignore[misc]


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = parse_event({**SENT, "campaign_id": "c-9"})
    assert "campaign_id" not in event.model_dump()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"occurred_at": "2026-11-02T10:00:00"}, "occurred_at"),
        ({"user_id": "alex kim"}, "user_id"),
        ({"user_id": "x" * 81}, "user_id"),
        ({"channel": "fax"}, "channel"),
        ({"schema_version": 2}, "schema_version"),
        ({"app_id": ""}, "app_id"),
        ({"template": {"key": "k", "version": 0}}, "version"),
    ],
)
def test_bad_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event({**SENT, **change})
    assert any(field in ".".join(map(str, err["loc"])) for err in info.value.errors())


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(ValidationError, match="notification.sent"):
        parse_event({**SENT, "event_type": "notification.bounced"})


def test_user_upserted_requires_e164_and_keys_by_user() -> None:
    base = {
        "event_id": "u1",
        "event_type": "user.upserted",
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00+09:00",
        "user_id": "kim.minji",
    }
    event = parse_event({**base, "phone_number": "+821012345678", "nickname": "김민지"})
    assert isinstance(event, UserUpserted)
    assert event.source == "platform"
    assert topic_for(event) == USERS
    assert key_for(event) == "acme:kim.minji"
    with pytest.raises(ValidationError, match=r"\+821012345678"):
        parse_event({**base, "phone_number": "82 10 1234 5678"})
    with pytest.raises(ValidationError):
        parse_event({**base, "source": "crm"})


def test_template_upserted_keys_by_template() -> None:
    event = parse_event(
        {
            "event_id": "t1",
            "event_type": "template.upserted",
            "app_id": "acme",
            "occurred_at": "2026-11-02T10:00:00Z",
            "template": {
                "key": "order_shipped",
                "name": "Order shipped",
                "version": 3,
                "channels": {"push": {"title": "Shipped", "body": "Order {{order}}"}},
                "variable_schema": [{"key": "order", "type": "string", "name": "Order"}],
            },
        }
    )
    assert isinstance(event, TemplateUpserted)
    assert topic_for(event) == TEMPLATES
    assert key_for(event) == "acme:order_shipped"
    assert dlq(TEMPLATES) == "insights.templates.v1.dlq"


def test_clicked_button_is_optional() -> None:
    event = parse_event(
        {
            **{k: SENT[k] for k in ("event_id", "app_id", "occurred_at", "message_id", "user_id")},
            "event_type": "notification.clicked",
        }
    )
    assert isinstance(event, NotificationClicked)
    assert event.button_id is None
