"""Single sign-on in the browser: the sign-in page's button, Keycloak's own login page, and the
way back, signed in or told why not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.checks import SCREENSHOTS
from tests.browser.conftest import DESKTOP
from tests.conftest import Server, cli, start_server, stop_server
from tests.sso.keycloak import PASSWORDS, UNVERIFIED, USERNAMES, VERIFIED

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sso.keycloak import Realm

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sso_demo(
    dashboard_assets: Path, tmp_path_factory: pytest.TempPathFactory, sso_realm: Realm
) -> Iterator[Server]:
    """`insights dev --demo` signing people in at the test realm; Ann is an agent of the demo."""
    data_dir = tmp_path_factory.mktemp("browser-sso")
    server = start_server(data_dir, "--demo", env=sso_realm.settings_env(name="Keycloak"))
    cli(
        "members", "add", "--app", "demo", "--email", VERIFIED, "--role", "agent", data_dir=data_dir
    )
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def sso_page(browser: Browser, sso_demo: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=sso_demo.url, viewport=DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in_at_keycloak(page: Page, email: str) -> None:
    page.get_by_role("link", name="Sign in with Keycloak").click()
    page.get_by_label("Username or email").fill(USERNAMES[email])
    page.get_by_label("Password", exact=True).fill(PASSWORDS[email])
    page.get_by_role("button", name="Sign In").click()


def test_a_member_signs_in_with_the_organizations_provider(sso_page: Page) -> None:
    page = sso_page
    page.goto("/signin")
    expect(page.get_by_role("link", name="Sign in with Keycloak")).to_be_visible()
    page.get_by_label("App").fill("demo")
    page.screenshot(path=SCREENSHOTS / "signin-sso.png", full_page=True)
    sign_in_at_keycloak(page, VERIFIED)
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(page.get_by_text(VERIFIED)).to_be_visible()


def test_the_button_asks_for_the_app_first(sso_page: Page) -> None:
    page = sso_page
    page.goto("/signin")
    page.get_by_role("link", name="Sign in with Keycloak").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the app first")
    expect(page).to_have_url(re.compile(r"/signin$"))


def test_a_refused_sign_in_says_why_on_the_sign_in_page(sso_page: Page) -> None:
    page = sso_page
    page.goto("/signin")
    page.get_by_label("App").fill("demo")
    sign_in_at_keycloak(page, UNVERIFIED)
    expect(page).to_have_url(re.compile(r"/signin\?sso_error=unverified$"))
    expect(page.get_by_role("alert")).to_contain_text("has not verified your email")
    expect(page.get_by_label("Password")).to_be_visible()
