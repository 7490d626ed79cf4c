"""The edge's page map (deploy/nginx) answers index.html for every page path of the dashboard,
and for nothing else: a page added to the app without a line here would load only from inside
the app, and a deep link to it would answer 404."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from insights_query.entrypoints.dashboard import PAGE_PATHS

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy/nginx/insights.conf.template"


def page_patterns() -> list[re.Pattern[str]]:
    text = TEMPLATE.read_text(encoding="utf-8")
    block = re.search(r"map \$uri \$insights_page \{(.*?)\}", text, re.DOTALL)
    assert block is not None, "the edge has no $insights_page map"
    found = re.findall(r"^\s*~(\S+)\s+1;", block.group(1), re.MULTILINE)
    assert found
    return [re.compile(pattern) for pattern in found]


def is_page(path: str) -> bool:
    return any(pattern.search(path) for pattern in page_patterns())


@pytest.mark.parametrize("template", PAGE_PATHS)
def test_every_page_path_is_a_page_at_the_edge(template: str) -> None:
    assert is_page(re.sub(r"\{[^}]+\}", "x-1", template)), template


@pytest.mark.parametrize(
    "path", ["/api/v1/users", "/healthz", "/sources/x", "/members/x", "/nope", "/users/a/b"]
)
def test_other_paths_are_not_pages(path: str) -> None:
    assert not is_page(path)
