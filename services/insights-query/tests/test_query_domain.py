"""The pure rules: message fold, user merge, search normalization, windows, rates, CSV safety."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from insights_common.spreadsheet import spreadsheet_safe
from insights_contracts import (
    NotificationClicked,
    NotificationDelivered,
    NotificationFailed,
    NotificationRead,
    NotificationResponded,
    NotificationSent,
    NotificationStatus,
    TemplateUpserted,
)
from insights_query.domain.errors import InvalidCursor, InvalidParameter
from insights_query.domain.export import csv_header, csv_rows
from insights_query.domain.messages import message_item, project_message
from insights_query.domain.queries import (
    ActivityPosition,
    MessagePosition,
    SearchPosition,
    parse_message_filter,
)
from insights_query.domain.search import Rank, fold_text, nickname_tokens, parse_search
from insights_query.domain.stats import Counts, StatsRows, build_user_stats, rate
from insights_query.domain.templates import best_versions, origin
from insights_query.domain.time import Window, parse_bound, resolve_window, ts_key
from insights_query.domain.users import ActivitySpan, UserFact, project_user

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def t(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 2, 10, minute, second, tzinfo=UTC)


def base(event_id: str, when: datetime) -> dict[str, object]:
    return {
        "event_id": event_id,
        "app_id": "acme",
        "occurred_at": when,
        "message_id": "m1",
        "user_id": "alex",
    }


T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def sent(when: datetime = T0, event_id: str = "s1") -> NotificationSent:
    return NotificationSent.model_validate(
        {
            **base(event_id, when),
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
    )


def delivered(when: datetime, event_id: str = "d1") -> NotificationDelivered:
    return NotificationDelivered.model_validate(base(event_id, when))


def read(when: datetime, event_id: str = "r1") -> NotificationRead:
    return NotificationRead.model_validate(base(event_id, when))


def clicked(when: datetime, event_id: str = "c1", **kw: object) -> NotificationClicked:
    return NotificationClicked.model_validate({**base(event_id, when), **kw})


def failed(when: datetime, code: str = "E_TOKEN", event_id: str = "f1") -> NotificationFailed:
    return NotificationFailed.model_validate(
        {**base(event_id, when), "code": code, "reason": "device token expired"}
    )


def responded(when: datetime, event_id: str = "p1", **response: object) -> NotificationResponded:
    return NotificationResponded.model_validate({**base(event_id, when), "response": response})


# -- message fold ---------------------------------------------------------------------------


def test_status_is_the_furthest_stage_whatever_the_order() -> None:
    events = [clicked(t(5)), sent(), delivered(t(1)), read(t(3))]
    projection = project_message(events)
    assert projection is not None
    assert projection.detail.status == "clicked"
    assert (projection.delivered, projection.read, projection.clicked) == (True, True, True)
    assert [e.status for e in projection.detail.timeline] == [
        "sent",
        "delivered",
        "read",
        "clicked",
    ]


def test_a_click_alone_counts_as_delivered_and_read() -> None:
    projection = project_message([sent(), clicked(t(2))])
    assert projection is not None
    assert projection.stage == 3
    assert projection.delivered and projection.read and projection.clicked


def test_events_before_their_sent_are_kept_but_not_shown() -> None:
    assert project_message([delivered(t(1)), read(t(2))]) is None
    projection = project_message([delivered(t(1)), read(t(2)), sent()])
    assert projection is not None
    assert projection.detail.status == "read"


def test_failure_is_the_status_unless_a_later_delivery_succeeded() -> None:
    only_failed = project_message([sent(), failed(t(1))])
    assert only_failed is not None
    assert only_failed.detail.status == "failed"
    assert only_failed.failed
    assert only_failed.detail.failure is not None
    assert only_failed.detail.failure.code == "E_TOKEN"
    assert only_failed.detail.failure.at == t(1)

    retried = project_message([delivered(t(3)), failed(t(1)), sent()])
    assert retried is not None
    assert retried.detail.status == "delivered"
    assert not retried.failed
    # the failure stays visible even though a retry delivered the message
    assert retried.detail.failure is not None
    assert retried.detail.failure.reason == "device token expired"

    failed_after_delivery = project_message([sent(), delivered(t(1)), failed(t(2))])
    assert failed_after_delivery is not None
    assert failed_after_delivery.detail.status == "failed"
    assert failed_after_delivery.delivered


def test_a_delivery_at_the_same_instant_as_a_failure_wins() -> None:
    projection = project_message([sent(), failed(t(1)), delivered(t(1))])
    assert projection is not None
    assert projection.detail.status == "delivered"
    assert [e.status for e in projection.detail.timeline] == ["sent", "failed", "delivered"]


def test_a_response_adds_a_response_and_keeps_the_status() -> None:
    projection = project_message(
        [sent(), read(t(2)), responded(t(4), type="button", value="yes", label="Yes")]
    )
    assert projection is not None
    assert projection.detail.status == "read"
    assert projection.responded
    [response] = projection.detail.responses
    assert (response.type, response.value, response.label, response.at) == (
        "button",
        "yes",
        "Yes",
        t(4),
    )
    assert projection.last_engaged_at == t(4)


def test_timeline_details_name_button_url_failure_and_response() -> None:
    projection = project_message(
        [
            sent(),
            clicked(t(2), button_id="track", url="https://example.com/t"),
            failed(t(3)),
            responded(t(4), event_id="p1", type="form", value={"stars": 5}, label="Rating"),
            responded(t(5), event_id="p2", type="reply", value="thanks"),
        ]
    )
    assert projection is not None
    details = {(e.status, e.at): e.detail for e in projection.detail.timeline}
    assert details[("sent", t(0))] is None
    assert details[("clicked", t(2))] == "Track (https://example.com/t)"
    assert details[("failed", t(3))] == "E_TOKEN: device token expired"
    assert details[("responded", t(4))] == 'Rating ({"stars": 5})'
    assert details[("responded", t(5))] == "thanks"


def reported(when: datetime, word: str, event_id: str = "q1") -> NotificationStatus:
    return NotificationStatus.model_validate(
        {**base(event_id, when), "status": word, "reported_by": "Twilio"}
    )


def test_a_status_in_the_senders_words_is_on_the_timeline_and_changes_nothing() -> None:
    events = [
        reported(T0, "queued"),
        sent(T0),
        delivered(t(1)),
        reported(t(2), "archived", event_id="q2"),
    ]
    projection = project_message(events)
    assert projection is not None
    assert (projection.detail.status, projection.stage) == ("delivered", 1)
    # At an equal instant the word comes right after the send; later, in its time.
    assert [(e.status, e.detail) for e in projection.detail.timeline] == [
        ("sent", None),
        ("reported", "Twilio: queued"),
        ("delivered", None),
        ("reported", "Twilio: archived"),
    ]
    assert project_message([reported(T0, "queued"), reported(t(1), "sending", "q2")]) is None


def test_a_failure_keeps_the_senders_words_and_the_dictionarys_meaning_apart() -> None:
    explained = NotificationFailed.model_validate(
        {
            **base("f9", t(1)),
            "code": "30003",
            "reason": "",
            "explanation": "Unreachable destination handset",
            "explained_by": "Twilio error dictionary",
        }
    )
    projection = project_message([sent(T0), explained])
    assert projection is not None and projection.detail.failure is not None
    failure = projection.detail.failure
    assert (failure.code, failure.reason) == ("30003", "")
    assert (failure.explanation, failure.explained_by) == (
        "Unreachable destination handset",
        "Twilio error dictionary",
    )
    assert projection.detail.timeline[-1].detail == "30003: Unreachable destination handset"


def test_duplicates_count_once_and_sent_gives_content_and_sent_at() -> None:
    projection = project_message([sent(), sent(), delivered(t(1)), delivered(t(1))])
    assert projection is not None
    assert len(projection.detail.timeline) == 2
    assert projection.detail.sent_at == t(0)
    assert projection.detail.template.variables == {"order": "A-1001"}
    assert projection.detail.content.buttons[0].label == "Track"
    assert projection.first_event_at == t(0)
    assert projection.last_event_at == t(1)


def test_message_item_previews_long_bodies() -> None:
    projection = project_message([sent()])
    assert projection is not None
    item = message_item(projection.detail, preview_length=16)
    assert item.body_preview == "Order A-1001 is…"
    assert len(item.body_preview) == 16
    assert item.template.version == 3


# -- users ------------------------------------------------------------------------------------


def fact(
    event_id: str,
    when: datetime,
    *,
    phone: str | None = None,
    nickname: str | None = None,
    source: str = "platform",
) -> UserFact:
    return UserFact(event_id, when, phone, nickname, source)


def test_latest_event_with_a_field_wins_and_absent_fields_never_erase() -> None:
    facts = [
        fact("a", t(1), phone="+14155550171", nickname="Alex", source="import:imp1"),
        fact("b", t(3), nickname="Alex Kim"),
        fact("c", t(2), phone="+14155550172", source="import:imp0"),
        fact("d", t(4), source="import:imp1"),
    ]
    profile = project_user("alex", reversed(facts), None)
    assert profile is not None
    assert profile.nickname == "Alex Kim"
    assert profile.phone_number == "+14155550172"
    assert profile.imports == ("imp0", "imp1")
    assert (profile.created_at, profile.updated_at) == (t(1), t(4))


def test_same_instant_upserts_break_ties_by_event_id() -> None:
    profile = project_user(
        "alex", [fact("b", t(1), nickname="Second"), fact("a", t(1), nickname="First")], None
    )
    assert profile is not None
    assert profile.nickname == "Second"


def test_a_user_known_only_from_messages_exists_with_what_is_known() -> None:
    profile = project_user("ghost", [], ActivitySpan(first=t(2), last=t(9)))
    assert profile is not None
    assert (profile.nickname, profile.phone_number, profile.imports) == (None, None, ())
    assert profile.created_at == t(2)
    assert profile.last_activity_at == t(9)
    assert project_user("nobody", [], None) is None


# -- search ------------------------------------------------------------------------------------


def test_fold_text_drops_case_and_accents_but_keeps_hangul() -> None:
    assert fold_text("José ÁLVAREZ") == "jose alvarez"
    assert fold_text("Nguyễn Văn") == "nguyen van"
    assert fold_text("ΕΛΈΝΗ") == "ελενη"
    assert fold_text("김철수") == "김철수"
    assert fold_text("Straße") == "strasse"
    assert fold_text("ＡＢＣ１") == "abc1"  # full-width forms


def test_fold_text_keeps_the_marks_of_other_scripts() -> None:
    # the voicing mark makes another kana; an Indic virama or vowel sign is part of the word
    assert fold_text("がっこう") == "がっこう"
    assert fold_text("नमस्ते") == "नमस्ते"


def test_nickname_tokens_cover_words_and_unspaced_scripts() -> None:
    assert nickname_tokens("José O'Brien") == {"jose", "o", "brien"}
    assert nickname_tokens("김철수 Kim") == {"김철수", "철수", "수", "kim"}
    assert nickname_tokens("王小明") == {"王小明", "小明", "明"}
    assert nickname_tokens("नमस्ते दुनिया") == {"नमस्ते", "दुनिया"}
    assert nickname_tokens("snake_case-name") == {"snake", "case", "name"}
    assert nickname_tokens(None) == set()


def test_parse_search_decides_which_ranks_apply() -> None:
    assert parse_search("   ") is None
    alex = parse_search(" Alex ")
    assert alex is not None
    assert (alex.user_id, alex.id_prefix, alex.name_words, alex.digits) == (
        "Alex",
        "alex",
        ("alex",),
        None,
    )
    assert alex.ranks() == (Rank.EXACT_ID, Rank.ID_PREFIX, Rank.NICKNAME)
    phone = parse_search("+1 415-555")
    assert phone is not None
    assert phone.user_id is None
    assert phone.digits == "1415555"
    assert phone.ranks() == (Rank.NICKNAME, Rank.PHONE)
    hangul = parse_search("김")
    assert hangul is not None
    assert hangul.ranks() == (Rank.NICKNAME,)


# -- windows -----------------------------------------------------------------------------------


def test_default_window_is_the_last_thirty_utc_days_up_to_the_end_of_today() -> None:
    window = resolve_window(since=None, until=None, now=NOW, default_days=30, max_days=366)
    assert window.until == datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC)
    assert window.since == datetime(2026, 10, 22, tzinfo=UTC)
    assert window.days()[-1] == NOW.date()
    since_only = resolve_window(
        since="2026-11-19", until=None, now=NOW, default_days=30, max_days=366
    )
    assert since_only.until == window.until
    assert len(window.days()) == 30


def test_dates_cover_whole_utc_days_and_offsets_are_normalized() -> None:
    window = resolve_window(
        since="2026-11-01", until="2026-11-03", now=NOW, default_days=30, max_days=366
    )
    assert window.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 11, 3, 23, 59, 59, 999999, tzinfo=UTC)
    assert window.days() == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert parse_bound("since", "2026-11-02T19:00:00+09:00", end_of_day=False) == datetime(
        2026, 11, 2, 10, tzinfo=UTC
    )
    # an unencoded '+' arrives as a space
    assert parse_bound("since", "2026-11-02T19:00:00 09:00", end_of_day=False) == datetime(
        2026, 11, 2, 10, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("since", "until", "name", "fragment"),
    [
        ("2026-11-05", "2026-11-01", "since", "is after until"),
        ("2025-01-01", "2026-06-01", "until", "more than 366 days apart"),
        ("yesterday", None, "since", "not an RFC 3339 date-time"),
        ("2026-02-30", None, "since", "not a real date"),
        ("2026-11-02T10:00:00", None, "since", "has no time zone"),
        ("9999-12-31T23:00:00-05:00", None, "since", "outside the years 1 to 9999"),
    ],
)
def test_bad_windows_say_what_is_wrong(
    since: str, until: str | None, name: str, fragment: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        resolve_window(since=since, until=until, now=NOW, default_days=30, max_days=366)
    assert caught.value.name == name
    assert fragment in caught.value.message


def test_windows_at_the_ends_of_the_calendar_do_not_overflow() -> None:
    early = resolve_window(since=None, until="0001-01-05", now=NOW, default_days=30, max_days=366)
    assert early.since == datetime(1, 1, 1, tzinfo=UTC)
    late = resolve_window(
        since="9999-12-01", until="9999-12-31", now=NOW, default_days=30, max_days=366
    )
    assert late.until == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with pytest.raises(InvalidParameter, match="is after until"):
        resolve_window(
            since="9999-12-01", until="9999-11-01", now=NOW, default_days=30, max_days=366
        )


def test_a_full_leap_year_window_is_allowed() -> None:
    window = resolve_window(
        since="2028-01-01", until="2028-12-31", now=NOW, default_days=30, max_days=366
    )
    assert len(window.days()) == 366


def test_ts_key_sorts_like_time() -> None:
    early = datetime(2026, 11, 2, 10, 0, 0, 5, tzinfo=UTC)
    late = datetime.fromisoformat("2026-11-02T19:00:01+09:00")
    assert ts_key(early) == "2026-11-02T10:00:00.000005Z"
    assert ts_key(late) == "2026-11-02T10:00:01.000000Z"
    assert ts_key(early) < ts_key(late)


# -- stats -------------------------------------------------------------------------------------


def test_rates_round_to_four_places_and_are_null_without_a_denominator() -> None:
    assert rate(2, 3) == 0.6667
    assert rate(0, 0) is None
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 23, tzinfo=UTC))
    stats = build_user_stats(
        StatsRows(totals=Counts(sent=3, delivered=0), last_sent_at=None, last_engaged_at=None),
        window,
    )
    assert stats.delivery_rate == 0.0
    assert (stats.read_rate, stats.click_rate, stats.response_rate) == (None, None, None)
    assert [d.date for d in stats.daily] == [date(2026, 11, 1), date(2026, 11, 2)]
    assert all(d.sent == 0 for d in stats.daily)


# -- filters, cursors, CSV ---------------------------------------------------------------------


def test_message_filters_name_the_allowed_values() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_message_filter(status="opened", channel=None, template=None, since=None, until=None)
    assert caught.value.allowed == ("sent", "delivered", "read", "clicked", "failed")
    assert "sent, delivered, read, clicked, failed" in caught.value.message
    with pytest.raises(InvalidParameter) as caught:
        parse_message_filter(status=None, channel="fax", template=None, since=None, until=None)
    assert caught.value.allowed == ("in_app", "push", "sms", "alimtalk", "whatsapp", "email")
    with pytest.raises(InvalidParameter):
        parse_message_filter(status=None, channel=None, template="a b", since=None, until=None)
    blank = parse_message_filter(status="", channel="", template="", since="", until="")
    assert (blank.status, blank.channel, blank.template, blank.since) == (None, None, None, None)


def test_cursors_of_another_list_are_rejected() -> None:
    with pytest.raises(InvalidCursor):
        MessagePosition.load({"k": "order_shipped"})
    with pytest.raises(InvalidCursor):
        SearchPosition.load({"r": 9, "u": "alex"})
    with pytest.raises(InvalidCursor):
        SearchPosition.load({"r": True, "u": "alex"})


@pytest.mark.parametrize("instant", ["yesterday", "2026-11-02T10:00:00", "", "2026-13-01T00:00Z"])
def test_a_cursor_instant_must_be_an_instant(instant: str) -> None:
    with pytest.raises(InvalidCursor):
        MessagePosition.load({"s": instant, "m": "m1"})
    with pytest.raises(InvalidCursor):
        ActivityPosition.load({"a": instant, "u": "alex"})


def test_a_cursor_instant_is_rewritten_in_the_form_the_stores_compare() -> None:
    # SQLite compares ts_key text: "...+02:00" or a missing fraction must not reorder it
    position = MessagePosition.load({"s": "2026-11-02T12:00:00+02:00", "m": "m1"})
    assert position.sent_at == "2026-11-02T10:00:00.000000Z"
    assert ActivityPosition.load({"a": "2026-11-02T10:00Z", "u": "a"}).at == position.sent_at
    assert SearchPosition.load(SearchPosition(Rank.PHONE, "bo").dump()) == SearchPosition(
        Rank.PHONE, "bo"
    )


@pytest.mark.parametrize("value", ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"])
def test_formula_cells_are_quoted(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


def test_csv_rows_are_spreadsheet_safe_and_quoted() -> None:
    message = sent()
    dangerous = message.model_copy(
        update={
            "content": message.content.model_copy(
                update={"title": '=HYPERLINK("http://x")', "body": 'line1\nline2, "quoted"'}
            )
        }
    )
    projection = project_message([dangerous, failed(t(1), code="-E1")])
    assert projection is not None
    text = csv_header() + csv_rows([projection.detail])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["message_id", "sent_at", "channel"]
    assert rows[1] == [
        "m1",
        "2026-11-02T10:00:00Z",
        "push",
        "order_shipped",
        "3",
        "failed",
        '\'=HYPERLINK("http://x")',
        'line1\nline2, "quoted"',
        "'-E1",
        "device token expired",
        "",
    ]


# -- template versions: the one precedence rule both stores project by --------------------


def defined(when: datetime, event_id: str, name: str) -> TemplateUpserted:
    return TemplateUpserted.model_validate(
        {
            "event_id": event_id,
            "app_id": "acme",
            "occurred_at": when,
            "template": {
                "key": "order_shipped",
                "name": name,
                "version": 3,
                "channels": {},
                "variable_schema": [],
            },
        }
    )


def test_a_definition_beats_any_snapshot_then_the_later_event_wins() -> None:
    early, late = defined(t(1), "d1", "Early"), defined(t(2), "d2", "Late")
    snapshot = sent(t(9), "s9")  # later than both, but only a snapshot
    for order in ([early, late, snapshot], [snapshot, late, early], [late, snapshot, early]):
        (version,) = best_versions(order)
        assert (version.name, version.origin) == ("Late", origin(late))
    assert origin(snapshot) < origin(early) < origin(late)


def test_a_snapshot_describes_a_version_nobody_defined() -> None:
    (version,) = best_versions([sent(t(1), "s1"), sent(t(2), "s2")])
    assert (version.key, version.version, version.name) == ("order_shipped", 3, "Order shipped")
    assert version.channels == {} and version.origin == origin(sent(t(2), "s2"))
    # The same instant: the greater event_id decides, whatever the order they came in.
    same = [sent(t(5), "a"), sent(t(5), "b")]
    assert best_versions(same) == best_versions(same[::-1])
