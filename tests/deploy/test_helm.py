"""deploy/helm/user-insights passes `helm lint`, renders with the default and the production
values, and what it renders is valid Kubernetes (and KEDA) for `kubeconform -strict`.

Helm and kubeconform are built from the Go module proxy by `make ops-tools` (run here when they
are missing); the schemas are made from Kubernetes' and KEDA's own API definitions (kube_schemas).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kube_schemas import LOCATION, schemas
from tests.deploy.ops_tools import CACHE, ops_tools, version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "user-insights"
PRODUCTION = CHART / "values-production.yaml"
KUBE_VERSION = "1.33.0"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    tools = ops_tools()
    kubeconform = f"kubeconform-{version('KUBECONFORM_VERSION')}"
    return {
        "helm": str(tools / f"helm-{version('HELM_VERSION')}" / "helm"),
        "kubeconform": str(tools / kubeconform / "kubeconform"),
        "schemas": str(schemas(CACHE)),
    }


def run(*command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - tools this test built
        command, input=stdin, capture_output=True, text=True, check=False, timeout=120
    )


def render(tools: dict[str, str], *values: str) -> str:
    done = run(tools["helm"], "template", "insights", str(CHART), "--kube-version", KUBE_VERSION,
               *values)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def conform(tools: dict[str, str], manifests: str) -> subprocess.CompletedProcess[str]:
    location = f"{tools['schemas']}/{LOCATION}"
    return run(tools["kubeconform"], "-strict", "-summary", "-schema-location", location, "-",
               stdin=manifests)  # fmt: skip


def documents(manifests: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(manifests) if doc
    }


DEFAULT = ("--set", "secrets.masterKey=test-key")


@pytest.mark.parametrize("values", [DEFAULT, ("-f", str(PRODUCTION))], ids=["default", "prod"])
def test_the_chart_lints_and_renders_valid_kubernetes(
    tools: dict[str, str], values: tuple[str, ...]
) -> None:
    linted = run(tools["helm"], "lint", "--strict", str(CHART), *values)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    checked = conform(tools, render(tools, *values))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in checked.stdout


def test_kubeconform_refuses_a_field_the_api_does_not_have(tools: dict[str, str]) -> None:
    manifests = render(tools, *DEFAULT).replace("podManagementPolicy:", "podManagmentPolicy:")
    checked = conform(tools, manifests)
    assert checked.returncode != 0
    assert "podManagmentPolicy" in checked.stdout


def test_what_the_chart_runs(tools: dict[str, str]) -> None:
    docs = documents(render(tools, *DEFAULT))
    imports = docs[("StatefulSet", "insights-user-insights-import")]
    (container,) = imports["spec"]["template"]["spec"]["containers"]
    # Each import replica owns its imports under its pod name, on a volume of its own.
    assert container["env"][0]["name"] == "IMPORT_REPLICA_ID"
    assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert imports["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "uploads"
    workloads = [doc for (kind, _), doc in docs.items() if kind in ("Deployment", "StatefulSet")]
    assert len(workloads) == 5  # import, ingest, query, projector, edge
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for each in pod["containers"]:
            assert each["securityContext"]["readOnlyRootFilesystem"] is True
            assert each["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert each["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert each["resources"]["requests"] and each["resources"]["limits"]
    assert {name for kind, name in docs if kind == "HorizontalPodAutoscaler"} == {
        "insights-user-insights-ingest",
        "insights-user-insights-query",
        "insights-user-insights-edge",
    }
    assert ("ScaledObject", "insights-user-insights-projector") not in docs
    # The edge runs the same nginx config as every other deployment.
    edge = docs[("ConfigMap", "insights-user-insights-edge")]["data"]
    template = (ROOT / "deploy/nginx/insights.conf.template").read_text()
    assert edge["insights.conf.template"].strip() == template.strip()
    secret = docs[("Secret", "insights-user-insights-secrets")]
    assert set(secret["stringData"]) == {"INSIGHTS_MASTER_KEY", "POSTGRES_DSN"}


def test_production_takes_its_secret_from_outside_and_scales_the_projector_on_lag(
    tools: dict[str, str],
) -> None:
    docs = documents(render(tools, "-f", str(PRODUCTION)))
    assert not [name for kind, name in docs if kind == "Secret"]
    scaled = docs[("ScaledObject", "insights-user-insights-projector")]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "insights-projector"
    # No more replicas than partitions: the others would stand idle.
    assert scaled["spec"]["maxReplicaCount"] == 12
    ingress = docs[("Ingress", "insights-user-insights")]
    assert ingress["spec"]["tls"][0]["hosts"] == ["insights.example.com"]


def test_the_chart_refuses_to_render_without_a_master_key(tools: dict[str, str]) -> None:
    done = run(tools["helm"], "template", "insights", str(CHART), "--kube-version", KUBE_VERSION)
    assert done.returncode != 0
    assert "secrets.masterKey" in done.stderr


def test_traces_are_off_unless_an_endpoint_is_named(tools: dict[str, str]) -> None:
    def config(*values: str) -> dict[str, str]:
        docs = documents(render(tools, *DEFAULT, *values))
        data: dict[str, str] = docs[("ConfigMap", "insights-user-insights-config")]["data"]
        return data

    assert not [name for name in config() if name.startswith("OTEL_")]
    on = config(
        "--set", "tracing.otlpEndpoint=http://otel-collector.observability.svc:4318",
        "--set", "tracing.resourceAttributes=deployment.environment.name=production",
    )  # fmt: skip
    assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
    assert on["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert on["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert on["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment.name=production"
