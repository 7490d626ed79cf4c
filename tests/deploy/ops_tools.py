"""Where the tests find Helm, kubeconform, promtool and the OpenTelemetry Collector: `make
ops-tools` builds them from the Go module proxy into the project's download cache when they are
missing (on a fresh machine, in the test run itself)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "user-insights"


def version(name: str) -> str:
    """A version the Makefile pins (HELM_VERSION, ...)."""
    found = re.search(rf"^{name} := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, name
    return found.group(1)


@functools.cache
def ops_tools() -> Path:
    tools = CACHE / "go-tools"
    subprocess.run(
        ["make", "-s", "ops-tools", f"OPS_TOOLS={tools}"],  # noqa: S607 - the project's make
        cwd=ROOT,
        check=True,
        timeout=3600,
    )
    return tools


def otelcol() -> Path:
    """The collector of deploy/otelcol, in the directory the Makefile's OTELCOL_DIR names: its
    version and the first 12 hex digits of the SHA-256 of its sources."""
    sources = b"".join(
        (ROOT / "deploy/otelcol" / name).read_bytes() for name in ("go.mod", "go.sum", "main.go")
    )
    key = hashlib.sha256(sources).hexdigest()[:12]
    return ops_tools() / f"otelcol-{version('OTELCOL_VERSION')}-{key}" / "insights-otelcol"
