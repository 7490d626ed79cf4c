"""Finding a user on the Users page by user ID, nickname or phone, as the API ranks them."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from insights.demo_data import ALEX_PHONE, ALEX_USER_ID
from tests.browser.dashboard import api_search, exactly, expect_results, result_rows, search

pytestmark = pytest.mark.e2e

CJK_OR_HANGUL = ("CJK", "HANGUL", "HIRAGANA", "KATAKANA")


def first_user_with_cjk_nickname(api: httpx.Client) -> dict[str, Any]:
    params: dict[str, str | int] = {"q": "", "limit": 200}
    while True:
        answer = api.get("/api/v1/users", params=params).json()
        for user in answer["items"]:
            first = (user["nickname"] or " ")[0]
            if unicodedata.name(first, "").startswith(CJK_OR_HANGUL):
                found: dict[str, Any] = user
                return found
        if not answer["next_cursor"]:
            pytest.fail("the demo app has no user whose nickname is written in CJK or Hangul")
        params["cursor"] = answer["next_cursor"]


def test_before_typing_the_page_says_what_to_search_by(signed_in: Page) -> None:
    expect(signed_in.get_by_text("Search by user ID, nickname or phone")).to_be_visible()
    expect(result_rows(signed_in)).to_have_count(0)


def test_an_exact_user_id_comes_first_whatever_its_case(signed_in: Page, api: httpx.Client) -> None:
    search(signed_in, ALEX_USER_ID.upper())
    expected = api_search(api, ALEX_USER_ID.upper())
    assert expected[0]["user_id"] == ALEX_USER_ID
    expect_results(signed_in, expected)


def test_nickname_word_prefixes_find_the_user(signed_in: Page, api: httpx.Client) -> None:
    query = "alex ki"  # "Alex Kim": every word of the query starts a word of the nickname
    search(signed_in, query)
    expected = api_search(api, query)
    assert ALEX_USER_ID in [found["user_id"] for found in expected]
    expect_results(signed_in, expected)


def test_a_non_latin_nickname_prefix_finds_its_user(signed_in: Page, api: httpx.Client) -> None:
    user = first_user_with_cjk_nickname(api)
    query = user["nickname"].split()[0][:2]
    search(signed_in, query)
    expected = api_search(api, query)
    assert user["user_id"] in [found["user_id"] for found in expected]
    expect_results(signed_in, expected)


def test_phone_digits_find_the_user(signed_in: Page, api: httpx.Client) -> None:
    digits = ALEX_PHONE.removeprefix("+")
    search(signed_in, digits)
    expected = api_search(api, digits)
    assert expected[0]["user_id"] == ALEX_USER_ID
    expect_results(signed_in, expected)


def test_a_search_without_matches_says_so(signed_in: Page) -> None:
    search(signed_in, f"nobody-{uuid.uuid4().hex[:12]}")
    expect(signed_in.get_by_text("No users match")).to_be_visible()
    expect(result_rows(signed_in)).to_have_count(0)


def test_type_then_open_a_result_with_the_keyboard(signed_in: Page) -> None:
    page = signed_in
    page.get_by_label("Search users").focus()
    page.keyboard.type(ALEX_USER_ID)
    link = result_rows(page).first.get_by_role("link", name=exactly(ALEX_USER_ID))
    expect(link).to_be_visible()
    for _ in range(20):
        if link.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail(f"Tab never reached the link {ALEX_USER_ID!r} in the results")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/users/{ALEX_USER_ID}$"))
    expect(page.get_by_role("heading", name=ALEX_USER_ID, exact=True)).to_be_visible()
