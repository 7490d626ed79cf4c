"""At phone size (390x844) the main pages fit the screen's width: nothing scrolls sideways
except the tables, which scroll inside their own frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.checks import horizontal_overflow, screenshot
from tests.browser.dashboard import Login
from tests.browser.views import MAIN, VIEWS, Session
from tests.conftest import Server

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser, demo: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=demo.url, viewport=PHONE)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("view", MAIN)
def test_the_page_fits_a_phone_screen(
    phone: Page, admin: Login, api: httpx.Client, tmp_path: Path, view: str
) -> None:
    VIEWS[view](Session(phone, admin, api, tmp_path))
    screenshot(phone, f"{view}-phone")
    overflow = horizontal_overflow(phone)
    assert overflow == 0, f"{view} is {overflow} px wider than a 390 px screen"
