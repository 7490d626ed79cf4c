"""A user's page: profile, statistics over a window, and the filtered, paged message list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from insights.demo_data import ALEX_NICKNAME, ALEX_USER_ID
from tests.browser.dashboard import (
    cell,
    channel_name,
    count,
    exactly,
    message_links,
    parse_csv,
    read_csv,
)
from tests.dates import on_one_utc_day

pytestmark = pytest.mark.e2e

CARDS = ("sent", "delivered", "read", "clicked", "failed", "responded")
RATES = {
    "delivery_rate": "Delivery rate",
    "read_rate": "Read rate",
    "click_rate": "Click rate",
    "response_rate": "Response rate",
}


def window_since(days: int) -> str:
    """The first day of the `days` UTC days that end today (the API's own 30-day default)."""
    return (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat()


def user_stats(api: httpx.Client, user_id: str, days: int) -> dict[str, Any]:
    answer = api.get(f"/api/v1/users/{user_id}", params={"since": window_since(days)})
    answer.raise_for_status()
    stats: dict[str, Any] = answer.json()["stats"]
    return stats


def message_ids(api: httpx.Client, user_id: str, **filters: str) -> list[str]:
    answer = api.get(f"/api/v1/users/{user_id}/messages", params={**filters, "limit": 200})
    answer.raise_for_status()
    assert answer.json()["next_cursor"] is None
    return [item["message_id"] for item in answer.json()["items"]]


def percent(rate: float) -> str:
    """A rate as the dashboard writes it: a percentage with at most one decimal."""
    value = (Decimal(rate) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{value.normalize():f}%"


def open_user(page: Page, user_id: str) -> None:
    page.goto(f"/users/{user_id}")
    expect(page.get_by_role("heading", name=user_id, exact=True)).to_be_visible()


def expect_cards(page: Page, stats: dict[str, Any]) -> None:
    for field in CARDS:
        card = page.get_by_role("group", name=field.capitalize(), exact=True)
        expect(card).to_have_text(count(stats[field]))
    for field, label in RATES.items():
        card = page.get_by_role("group", name=label, exact=True)
        if stats[field] is None:
            expect(card).not_to_contain_text("%")
        else:
            expect(card).to_contain_text(percent(stats[field]))


def expect_breakdowns(page: Page, stats: dict[str, Any]) -> None:
    templates = page.get_by_role("table", name="By template")
    for row in stats["by_template"]:
        shown = templates.get_by_role("row").filter(
            has=page.get_by_role("link", name=exactly(row["name"]))
        )
        expect_counts_in_row(templates, shown, row)
    channels = page.get_by_role("table", name="By channel")
    expect(channels.get_by_role("row")).to_have_count(len(stats["by_channel"]) + 1)
    for row in stats["by_channel"]:
        shown = channels.get_by_role("row").filter(has_text=channel_name(row["channel"]))
        expect_counts_in_row(channels, shown, row)


def expect_counts_in_row(table: Locator, row: Locator, counts: dict[str, Any]) -> None:
    for field in CARDS:
        expect(cell(table, row, field.capitalize())).to_have_text(count(counts[field]))


def expect_messages(page: Page, ids: list[str]) -> None:
    """The messages table links to exactly these messages, in this order."""
    links = message_links(page)
    expect(links).to_have_count(len(ids))
    for index, message_id in enumerate(ids):
        expect(links.nth(index)).to_have_attribute(
            "href", f"/users/{ALEX_USER_ID}/messages/{message_id}"
        )


@pytest.fixture
def alex(signed_in: Page) -> Page:
    open_user(signed_in, ALEX_USER_ID)
    return signed_in


def test_profile_cards_and_breakdowns_match_the_api(alex: Page, api: httpx.Client) -> None:
    profile = api.get(f"/api/v1/users/{ALEX_USER_ID}").json()
    facts = alex.get_by_role("main")
    expect(facts).to_contain_text(ALEX_NICKNAME)
    expect(facts).to_contain_text(profile["phone_number"])
    expect(facts).to_contain_text(profile["phone_country"])

    def check() -> None:
        stats = user_stats(api, ALEX_USER_ID, 30)
        assert stats == api.get(f"/api/v1/users/{ALEX_USER_ID}").json()["stats"], (
            "the API's default window is the 30 days ending today"
        )
        open_user(alex, ALEX_USER_ID)
        expect_cards(alex, stats)
        expect_breakdowns(alex, stats)

    on_one_utc_day(check)
    expect(alex.get_by_role("img", name="Sent, read and clicked per day")).to_be_visible()


@pytest.mark.parametrize(("choice", "days"), [("7 days", 7), ("90 days", 90), ("All", 366)])
def test_the_window_changes_the_figures_as_the_api_does(
    alex: Page, api: httpx.Client, choice: str, days: int
) -> None:

    def check() -> dict[str, Any]:
        open_user(alex, ALEX_USER_ID)
        expect_cards(alex, user_stats(api, ALEX_USER_ID, 30))
        alex.get_by_label("Window", exact=True).select_option(label=choice)
        stats = user_stats(api, ALEX_USER_ID, days)
        expect_cards(alex, stats)
        expect_breakdowns(alex, stats)
        return stats

    stats = on_one_utc_day(check)
    if days == 7:
        assert stats["sent"] != user_stats(api, ALEX_USER_ID, 30)["sent"], (
            "the demo should have messages older than a week, or this shows no change"
        )


def test_filters_narrow_the_list_as_the_api_does(alex: Page, api: httpx.Client) -> None:
    alex.get_by_label("Status", exact=True).select_option("failed")
    failed = message_ids(api, ALEX_USER_ID, status="failed")
    assert 1 < len(failed) < len(message_ids(api, ALEX_USER_ID))
    expect_messages(alex, failed)

    alex.get_by_label("Channel", exact=True).select_option("push")
    failed_push = message_ids(api, ALEX_USER_ID, status="failed", channel="push")
    assert 0 < len(failed_push) < len(failed)
    expect_messages(alex, failed_push)

    alex.get_by_label("Status", exact=True).select_option("")
    expect_messages(alex, message_ids(api, ALEX_USER_ID, channel="push"))


def test_next_and_previous_page_walk_the_list(alex: Page, api: httpx.Client) -> None:
    everything = message_ids(api, ALEX_USER_ID)
    links = message_links(alex)
    expect(links.first).to_be_visible()
    size = links.count()
    assert size < len(everything), "the demo user needs more messages than one page"
    expect_messages(alex, everything[:size])
    expect(alex.get_by_role("button", name="Previous page")).to_be_disabled()

    alex.get_by_role("button", name="Next page").click()
    expect_messages(alex, everything[size : 2 * size])
    alex.get_by_role("button", name="Previous page").click()
    expect_messages(alex, everything[:size])


def test_export_csv_downloads_the_users_messages(
    alex: Page, api: httpx.Client, tmp_path: Path
) -> None:
    with alex.expect_download() as download:
        alex.get_by_role("link", name="Export CSV").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".csv"
    rows = read_csv(saved)
    assert [row["message_id"] for row in rows] == message_ids(api, ALEX_USER_ID)
    expected = api.get(f"/api/v1/users/{ALEX_USER_ID}/messages", params={"format": "csv"})
    assert rows == parse_csv(expected.text)
