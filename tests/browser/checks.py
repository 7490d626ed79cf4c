"""What every page is held to: axe-core finds nothing serious, and screenshots for people to see."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "services/insights-query/dashboard/node_modules/axe-core/axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts/screenshots"
BLOCKING_IMPACTS = ("serious", "critical")


def assert_accessible(page: Page) -> None:
    """Run axe-core on the page as it is now; fail on any serious or critical violation."""
    if not AXE.is_file():
        pytest.fail(
            f"{AXE.relative_to(ROOT)} is missing: `make dashboard` installs the dashboard's "
            "devDependencies (axe-core among them)",
            pytrace=False,
        )
    # Evaluated, not added as a <script>: the page's Content-Security-Policy allows no inline
    # script, and axe is the test's, not the page's.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    results: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
    )
    blocking = [v for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core on {page.url}:\n" + "\n".join(map(describe, blocking))


def describe(violation: dict[str, Any]) -> str:
    targets = "; ".join(" ".join(map(str, node["target"])) for node in violation["nodes"])
    return f"- {violation['id']} ({violation['impact']}): {violation['help']} -> {targets}"


def screenshot(page: Page, name: str) -> None:
    """Save the whole page, as laid out at the current viewport, as
    test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when nothing overflows)."""
    width: int = page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
    return max(width, 0)


def save_failure_screenshot(page: Page, test_name: str) -> None:
    if page.is_closed():
        return
    screenshot(page, "failed-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name))
