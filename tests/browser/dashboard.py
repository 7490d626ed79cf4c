"""The dashboard as a person uses it, by the accessible names it promises (roles and labels)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

# The dashboard shows the first page of results the API gives by default.
API_PAGE = 20


@dataclass(frozen=True)
class Login:
    """A member's sign-in, as `insights members add` made it."""

    app: str
    email: str
    password: str
    role: str


def fill_sign_in(page: Page, login: Login) -> None:
    page.get_by_label("App").fill(login.app)
    page.get_by_label("Email").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Page, login: Login) -> None:
    page.goto("/signin")
    fill_sign_in(page, login)
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/users$"))


def count(n: int) -> re.Pattern[str]:
    """Text that shows the number n on its own (not inside a larger number), 1,234 or 1234."""
    digits = f"{n:,}".replace(",", "[,\u202f\u00a0 ]?")
    return re.compile(rf"(?<![\d.,]){digits}(?![.,]?\d)")


def exactly(text: str) -> re.Pattern[str]:
    """A name equal to `text`, ignoring the whitespace around it."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def channel_name(channel: str) -> re.Pattern[str]:
    """A channel as people read it: "in_app" as "In-app" or "In app", "sms" as "SMS"."""
    return re.compile(rf"^\s*{channel.replace('_', '.?')}(?![a-z])", re.IGNORECASE)


def search(page: Page, query: str) -> None:
    box = page.get_by_label("Search users")
    box.fill(query)


def result_rows(page: Page) -> Locator:
    return page.get_by_role("table").get_by_role("row").filter(has=page.get_by_role("link"))


def api_search(api: httpx.Client, query: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/users", params={"q": query, "limit": API_PAGE})
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def expect_results(page: Page, expected: Sequence[dict[str, Any]]) -> None:
    """The results table lists these users, in this order, each row with its nickname and
    masked phone."""
    rows = result_rows(page)
    if expected:
        expect(rows.first.get_by_role("link", name=exactly(expected[0]["user_id"]))).to_be_visible()
    expect(rows).to_have_count(len(expected))
    for index, user in enumerate(expected):
        row = rows.nth(index)
        expect(row.get_by_role("link", name=exactly(user["user_id"]))).to_be_visible()
        if user["nickname"]:
            expect(row).to_contain_text(user["nickname"])
        expect(row).to_contain_text(user["phone_number"])


def message_links(page: Page) -> Locator:
    """The links of the user page's message rows: each opens
    /users/:user_id/messages/:message_id."""
    return page.get_by_role("table").locator("a[href^='/users/'][href*='/messages/']")


def cell(table: Locator, row: Locator, column: str) -> Locator:
    """The cell of `row` under the column header named `column`."""
    expect(table.get_by_role("columnheader").first).to_be_visible()
    headers = [text.strip() for text in table.get_by_role("columnheader").all_inner_texts()]
    assert column in headers, f"no column {column!r} in {headers}"
    return row.locator(":scope > th, :scope > td").nth(headers.index(column))


def row_with_link(table: Locator, name: str) -> Locator:
    return table.get_by_role("row").filter(has=table.page.get_by_role("link", name=exactly(name)))


def csv_text(rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    path.write_text(csv_text(rows), encoding="utf-8")
    return path


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def read_csv(path: Path) -> list[dict[str, str]]:
    return parse_csv(path.read_text(encoding="utf-8"))


def open_import_dialog(page: Page) -> Locator:
    page.get_by_role("button", name="Import users").click()
    dialog = page.get_by_role("dialog", name="Import users")
    expect(dialog).to_be_visible()
    return dialog


def drop_file(area: Locator, file: Path) -> None:
    """Drag a CSV file onto `area` as a file manager would."""
    transfer = area.page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: 'text/csv'}));
            return transfer;
        }""",
        [file.name, file.read_text(encoding="utf-8")],
    )
    for event in ("dragenter", "dragover", "drop"):
        area.dispatch_event(event, {"dataTransfer": transfer})


def imported(dialog: Locator) -> Locator:
    return dialog.get_by_text(re.compile(r"^\W*Imported\W*$"))


def failed(dialog: Locator) -> Locator:
    return dialog.get_by_text(re.compile(r"^\W*Failed\W*$"))


def expect_counts(scope: Locator, **counts: int) -> None:
    """The import summary: each of Created, Updated, Unchanged, Rejected shows its number."""
    for label, value in counts.items():
        expect(scope.get_by_label(label.capitalize(), exact=True)).to_have_text(count(value))
