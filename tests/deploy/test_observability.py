"""deploy/observability: the alert rules pass `promtool check rules`, fire on the series that
should raise them and stay quiet otherwise (`promtool test rules`); the Grafana dashboard's
queries are valid PromQL and read only metrics the services export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.ops_tools import ROOT, ops_tools, version

pytestmark = pytest.mark.unit

HERE = ROOT / "deploy" / "observability"
# Every metric a process exports (libs/common: observability.py and bus_metrics.py; the
# projector's own in insights_query/service.py).
EXPORTED = {
    "insights_http_requests_total",
    "insights_http_request_duration_seconds_bucket",
    "insights_dependency_up",
    "insights_consumer_lag",
    "insights_consumer_records_total",
    "insights_consumer_batch_duration_seconds_bucket",
    "insights_consumer_batch_failures_total",
    "insights_dead_letters_total",
    "insights_events_dropped_total",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    tool = ops_tools() / f"promtool-{version('PROMETHEUS_MODULE_VERSION')}" / "promtool"
    return str(tool)


def run(*command: str, cwd: Path = HERE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the tool this test built
        command, capture_output=True, text=True, check=False, timeout=120, cwd=cwd
    )


def test_the_alert_rules_are_valid_and_fire_when_they_should(promtool: str) -> None:
    checked = run(promtool, "check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", "alerts-test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rule_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """A rule that no longer fires is caught: the threshold of dead letters raised."""
    (tmp_path / "alerts.yaml").write_text(
        (HERE / "alerts.yaml").read_text().replace("[15m])) > 0", "[15m])) > 5")
    )
    (tmp_path / "alerts-test.yaml").write_text((HERE / "alerts-test.yaml").read_text())
    tested = run(promtool, "test", "rules", "alerts-test.yaml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "InsightsDeadLetters" in tested.stdout + tested.stderr


def test_the_dashboard_queries_are_promql_on_exported_metrics(
    promtool: str, tmp_path: Path
) -> None:
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 9
    # Grafana's $__rate_interval is its own; promtool parses the query with a plain range.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": e.replace("$__rate_interval", "5m")}
                    for n, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(rules))
    checked = run(promtool, "check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = (HERE / "alerts.yaml").read_text()
    for text in [*exprs, alerts]:
        for name in re.findall(r"\b(insights_[a-z_]+)\b", text):
            assert name in EXPORTED, name
    exported_by_code = "".join(
        (ROOT / path).read_text()
        for path in (
            "libs/common/src/insights_common/http/observability.py",
            "libs/common/src/insights_common/bus_metrics.py",
            "services/insights-query/src/insights_query/service.py",
        )
    )
    for name in EXPORTED:
        assert re.sub(r"_(bucket|total)$", "", name) in exported_by_code, name
