"""axe-core finds no serious or critical problem on any page, in the states people see; each
page is saved as a screenshot at 1280x800."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.checks import assert_accessible, screenshot
from tests.browser.dashboard import Login
from tests.browser.views import VIEWS, Session

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_page_has_no_serious_accessibility_problem(
    page: Page, admin: Login, api: httpx.Client, tmp_path: Path, view: str
) -> None:
    VIEWS[view](Session(page, admin, api, tmp_path))
    screenshot(page, view)
    assert_accessible(page)
