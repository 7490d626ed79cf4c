"""The product as users run it, for end-to-end tests: one `insights dev` process, or the
distributed mode's four `insights serve` processes on real Kafka, OpenSearch and PostgreSQL
behind nginx, the edge users reach it through (deploy/local/edge.py).

Both expose the same things to a test: the base URL of the API, the `insights` command configured
for that deployment, a restart, and the processes themselves (so a test can kill one).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx
from cryptography.fernet import Fernet

from tests.conftest import INSIGHTS, Server, free_port, start_server, stop_server

DISTRIBUTED_SERVICES = ("import", "ingest", "query", "projector")
ROOT = Path(__file__).resolve().parents[1]


def local_edge() -> ModuleType:
    """deploy/local/edge.py (a script of the standard library only, not a package)."""
    name = "insights_local_edge"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy/local/edge.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


class EmbeddedDeployment:
    kind = "embedded"

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None) -> None:
        """`env`: settings for the process, over the test's own environment."""
        self.data_dir = data_dir
        self.env = env
        self.server: Server = start_server(data_dir, env=env)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str | None = None) -> httpx.Client:
        return self.server.client(key)

    def cli(self, *args: str) -> str:
        return run_cli(*args, "--data-dir", str(self.data_dir))

    def restart(self) -> None:
        stop_server(self.server)
        self.server = start_server(self.data_dir, env=self.env)

    def trouble(self) -> str:
        """What went wrong, as the process logged it (for a failed test's report)."""
        return trouble_excerpt({"insights dev": self.data_dir / "server.log"})

    def crash_and_restart(self, service: str) -> None:
        """SIGKILL the one process that runs every service, then start it again."""
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=10)
        self.server = start_server(self.data_dir, env=self.env)

    def stop(self) -> None:
        stop_server(self.server)


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class DistributedDeployment:
    """Four service processes behind nginx; each test gets its own topics, indices and
    PostgreSQL schema."""

    work_dir: Path
    kafka: str
    opensearch: str
    postgres: str
    topic_prefix: str
    index_prefix: str
    schema: str
    env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # settings for every process
    ready_limit: float = 90.0  # seconds a process may take to answer /readyz
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    kind: str = "distributed"

    def __post_init__(self) -> None:
        ports = {name: free_port() for name in (*DISTRIBUTED_SERVICES, "edge")}
        self.ports = ports
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "KAFKA_PARTITIONS": "3",
            "OPENSEARCH_URL": self.opensearch,
            "OPENSEARCH_INDEX_PREFIX": self.index_prefix,
            "POSTGRES_DSN": self.postgres,
            "POSTGRES_SCHEMA": self.schema,
            "INSIGHTS_MASTER_KEY": Fernet.generate_key().decode(),
            "IMPORT_DATA_DIR": str(self.work_dir / "import"),
            "IMPORT_PORT": str(ports["import"]),
            "INGEST_PORT": str(ports["ingest"]),
            "QUERY_PORT": str(ports["query"]),
            "QUERY_IMPORT_URL": f"http://127.0.0.1:{ports['import']}",
            "QUERY_INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['edge']}",
            **self.extra_env,
        }
        self.edge = local_edge().Edge(
            f"127.0.0.1:{ports['import']}",
            f"127.0.0.1:{ports['ingest']}",
            f"127.0.0.1:{ports['query']}",
            ports["edge"],
            work_dir=self.work_dir / "edge",
        )
        try:
            self.edge.start()
            for name in DISTRIBUTED_SERVICES:
                self.start(name)
            for name in DISTRIBUTED_SERVICES:
                self.wait_ready(name)
        except BaseException:
            self.stop()  # none of them outlives a failed start
            raise

    @property
    def url(self) -> str:
        return str(self.edge.url)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str) -> str:
        return run_cli(*args, "--distributed", env=self.env)

    def start(self, name: str) -> ServiceProcess:
        log = self.work_dir / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(  # noqa: S603 - our own command
                [*INSIGHTS, "serve", name, "--port", str(self.ports[name])],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.processes[name] = ServiceProcess(name, self.ports[name], process, log)
        return self.processes[name]

    def add_replica(
        self, service: str, name: str, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        """One more process of `service` (`insights serve <service>`), known as `name`;
        `env`: its own settings over the deployment's (an import replica's id and data dir)."""
        self.ports[name] = free_port()
        log = self.work_dir / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(  # noqa: S603 - our own command
                [*INSIGHTS, "serve", service, "--port", str(self.ports[name])],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
            )
        self.processes[name] = ServiceProcess(name, self.ports[name], process, log)
        self.wait_ready(name)
        return self.processes[name]

    def wait_ready(self, name: str, limit: float | None = None) -> None:
        service = self.processes[name]
        limit = self.ready_limit if limit is None else limit
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{service.log.read_text(errors='replace')}")
            try:
                answer = httpx.get(f"http://127.0.0.1:{service.port}/readyz", timeout=2)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready in {limit} s:\n{service.log.read_text()[-4000:]}")

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, as when a machine dies."""
        service = self.processes[name]
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(timeout=10)

    def crash_and_restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)
        self.wait_ready(name)

    def stop_one(self, name: str) -> None:
        service = self.processes[name]
        service.process.terminate()
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()

    def restart(self) -> None:
        self.stop()
        self.edge.start()
        for name in DISTRIBUTED_SERVICES:
            self.start(name)
        for name in DISTRIBUTED_SERVICES:
            self.wait_ready(name)

    def stop(self) -> None:
        replicas = [name for name in self.processes if name not in DISTRIBUTED_SERVICES]
        for name in [*reversed(replicas), *reversed(DISTRIBUTED_SERVICES)]:
            if name in self.processes and self.processes[name].process.poll() is None:
                self.stop_one(name)
        self.edge.stop()

    def logs(self) -> str:
        return "\n".join(
            [
                *(
                    f"--- {name} ---\n{service.log.read_text(errors='replace')[-3000:]}"
                    for name, service in self.processes.items()
                ),
                f"--- edge ---\n{self.edge.logs()}",
            ]
        )

    def trouble(self) -> str:
        """What went wrong, as the processes and the edge logged it (for a failed test's report)."""
        return trouble_excerpt(
            {
                **{name: service.log for name, service in self.processes.items()},
                "edge errors": self.edge.error_log,
                "edge answers": self.edge.access_log,
            }
        )

    def tracebacks(self, limit: int = 3) -> str:
        """The last `limit` tracebacks each service logged: why a request failed."""
        found = []
        for name, service in self.processes.items():
            text = service.log.read_text(errors="replace")
            starts = [match.start() for match in re.finditer("^Traceback", text, re.M)][-limit:]
            found += [f"--- {name} ---\n{text[i : i + 4000]}" for i in starts]
        return "\n".join(found)


# A log line telling of trouble: a warning or worse, a traceback, an edge answer of 5xx.
TROUBLE = re.compile(
    r'"level": "(WARNING|ERROR|CRITICAL)"|^Traceback|^\S+Error: '
    r'|"status":5\d\d|\[(warn|error|crit)\]'
)


def trouble_excerpt(logs: dict[str, Path], *, per_log: int = 8, width: int = 400) -> str:
    """The last `per_log` lines of trouble of each log, each cut to `width` characters."""
    parts = []
    for name, path in logs.items():
        if not path.exists():
            continue
        lines = [
            line[:width]
            for line in path.read_text(errors="replace").splitlines()
            if TROUBLE.search(line)
        ]
        if lines:
            parts.append(f"--- {name} ---\n" + "\n".join(lines[-per_log:]))
    return "\n".join(parts) or "(no warning, error or 5xx in any log)"


def run_cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the `insights` command and answer what it printed."""
    result = subprocess.run(  # noqa: S603 - our own command
        [*INSIGHTS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**(env or os.environ), "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def eventually_true(check: object, limit: float = 20.0) -> None:
    """Poll a no-argument callable until it returns a truthy value (the projection lags a bit)."""
    assert callable(check)
    deadline = time.monotonic() + limit
    while True:
        try:
            if check():
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        else:
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {limit} s")
        time.sleep(0.1)
