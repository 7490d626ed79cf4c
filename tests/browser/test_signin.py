"""Signing in with an API key, a refused key, and signing out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import sign_in

pytestmark = pytest.mark.e2e


def test_a_wrong_key_is_refused(page: Page) -> None:
    page.goto("/signin")
    page.get_by_label("API key").fill("uik_not-a-key-of-this-server")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("refused", re.IGNORECASE))
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("heading", name="Users", exact=True)).to_have_count(0)


def test_a_page_asked_for_before_signing_in_shows_sign_in(page: Page) -> None:
    page.goto("/users/alex")
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.get_by_role("heading", name="alex", exact=True)).to_have_count(0)


def test_a_good_key_lands_on_users_and_sign_out_forgets_it(page: Page, api_key: str) -> None:
    sign_in(page, api_key)
    nav = page.get_by_role("navigation")
    for name in ("Users", "Imports", "Templates"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_label("API key")).to_be_visible()

    page.reload()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto("/users")
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => JSON.stringify(sessionStorage)").find("uik_") == -1


def test_an_address_no_page_has_says_so_with_a_way_back(signed_in: Page) -> None:
    answer = signed_in.goto("/no-such-page")
    assert answer is not None and answer.status == 404
    expect(signed_in.get_by_role("heading", name="Page not found")).to_be_visible()
    signed_in.get_by_role("link", name="Search users").click()
    expect(signed_in).to_have_url(re.compile(r"/users$"))
