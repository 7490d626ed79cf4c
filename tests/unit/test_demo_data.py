"""The demo dataset: deterministic, valid against the contract, realistic in its proportions."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import phonenumbers
import pytest

from insights.demo_data import (
    ALEX_NICKNAME,
    ALEX_PHONE,
    ALEX_USER_ID,
    CHANNELS,
    DemoData,
    build_demo,
)
from insights_contracts import (
    NotificationSent,
    TemplateUpserted,
    UserUpserted,
    parse_event,
)
from insights_contracts.phone import check_e164, phone_country
from insights_contracts.types import USER_ID_PATTERN

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@cache
def demo() -> DemoData:
    return build_demo(now=NOW)


def all_events(data: DemoData) -> list[dict[str, Any]]:
    return data.template_events + data.notification_events + data.platform_user_events


def by_message(data: DemoData) -> dict[str, dict[str, list[dict[str, Any]]]]:
    messages: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for event in data.notification_events:
        stage = event["event_type"].removeprefix("notification.")
        messages[event["message_id"]][stage].append(event)
    return messages


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data() -> None:
    again = build_demo(now=NOW)
    assert again == demo()
    other = build_demo(now=NOW, seed=8)
    assert other.csv_text != demo().csv_text
    assert other.notification_events != demo().notification_events


def test_every_event_validates_against_the_contract() -> None:
    parsed = [parse_event(event) for event in all_events(demo())]
    assert {event.app_id for event in parsed} == {"demo"}
    assert all(isinstance(parse_event(e), TemplateUpserted) for e in demo().template_events)
    assert all(isinstance(parse_event(e), UserUpserted) for e in demo().platform_user_events)
    assert {e.source for e in parsed if isinstance(e, UserUpserted)} == {"platform"}


def test_event_ids_are_unique_and_times_are_rfc3339_utc() -> None:
    events = all_events(demo())
    assert len({event["event_id"] for event in events}) == len(events)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert all(stamp.match(event["occurred_at"]) for event in events)


def test_the_app_id_is_a_parameter() -> None:
    data = build_demo(app_id="sandbox", now=NOW, users=20, messages=100)
    assert {event["app_id"] for event in all_events(data)} == {"sandbox"}


def test_the_csv_has_the_users_with_valid_e164_phones() -> None:
    rows = list(csv.DictReader(io.StringIO(demo().csv_text)))
    assert demo().csv_text.startswith("user_id,phone_number,nickname\n")
    assert len(rows) == 300
    assert len({row["user_id"] for row in rows}) == 300
    assert all(re.match(USER_ID_PATTERN, row["user_id"]) for row in rows)
    for row in rows:
        phone = row["phone_number"]
        assert check_e164(phone) == phone
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone))
        assert len(row["nickname"]) <= 80
    regions = Counter(phone_country(row["phone_number"]) for row in rows)
    assert {"US", "KR", "GB", "DE", "FR", "JP", "BR", "IN", "ES"} <= set(regions)


def test_user_ids_and_nicknames_look_like_a_real_app() -> None:
    rows = list(csv.DictReader(io.StringIO(demo().csv_text)))
    ids = [row["user_id"] for row in rows]
    assert any(re.fullmatch(r"u_\d{5}", user_id) for user_id in ids)
    assert any(re.fullmatch(r"[a-z]+\.[a-z]+", user_id) for user_id in ids)
    assert any(re.fullmatch(r"[a-z]+-[a-z]+", user_id) for user_id in ids)
    nicknames = [row["nickname"] for row in rows]
    text = "".join(nicknames)
    assert 10 <= sum(1 for n in nicknames if not n) <= 60
    assert re.search("[\uac00-\ud7a3]", text), "Hangul"
    assert re.search("[\u3040-\u30ff\u4e00-\u9fff]", text), "Japanese"
    assert re.search("[áéíóúãçñ]", text), "Spanish/Portuguese/French accents"
    assert re.search("[äöüß]", text), "German umlauts"
    assert re.search("[\U0001f300-\U0001faff\u2600-\u27bf]", text), "emoji"


def test_alex_is_documented_and_first() -> None:
    first = next(csv.DictReader(io.StringIO(demo().csv_text)))
    assert first == {
        "user_id": ALEX_USER_ID,
        "phone_number": ALEX_PHONE,
        "nickname": ALEX_NICKNAME,
    }
    assert (ALEX_USER_ID, ALEX_PHONE, ALEX_NICKNAME) == ("alex", "+14155550171", "Alex Kim")


def test_alex_has_every_channel_status_and_response_type() -> None:
    messages = {
        message_id: stages
        for message_id, stages in by_message(demo()).items()
        if stages["sent"][0]["user_id"] == ALEX_USER_ID
    }
    assert {stages["sent"][0]["channel"] for stages in messages.values()} == set(CHANNELS)

    def status(stages: dict[str, list[dict[str, Any]]]) -> str:
        if stages["failed"]:
            return "failed"
        return next(s for s in ("clicked", "read", "delivered", "sent") if stages[s])

    assert {status(stages) for stages in messages.values()} == {
        "sent",
        "delivered",
        "read",
        "clicked",
        "failed",
    }
    responses = {
        event["response"]["type"] for stages in messages.values() for event in stages["responded"]
    }
    assert responses == {"button", "reply", "form"}


def test_funnel_shares_are_realistic() -> None:
    messages = by_message(demo())
    total = len(messages)
    assert total == 3000

    def share(stage: str) -> float:
        return sum(1 for stages in messages.values() if stages[stage]) / total

    assert 0.85 <= share("delivered") <= 0.94
    assert 0.38 <= share("read") <= 0.52
    assert 0.08 <= share("clicked") <= 0.16
    assert 0.025 <= share("failed") <= 0.06
    assert 0.03 <= share("responded") <= 0.08
    channels = Counter(stages["sent"][0]["channel"] for stages in messages.values())
    assert set(channels) == set(CHANNELS)


def test_each_message_has_one_sent_and_a_consistent_timeline() -> None:
    window_start = NOW - timedelta(days=30)
    for stages in by_message(demo()).values():
        [sent] = stages["sent"]
        sent_at = parse_event(sent).occurred_at
        assert window_start <= sent_at < NOW
        assert all(len(events) <= 1 for events in stages.values())
        if stages["failed"]:
            assert not stages["delivered"] and not stages["read"] and not stages["clicked"]
        if stages["clicked"]:
            assert stages["read"]
        if stages["read"]:
            assert stages["delivered"]
        previous = sent_at
        for stage in ("delivered", "read", "clicked"):
            for event in stages[stage]:
                at = parse_event(event).occurred_at
                assert previous < at < NOW
                assert at - sent_at < timedelta(days=1)
                previous = at


def test_messages_use_a_template_version_that_existed_and_are_rendered() -> None:
    versions: dict[tuple[str, int], TemplateUpserted] = {}
    for raw in demo().template_events:
        event = parse_event(raw)
        assert isinstance(event, TemplateUpserted)
        versions[(event.template.key, event.template.version)] = event
    keys = {key for key, _ in versions}
    assert 8 <= len(keys) <= 10
    per_key = Counter(key for key, _ in versions)
    assert all(1 <= n <= 3 for n in per_key.values())
    assert max(per_key.values()) == 3

    for raw in demo().notification_events:
        event = parse_event(raw)
        if not isinstance(event, NotificationSent):
            continue
        version = versions[(event.template.key, event.template.version)]
        assert version.occurred_at <= event.occurred_at
        assert event.channel in version.template.channels
        schema = {spec.key for spec in version.template.variable_schema}
        assert set(event.template.variables) == schema
        rendered = [event.content.title or "", event.content.body]
        rendered += [b.label + (b.url or "") for b in event.content.buttons]
        assert not any("{{" in text for text in rendered)
        if event.channel in ("push", "in_app", "alimtalk", "whatsapp"):
            assert event.content.buttons
        else:
            assert not event.content.buttons


def test_failures_carry_channel_specific_codes() -> None:
    messages = by_message(demo())
    codes: dict[str, set[str]] = defaultdict(set)
    for stages in messages.values():
        for event in stages["failed"]:
            assert event["reason"]
            codes[stages["sent"][0]["channel"]].add(event["code"])
    assert codes["sms"] <= {"invalid_number", "carrier_rejected", "unreachable"}
    assert codes["push"] <= {"device_unregistered", "invalid_token", "push_disabled"}
    assert codes["alimtalk"] <= {"template_rejected", "not_kakao_user", "blocked_channel"}
    assert len(set().union(*codes.values())) >= 8


def test_platform_user_events_change_nicknames_of_known_users() -> None:
    rows = {row["user_id"]: row["nickname"] for row in csv.DictReader(io.StringIO(demo().csv_text))}
    changes = demo().platform_user_events
    assert 3 <= len(changes) <= 10
    for event in changes:
        assert event["user_id"] in rows
        assert event["user_id"] != ALEX_USER_ID
        assert event["nickname"] != rows[event["user_id"]]


def test_now_must_be_aware_and_is_used_in_any_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_demo(now=datetime(2026, 11, 28, 12, 0))
    seoul = NOW.astimezone(timezone(timedelta(hours=9)))
    assert build_demo(now=seoul, users=20, messages=100) == build_demo(
        now=NOW, users=20, messages=100
    )
