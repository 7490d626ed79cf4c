"""An admin erases a user from the user's page, confirming with the user id; other roles never
see the action."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from insights.demo_data import ALEX_USER_ID
from tests.browser.dashboard import Login, sign_in

pytestmark = pytest.mark.e2e

USER = "erase-in-browser"


def imported(api: httpx.Client) -> None:
    """A user of its own: the demo's users, which other tests read, all stay."""
    csv = f"user_id,phone_number,nickname\n{USER},+14155550166,Gone Soon\n"
    started = api.post("/api/v1/imports", files={"file": ("one.csv", csv, "text/csv")})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/imports/{started.json()['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the import did not complete"
        time.sleep(0.1)


def test_an_admin_erases_a_user_after_typing_their_id(signed_in: Page, api: httpx.Client) -> None:
    imported(api)
    page = signed_in
    page.goto(f"/users/{USER}")
    expect(page.get_by_role("heading", name=USER, level=1)).to_be_visible()
    page.get_by_role("button", name="Erase user").click()

    confirm = page.get_by_role("button", name=f"Erase {USER}")
    expect(confirm).to_be_disabled()
    typed = page.get_by_label("Type")
    typed.fill(USER[:-1])
    expect(confirm).to_be_disabled()
    typed.fill(USER)
    confirm.click()

    expect(page.get_by_role("status").filter(has_text=f"User {USER} was erased.")).to_be_visible()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    assert api.get(f"/api/v1/users/{USER}").status_code == 404
    trail = api.get("/api/v1/audit", params={"action": "user.erase"}).json()["items"]
    assert trail[0]["user_id"] == USER and trail[0]["actor"].startswith("member:")

    page.goto("/audit")
    expect(page.get_by_text("Erased user").first).to_be_visible()


@pytest.mark.parametrize("role", ["agent", "analyst"])
def test_other_roles_never_see_the_erase(page: Page, logins: dict[str, Login], role: str) -> None:
    sign_in(page, logins[role])
    page.goto(f"/users/{ALEX_USER_ID}")
    expect(page.get_by_role("heading", name="Statistics")).to_be_visible()
    expect(page.get_by_role("button", name="Erase user")).to_have_count(0)
    expect(page.get_by_role("heading", name="Erase")).to_have_count(0)
