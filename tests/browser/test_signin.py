"""Signing in as a member with a password, refusals, signing out, and what each role sees."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from playwright.sync_api import Page, expect

from insights.demo_data import ALEX_USER_ID
from tests.browser.dashboard import Login, fill_sign_in, sign_in

pytestmark = pytest.mark.e2e

PAGES = ("Users", "Imports", "Templates", "Audit", "Members", "Sources", "Settings")
# What the navigation links for each role: an analyst never sees a link it cannot open, and a
# page it types the address of says it is not open to its role.
LINKED = {
    "admin": PAGES,
    "agent": ("Users", "Templates"),
    "analyst": ("Users", "Templates"),
}


def expect_navigation(page: Page, role: str) -> None:
    nav = page.get_by_role("navigation", name="Main")
    for name in PAGES:
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible() if name in LINKED[role] else expect(link).to_have_count(0)


def test_a_wrong_password_is_refused(page: Page, admin: Login) -> None:
    page.goto("/signin")
    fill_sign_in(page, replace(admin, password="not-the-password"))
    expect(page.get_by_role("alert")).to_contain_text("do not match a member")
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("heading", name="Users", exact=True)).to_have_count(0)


def test_a_page_asked_for_before_signing_in_shows_sign_in_then_opens(
    page: Page, admin: Login
) -> None:
    page.goto(f"/users/{ALEX_USER_ID}")
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("heading", name=ALEX_USER_ID, exact=True)).to_have_count(0)
    fill_sign_in(page, admin)
    expect(page.get_by_role("heading", name=ALEX_USER_ID, exact=True)).to_be_visible()


def test_the_session_is_an_httponly_cookie_and_sign_out_ends_it(page: Page, admin: Login) -> None:
    sign_in(page, admin)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "insights_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "insights_session" not in page.evaluate("() => document.cookie")
    expect_navigation(page, "admin")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto("/users")
    expect(page.get_by_label("Password")).to_be_visible()
    # the server ended the session: the old cookie no longer signs anyone in
    page.context.add_cookies([{**cookie}])  # type: ignore[list-item]
    page.goto("/users")
    expect(page.get_by_label("Password")).to_be_visible()


def test_an_admin_sees_every_page_and_who_viewed_a_user(page: Page, admin: Login) -> None:
    sign_in(page, admin)
    expect_navigation(page, "admin")
    page.goto(f"/users/{ALEX_USER_ID}")
    viewed = page.get_by_role("table", name="Latest views of this user")
    expect(viewed).to_contain_text(f"member:{admin.email}")
    page.get_by_role("link", name="Members", exact=True).click()
    expect(page.get_by_role("table", name="Members of this app")).to_contain_text(
        "agent@example.com"
    )
    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("table", name="Audit trail")).to_contain_text("Viewed profile")


def test_an_agent_reads_messages_and_reveals_a_phone_with_a_reason(
    page: Page, logins: dict[str, Login]
) -> None:
    sign_in(page, logins["agent"])
    expect_navigation(page, "agent")
    page.goto(f"/users/{ALEX_USER_ID}")
    profile = page.get_by_role("region", name="Profile")
    expect(profile.locator(".phone")).to_contain_text("*")
    expect(page.get_by_role("heading", name="Viewed by")).to_have_count(0)
    profile.get_by_role("button", name="Reveal").click()
    profile.get_by_label(re.compile("Why do you need")).fill("Customer asked us to confirm it")
    profile.get_by_role("button", name="Show number").click()
    expect(profile.locator(".phone.revealed")).to_have_text(re.compile(r"^\+\d{8,15}$"))
    for path in ("/audit", "/sources"):
        page.goto(path)
        expect(page.get_by_role("heading", name="Not open to your role")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Your role (agent) cannot open this page")


def test_an_analyst_sees_statistics_without_phones_or_messages(
    page: Page, logins: dict[str, Login]
) -> None:
    sign_in(page, logins["analyst"])
    expect_navigation(page, "analyst")
    page.goto(f"/users/{ALEX_USER_ID}")
    expect(page.get_by_role("heading", name="Statistics")).to_be_visible()
    profile = page.get_by_role("region", name="Profile")
    expect(profile).to_contain_text("Not shown to your role (analyst)")
    expect(profile.get_by_role("button", name="Reveal")).to_have_count(0)
    expect(page.get_by_role("main")).to_contain_text("does not show message content")
    expect(page.get_by_role("table", name=re.compile("Messages"))).to_have_count(0)
    for path in ("/imports", "/members", "/audit", "/sources", "/settings"):
        page.goto(path)
        expect(page.get_by_role("heading", name="Not open to your role")).to_be_visible()
        expect(page.get_by_role("region", name="Twilio")).to_have_count(0)


def test_an_address_no_page_has_says_so_with_a_way_back(signed_in: Page) -> None:
    answer = signed_in.goto("/no-such-page")
    assert answer is not None and answer.status == 404
    expect(signed_in.get_by_role("heading", name="Page not found")).to_be_visible()
    signed_in.get_by_role("link", name="Search users").click()
    expect(signed_in).to_have_url(re.compile(r"/users$"))
