"""The distributed mode's edge (nginx) serves the same dashboard at / as `insights dev`, and the
API it calls, through one origin."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import DESKTOP, add_member
from tests.browser.dashboard import (
    drop_file,
    exactly,
    expect_counts,
    fill_sign_in,
    imported,
    open_import_dialog,
    result_rows,
    search,
    write_csv,
)

if TYPE_CHECKING:
    from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e

PHONE = "+4915112345678"
NICKNAME = "Jürgen Edge"


def test_sign_in_through_the_edge_and_find_an_imported_user(
    browser: Browser,
    distributed: DistributedDeployment,
    dashboard_assets: object,
    tmp_path: Path,
) -> None:
    admin = add_member("admin", app="acme", run=distributed.cli)
    user_id = f"gw-{uuid.uuid4().hex[:8]}"
    context = browser.new_context(base_url=distributed.url, viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto("/")
        fill_sign_in(page, admin)
        expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()

        dialog = open_import_dialog(page)
        file = write_csv(
            tmp_path / f"{user_id}.csv",
            [["user_id", "phone_number", "nickname"], [user_id, PHONE, NICKNAME]],
        )
        drop_file(dialog.get_by_label("Attach file"), file)
        expect(imported(dialog)).to_be_visible()
        expect_counts(dialog, created=1, rejected=0)
        dialog.get_by_role("button", name="Ok").click()

        # "Imported" means findable: searched at once, nothing waited for.
        search(page, "jurgen edge")
        link = result_rows(page).get_by_role("link", name=exactly(user_id))
        expect(link).to_be_visible()
        link.click()
        expect(page).to_have_url(re.compile(rf"/users/{user_id}$"))
        expect(page.get_by_role("heading", name=user_id, exact=True)).to_be_visible()
        expect(page.get_by_role("main")).to_contain_text(NICKNAME)
    finally:
        context.close()
