"""JSON schemas that kubeconform checks rendered manifests against, made on this machine.

kubeconform fetches its schemas from GitHub by default; here they are made from sources on the
Go module proxy instead: Kubernetes' own OpenAPI document (`api/openapi-spec/swagger.json` of the
k8s.io/kubernetes module) and KEDA's CRDs (`config/crd/bases` of github.com/kedacore/keda/v2).
Each kind becomes one standalone, strict schema (every $ref inlined, no property the API does not
define), in the layout `-schema-location` is given:
`<dir>/{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.34.2"
KEDA_VERSION = "2.18.1"
LOCATION = "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json"

# Values the API takes as a string or a number (the swagger document says string).
STRING_OR_NUMBER = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": ["string", "integer"]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": ["string", "number"]},
}


def module_dir(module: str, version: str) -> Path:
    """The module's files, downloaded from the Go module proxy into Go's module cache once."""
    answer = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@v{version}"],  # noqa: S607 - the machine's Go
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        cwd="/",
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    return Path(json.loads(answer.stdout)["Dir"])


def _file_name(kind: str, group: str, version: str) -> str:
    # kubeconform's Group is the part of apiVersion before "/" (the version itself for core).
    return f"{kind.lower()}_{group or version}_{version}.json"


def _strict(schema: Any) -> Any:
    """Every object that lists its properties takes no other."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _inline(schema: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(schema, list):
        return [_inline(item, definitions, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in STRING_OR_NUMBER:
            return STRING_OR_NUMBER[name]
        if name in seen:  # a recursive type (JSONSchemaProps): taken as any object
            return {"type": "object"}
        return _inline(definitions[name], definitions, (*seen, name))
    if schema.get("format") == "int-or-string":
        return {"type": ["string", "integer"]}
    return {key: _inline(value, definitions, seen) for key, value in schema.items()}


def kubernetes_schemas(target: Path) -> None:
    swagger = module_dir("k8s.io/kubernetes", KUBERNETES_VERSION) / "api/openapi-spec/swagger.json"
    definitions: dict[str, Any] = json.loads(swagger.read_text())["definitions"]
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if name in STRING_OR_NUMBER:
                continue
            schema = _strict(_inline(definition, definitions, (name,)))
            path = target / _file_name(gvk["kind"], gvk["group"], gvk["version"])
            path.write_text(json.dumps(schema))


def keda_schemas(target: Path) -> None:
    bases = module_dir("github.com/kedacore/keda/v2", KEDA_VERSION) / "config/crd/bases"
    for crd_file in sorted(bases.glob("*.yaml")):
        crd = yaml.safe_load(crd_file.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            path = target / _file_name(kind, group, version["name"])
            path.write_text(json.dumps(schema))


def schemas(cache: Path) -> Path:
    """The directory of schemas for this Kubernetes and KEDA, made once per version pair."""
    target = cache / f"kube-schemas-{KUBERNETES_VERSION}-keda-{KEDA_VERSION}"
    done = target / ".complete"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        kubernetes_schemas(target)
        keda_schemas(target)
        done.touch()
    return target
