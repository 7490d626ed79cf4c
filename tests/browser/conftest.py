"""The dashboard in Debian's headless Chromium, driven by Playwright, against `insights dev --demo`.

Package-scoped: one demo server and one browser for the browser tests, stopped before the other
test packages run (Playwright's synchronous API must not outlive them into asyncio tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.browser.checks import SCREENSHOTS, save_failure_screenshot
from tests.browser.dashboard import Login, sign_in
from tests.conftest import Server, cli, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "services/insights-query/src/insights_query/dashboard_assets"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}

# The machine is shared and small; the dashboard's own loading states are checked, not its speed.
expect.set_options(timeout=15_000)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"Chromium not found at {path}: `make browser` installs Debian's chromium "
            "(or set CHROMIUM_PATH to a Chromium executable)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="package", autouse=True)
def no_stale_failure_screenshots() -> None:
    for stale in SCREENSHOTS.glob("failed-*.png"):
        stale.unlink()


@pytest.fixture(scope="package")
def dashboard_assets() -> Path:
    if not (ASSETS / "index.html").is_file():
        pytest.fail(
            f"the dashboard is not built ({ASSETS.relative_to(ROOT)}/index.html is missing): "
            "run `make dashboard`",
            pytrace=False,
        )
    return ASSETS


@pytest.fixture(scope="package")
def demo(dashboard_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`insights dev --demo` on a free port with a data dir of its own."""
    data_dir = tmp_path_factory.mktemp("browser-demo")
    server = start_server(data_dir, "--demo")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="package")
def api_key(demo: Server) -> str:
    return cli("keys", "create", "--app", "demo", data_dir=demo.data_dir)


def add_member(role: str, *, app: str, run: Callable[..., str]) -> Login:
    """A new member of `role`; the command prints the first sign-in's password last."""
    email = f"{role}@example.com"
    printed = run("members", "add", "--app", app, "--email", email, "--role", role)
    return Login(app, email, printed.split()[-1], role)


@pytest.fixture(scope="package")
def logins(demo: Server) -> dict[str, Login]:
    """An admin, an agent and an analyst of the demo app."""

    def run(*args: str) -> str:
        return cli(*args, data_dir=demo.data_dir)

    return {role: add_member(role, app="demo", run=run) for role in ("admin", "agent", "analyst")}


@pytest.fixture(scope="package")
def admin(logins: dict[str, Login]) -> Login:
    return logins["admin"]


@pytest.fixture(scope="package")
def api(demo: Server, api_key: str) -> Iterator[httpx.Client]:
    with demo.client(api_key) as client:
        yield client


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium_path())
    try:
        yield launched
    finally:
        launched.close()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, demo: Server) -> Iterator[Page]:
    """A fresh browser context on the demo server at 1280x800, not signed in."""
    context = browser.new_context(base_url=demo.url, viewport=DESKTOP, accept_downloads=True)
    opened = context.new_page()
    try:
        yield opened
    finally:
        if request.node.stash.get(FAILED, False):
            save_failure_screenshot(opened, request.node.name)
        context.close()


@pytest.fixture
def signed_in(page: Page, admin: Login) -> Page:
    """The page signed in as an admin, on the Users page."""
    sign_in(page, admin)
    return page
