"""Kafka, OpenSearch and PostgreSQL of a test's own, to kill: own ports, own data directory.

Other tests use the shared servers meanwhile, so a test that kills a server starts its own with
deploy/local/services.py (the same fetch, configuration and readiness checks) and stops it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ("kafka", "opensearch", "postgres")


def _local_services() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "insights_local_services", ROOT / "deploy/local/services.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


class OwnServers:
    """Some of Kafka, OpenSearch and PostgreSQL on free ports, in a data directory of their own;
    `down` stops them and removes it."""

    def __init__(self, names: tuple[str, ...] = SERVERS) -> None:
        self.tool = _local_services()
        # Not under pytest's 0700 tmp: OpenSearch and PostgreSQL run as an unprivileged user.
        self.state = Path(tempfile.mkdtemp(prefix="insights-faults-"))
        self.state.chmod(0o755)
        settings = dataclasses.replace(
            self.tool.Settings.from_env(),
            state_dir=self.state,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            opensearch_port=free_port(),
            opensearch_transport_port=free_port(),
            postgres_port=free_port(),
            # A start again beside a deployment under load can take minutes on 2 busy cores.
            timeout=max(self.tool.Settings.from_env().timeout, 600.0),
        )
        self.servers = {name: self.tool.SERVICES[name](settings) for name in names}

    def endpoint(self, name: str) -> str:
        (value,) = self.servers[name].exports().values()
        return str(value)

    def up(self, *names: str) -> None:
        errors = self.tool.in_parallel(
            [self.servers[name] for name in names or self.servers], lambda s: s.up()
        )
        assert not errors, errors

    def kill(self, name: str) -> None:
        self.servers[name].kill()

    def down(self) -> None:
        self.tool.in_parallel(list(self.servers.values()), lambda s: s.down(purge=True))
        shutil.rmtree(self.state, ignore_errors=True)
