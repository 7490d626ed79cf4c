"""Fixtures shared by the cross-service tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.deployments import DistributedDeployment, EmbeddedDeployment

    Deployment = EmbeddedDeployment | DistributedDeployment

INSIGHTS = [sys.executable, "-m", "insights"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran a deployment reports what its processes logged of trouble."""
    report = yield
    if call.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            trouble = getattr(value, "trouble", None)
            if callable(trouble):
                report.sections.append((f"trouble the {value.kind} deployment logged", trouble()))
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, data_dir: Path) -> str:
    """Run the `insights` command and answer what it printed."""
    result = subprocess.run(
        [*INSIGHTS, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """`insights dev` on a free port; `env`: settings over the test's own environment."""
    port = free_port()
    log = (data_dir / "server.log").open("ab")
    process = subprocess.Popen(
        [*INSIGHTS, "dev", "--port", str(port), "--data-dir", str(data_dir), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env} if env else None,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text(errors="replace"))
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url=url, data_dir=data_dir, process=process)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not become ready in 60 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    running = start_server(data_dir)
    try:
        yield running
    finally:
        stop_server(running)


def _distributed(
    request: pytest.FixtureRequest, work_dir: Path, **extra_env: str
) -> DistributedDeployment:
    """`extra_env`: settings for every process, over the deployment's own."""
    from tests.deployments import DistributedDeployment  # noqa: PLC0415

    return DistributedDeployment(
        work_dir=work_dir,
        kafka=request.getfixturevalue("kafka_bootstrap"),
        opensearch=request.getfixturevalue("opensearch_url"),
        postgres=request.getfixturevalue("postgres_dsn"),
        topic_prefix=request.getfixturevalue("topic_prefix"),
        index_prefix=request.getfixturevalue("os_prefix"),
        schema=request.getfixturevalue("pg_schema").schema,
        extra_env=extra_env,
    )


@pytest.fixture
def distributed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DistributedDeployment]:
    """The five processes of the distributed mode on the real services."""
    running = _distributed(request, tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["embedded", "distributed"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """The product in each of its modes; the distributed one on the real services."""
    from tests.deployments import EmbeddedDeployment  # noqa: PLC0415

    running: Deployment
    if request.param == "embedded":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        running = EmbeddedDeployment(data_dir)
    else:
        running = _distributed(request, tmp_path)
    try:
        yield running
    finally:
        running.stop()
