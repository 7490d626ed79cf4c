"""The dashboard and the API reference work under their Content-Security-Policy: no page breaks
a directive (a blocked script or style would show here as a violation), and the reference
renders the API's operations from files the product serves."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import Login, sign_in

pytestmark = pytest.mark.e2e

# Records every violation the page reports, from before its first script runs.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("window.__violations")
    return found


def test_the_dashboard_breaks_no_directive(page: Page, admin: Login) -> None:
    page.add_init_script(RECORD_VIOLATIONS)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, admin)
    for path, heading in (
        ("/imports", "Imports"),
        ("/templates", "Templates"),
        ("/users", "Users"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert violations(page) == [], path
    origin = page.url.split("/", 3)[:3]
    assert all(url.split("/", 3)[:3] == origin or url.startswith("data:") for url in requests)


def test_the_api_reference_renders_under_the_policy(page: Page) -> None:
    page.add_init_script(RECORD_VIOLATIONS)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/api/docs")
    expect(page.get_by_text("/api/v1/users/{user_id}", exact=True).first).to_be_visible()
    assert violations(page) == []
    origin = page.url.split("/", 3)[:3]
    assert [url for url in requests if url.split("/", 3)[:3] != origin] == []
