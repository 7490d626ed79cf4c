"""Each page of the dashboard opened in a state worth looking at, with its content loaded."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from insights.demo_data import ALEX_USER_ID
from tests.browser.dashboard import (
    Login,
    csv_text,
    fill_sign_in,
    imported,
    message_links,
    open_import_dialog,
    result_rows,
    search,
    sign_in,
)


@dataclass(frozen=True)
class Session:
    page: Page
    login: Login
    api: httpx.Client
    tmp_path: Path


def loaded(page: Page) -> None:
    expect(page.get_by_role("status").filter(has_text="Loading…")).to_have_count(0)


def sign_in_page(session: Session) -> None:
    session.page.goto("/signin")
    expect(session.page.get_by_label("Password")).to_be_visible()


def refused_sign_in(session: Session) -> None:
    sign_in_page(session)
    fill_sign_in(session.page, replace(session.login, password="not-the-password"))
    expect(session.page.get_by_role("alert")).to_be_visible()


def users(session: Session) -> None:
    sign_in(session.page, session.login)
    search(session.page, "kim")
    expect(result_rows(session.page).first).to_be_visible()
    loaded(session.page)


def import_dialog(session: Session) -> None:
    sign_in(session.page, session.login)
    rows = [["user_id", "phone_number", "nickname"]]
    rows += [[f"look-{i}", f"+1415555{200 + i:04}", f"Look {i}"] for i in range(8)]
    rows += [["look-bad", "+1 415-555-0299", "Bad phone"], ["look bad", "+14155550298", ""]]
    file = session.tmp_path / "users-with-mistakes.csv"
    file.write_text(csv_text(rows), encoding="utf-8")
    dialog = open_import_dialog(session.page)
    dialog.get_by_label("CSV file").set_input_files(file)
    expect(imported(dialog)).to_be_visible()
    expect(dialog.get_by_role("table", name="Rejected rows").get_by_role("row")).to_have_count(3)


def imports(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/imports")
    expect(session.page.get_by_role("table").get_by_role("link").first).to_be_visible()
    loaded(session.page)


def import_report(session: Session) -> None:
    body = csv_text([["user_id", "phone_number"], ["report-1", "+14155550301"], ["r 2", "1"]])
    started = session.api.post(
        "/api/v1/imports", files={"file": ("report.csv", body.encode(), "text/csv")}
    )
    assert started.status_code == 202, started.text
    sign_in(session.page, session.login)
    session.page.goto(f"/imports/{started.json()['id']}")
    expect(session.page.get_by_role("table", name="Rejected rows")).to_be_visible()
    loaded(session.page)


def user(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto(f"/users/{ALEX_USER_ID}")
    expect(session.page.get_by_role("img", name="Sent, read and clicked per day")).to_be_visible()
    expect(message_links(session.page).first).to_be_visible()
    loaded(session.page)


def message(session: Session) -> None:
    failed = session.api.get(
        f"/api/v1/users/{ALEX_USER_ID}/messages", params={"status": "failed", "channel": "email"}
    ).json()["items"]
    sign_in(session.page, session.login)
    session.page.goto(f"/messages/{failed[0]['message_id']}")
    expect(session.page.get_by_role("region", name="Failure")).to_be_visible()
    loaded(session.page)


def templates(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/templates")
    expect(session.page.get_by_role("table").get_by_role("link").first).to_be_visible()
    loaded(session.page)


def template(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/templates/order_shipped")
    expect(session.page.get_by_role("region", name=re.compile(r"^Version 1\b"))).to_be_visible()
    loaded(session.page)


def audit(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto(f"/users/{ALEX_USER_ID}")
    expect(session.page.get_by_role("heading", name="Viewed by")).to_be_visible()
    session.page.goto("/audit")
    expect(session.page.get_by_role("table", name="Audit trail")).to_be_visible()
    loaded(session.page)


def members(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/members")
    expect(session.page.get_by_role("table", name="Members of this app")).to_be_visible()
    loaded(session.page)


def sources(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/sources")
    expect(session.page.get_by_role("region", name="Twilio")).to_be_visible()
    loaded(session.page)


def settings(session: Session) -> None:
    sign_in(session.page, session.login)
    session.page.goto("/settings")
    expect(session.page.get_by_role("heading", name="Message retention")).to_be_visible()
    expect(session.page.get_by_test_id("retention-current")).to_be_visible()
    loaded(session.page)


VIEWS: dict[str, Callable[[Session], None]] = {
    "signin": sign_in_page,
    "signin-refused": refused_sign_in,
    "users": users,
    "import-dialog": import_dialog,
    "imports": imports,
    "import-report": import_report,
    "user": user,
    "message": message,
    "templates": templates,
    "template": template,
    "audit": audit,
    "members": members,
    "sources": sources,
    "settings": settings,
}

# The pages people use most, checked at phone size too.
MAIN = ("signin", "users", "imports", "user", "message", "templates")
