"""The edge lets go of an idle connection to a service before the service does: a request nginx
sent on a connection the service was closing at that moment would be lost, and a POST (an event
batch, an upload) would be answered 502 instead of being sent again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from insights_common.http.guard import HttpSettings

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy/nginx/insights.conf.template"


def upstreams() -> dict[str, str]:
    text = TEMPLATE.read_text(encoding="utf-8")
    found = dict(re.findall(r"^upstream (\w+) \{(.*?)^\}", text, re.DOTALL | re.MULTILINE))
    assert found, "the edge has no upstream blocks"
    return found


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[unit]


@pytest.mark.parametrize("name", sorted(upstreams()))
def test_each_upstream_closes_idle_connections_before_the_service_does(name: str) -> None:
    block = upstreams()[name]
    assert re.search(r"^\s*keepalive \d+;", block, re.MULTILINE), f"{name} keeps no connections"
    timeout = re.search(r"^\s*keepalive_timeout (\S+);", block, re.MULTILINE)
    # Unset, nginx keeps an idle upstream connection for 60 s.
    idle = seconds(timeout.group(1)) if timeout else 60.0
    assert idle < HttpSettings.model_fields["keep_alive_seconds"].default, name
