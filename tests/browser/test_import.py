"""The guide's import flow: Import users, attach a CSV, see it imported (or why not), Ok."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.dashboard import (
    api_search,
    cell,
    count,
    csv_text,
    drop_file,
    exactly,
    expect_counts,
    expect_results,
    failed,
    imported,
    open_import_dialog,
    parse_csv,
    read_csv,
    row_with_link,
    search,
    write_csv,
)

pytestmark = pytest.mark.e2e

UPLOAD = re.compile(r"/api/v1/imports(\?[^/]*)?$")
HEADER = ["user_id", "phone_number", "nickname"]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def good_rows(prefix: str, n: int = 20) -> list[list[str]]:
    return [[f"{prefix}-{i:02}", f"+1415555{100 + i:04}", f"Tester {i}"] for i in range(n)]


# Valid numbers written the way spreadsheets often do: rejected, with their E.164 form as a hint.
BAD_PHONES = {5: "+1 415-555-0150", 9: "14155550151", 14: "+1 (415) 555-0152"}


def rows_with_bad_phones(prefix: str) -> list[list[str]]:
    rows = good_rows(prefix)
    for line, phone in BAD_PHONES.items():
        rows[line - 2][1] = phone  # line 1 is the header
    return rows


@contextmanager
def progress_checked_during_upload(page: Page, dialog: Locator) -> Iterator[list[str]]:
    """Hold the upload until the dialog shows the import's progress, then let it through.

    The small files here import in milliseconds; holding the request makes the progress state
    observable instead of a race.
    """
    seen: list[str] = []

    def hold(route: Route) -> None:
        if route.request.method == "POST":
            try:
                expect(dialog.get_by_role("progressbar", name="Import progress")).to_be_visible()
                seen.append("progress shown")
            except AssertionError as error:
                seen.append(f"no progressbar while uploading: {error}")
        route.continue_()

    page.route(UPLOAD, hold)
    try:
        yield seen
    finally:
        page.unroute(UPLOAD, hold)


def latest_import(api: httpx.Client, filename: str) -> dict[str, Any]:
    history = api.get("/api/v1/imports", params={"limit": 200}).json()["items"]
    mine = [item for item in history if item["filename"] == filename]
    assert mine, f"{filename} is not in the import history"
    found: dict[str, Any] = mine[0]
    return found


def test_import_a_good_file_by_dragging_it(
    signed_in: Page, api: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in
    prefix = unique("imp")
    file = write_csv(tmp_path / f"{prefix}.csv", [HEADER, *good_rows(prefix)])
    dialog = open_import_dialog(page)
    for requirement in ("user_id", "phone_number", "E.164", "100,000"):
        expect(dialog).to_contain_text(requirement)

    with progress_checked_during_upload(page, dialog) as seen:
        drop_file(dialog.get_by_label("Attach file"), file)
        expect(dialog).to_contain_text(file.name)
        expect(imported(dialog)).to_be_visible()
    assert seen == ["progress shown"]
    expect_counts(dialog, created=20, updated=0, unchanged=0, rejected=0)

    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_be_hidden()
    search(page, prefix)
    users = api_search(api, prefix)
    assert len(users) == 20
    expect_results(page, users)


def test_import_rows_with_bad_phones_reports_each(
    signed_in: Page, api: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in
    prefix = unique("bad")
    file = write_csv(tmp_path / f"{prefix}.csv", [HEADER, *rows_with_bad_phones(prefix)])
    dialog = open_import_dialog(page)
    with page.expect_file_chooser() as chooser:
        dialog.get_by_role("button", name="Upload CSV file").click()
    chooser.value.set_files(file)

    expect(imported(dialog)).to_be_visible()
    expect_counts(dialog, created=17, updated=0, unchanged=0, rejected=3)
    report = latest_import(api, file.name)
    errors = api.get(f"/api/v1/imports/{report['id']}/errors").json()["items"]
    assert [error["line"] for error in errors] == sorted(BAD_PHONES)

    table = dialog.get_by_role("table", name="Rejected rows")
    rows = table.get_by_role("row").filter(has_not=page.get_by_role("columnheader"))
    expect(rows).to_have_count(len(errors))
    for index, error in enumerate(errors):
        row = rows.nth(index)
        expect(cell(table, row, "Line")).to_have_text(exactly(str(error["line"])))
        expect(cell(table, row, "User ID")).to_have_text(exactly(error["user_id"]))
        expect(cell(table, row, "Column")).to_have_text(exactly("phone_number"))
        expect(cell(table, row, "Message")).to_contain_text(error["message"])
        expect(cell(table, row, "Message")).to_contain_text(
            re.compile(r"E\.164.*write it as .*\(\+1 415-\*\*\*-\*\*5\d\)")
        )

    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download report").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    expected = api.get(f"/api/v1/imports/{report['id']}/errors", params={"format": "csv"})
    assert read_csv(saved) == parse_csv(expected.text)
    assert [row["line"] for row in read_csv(saved)] == [str(line) for line in sorted(BAD_PHONES)]

    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_be_hidden()


REFUSED = {
    "no phone column": (
        ".csv",
        csv_text([["user_id", "nickname"], ["ann", "Ann"]]).encode(),
        "phone_number",
    ),
    "not csv": (".png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "CSV"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_file_shows_failed_with_the_reason(
    signed_in: Page, api: httpx.Client, tmp_path: Path, case: str
) -> None:
    suffix, content, mentioned = REFUSED[case]
    file = tmp_path / f"{unique('refused')}{suffix}"
    file.write_bytes(content)
    dialog = open_import_dialog(signed_in)
    dialog.get_by_label("CSV file").set_input_files(file)

    expect(failed(dialog)).to_be_visible()
    report = latest_import(api, file.name)
    assert report["status"] == "rejected"
    reason = report["errors"][0]["message"]
    assert mentioned in reason
    expect(dialog.get_by_role("alert")).to_contain_text(reason)
    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_be_hidden()


def import_through_the_dialog(page: Page, file: Path) -> None:
    dialog = open_import_dialog(page)
    dialog.get_by_label("CSV file").set_input_files(file)
    expect(imported(dialog)).to_be_visible()
    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_be_hidden()


def test_the_imports_page_lists_each_import_and_opens_its_report(
    signed_in: Page, api: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in
    refused = tmp_path / f"{unique('refused')}.csv"
    refused.write_text("user_id,nickname\nann,Ann\n", encoding="utf-8")
    with refused.open("rb") as handle:
        answer = api.post("/api/v1/imports", files={"file": (refused.name, handle, "text/csv")})
    assert answer.status_code == 422, answer.text

    page.get_by_role("navigation").get_by_role("link", name="Imports", exact=True).click()
    expect(page.get_by_role("heading", name="Imports", exact=True)).to_be_visible()
    good = write_csv(tmp_path / f"{unique('good')}.csv", [HEADER, *good_rows(unique("h"))])
    bad_prefix = unique("hb")
    bad = write_csv(tmp_path / f"{bad_prefix}.csv", [HEADER, *rows_with_bad_phones(bad_prefix)])
    import_through_the_dialog(page, good)
    import_through_the_dialog(page, bad)

    history = page.get_by_role("table", name="Import history")
    for file in (good, bad, refused):
        report = latest_import(api, file.name)
        row = row_with_link(history, file.name)
        expect(row).to_have_count(1)
        expect(cell(history, row, "Status")).to_have_text(
            re.compile(report["status"], re.IGNORECASE)
        )
        for column in ("Created", "Updated", "Unchanged", "Rejected"):
            expect(cell(history, row, column)).to_have_text(count(report[column.lower()]))

    report = latest_import(api, bad.name)
    row_with_link(history, bad.name).get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/imports/{report['id']}$"))
    expect(page.get_by_role("heading", name=bad.name, exact=True)).to_be_visible()
    expect_counts(page.get_by_role("main"), created=17, updated=0, unchanged=0, rejected=3)
    errors = api.get(f"/api/v1/imports/{report['id']}/errors").json()["items"]
    table = page.get_by_role("table", name="Rejected rows")
    rows = table.get_by_role("row").filter(has_not=page.get_by_role("columnheader"))
    expect(rows).to_have_count(len(errors))
    for index, error in enumerate(errors):
        expect(cell(table, rows.nth(index), "Line")).to_have_text(exactly(str(error["line"])))
        expect(cell(table, rows.nth(index), "Message")).to_contain_text(error["message"])
