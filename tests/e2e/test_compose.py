"""docker-compose.yml is a valid compose project that runs every process of the distributed mode.

The check is `docker compose config` where the docker client has its compose plugin; otherwise the
same loader (compose-go, which the plugin is built on) through deploy/docker/compose-config, built
with the machine's Go. Neither needs a Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CHECKER = ROOT / "deploy" / "docker" / "compose-config"

pytestmark = pytest.mark.e2e

Config = Callable[[Path, dict[str, str]], subprocess.CompletedProcess[str]]


def _compose_plugin_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"],  # noqa: S607 - the docker client on PATH
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A function that runs `config` on a compose file and answers the completed process."""
    if _compose_plugin_works():
        command = ["docker", "compose", "-f"]
    else:
        go = shutil.which("go")
        if go is None:
            pytest.fail("neither `docker compose` nor Go is available to check docker-compose.yml")
        binary = tmp_path_factory.mktemp("compose") / "compose-config"
        subprocess.run(  # noqa: S603 - the machine's Go, our own module
            [go, "build", "-o", str(binary), "."],
            cwd=CHECKER,
            check=True,
            capture_output=True,
            timeout=600,
        )
        command = [str(binary)]

    def run(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed commands
            [
                *command,
                str(path),
                *(["config", "--format", "json"] if command[0] == "docker" else []),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        )

    return run


def load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_the_compose_file_runs_every_process_of_the_distributed_mode(
    compose_config: Config,
) -> None:
    result = compose_config(COMPOSE_FILE, {"INSIGHTS_MASTER_KEY": "a-key"})
    assert result.returncode == 0, result.stderr
    project = load(result.stdout)
    services = project["services"]
    assert set(services) == {
        "kafka",
        "opensearch",
        "postgres",
        "import",
        "ingest",
        "query",
        "projector",
        "edge",
    }
    for name in ("import", "ingest", "query", "projector"):
        dockerfile = ROOT / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        assert f'"insights", "serve", "{name}"' in dockerfile.read_text()
    for name in ("import", "ingest", "query", "projector"):
        environment = services[name]["environment"]
        assert environment["INSIGHTS_MASTER_KEY"] == "a-key"
        assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert set(services[name]["depends_on"]) == {"kafka", "opensearch", "postgres"}
    assert [p["published"] for p in services["edge"]["ports"]] == ["8000"]
    assert services["edge"]["environment"]["INSIGHTS_QUERY_UPSTREAM"] == "query:8003"
    assert services["query"]["environment"]["QUERY_IMPORT_URL"] == "http://import:8001"
    # The edge's image fills in every name its config uses.
    edge = (ROOT / services["edge"]["build"]["dockerfile"]).read_text()
    template = (ROOT / "deploy/nginx/insights.conf.template").read_text()
    assert "nginx:" in edge and "/etc/nginx/templates/insights.conf.template" in edge
    for name in set(re.findall(r"\$\{(INSIGHTS_[A-Z_]+)\}", template)):
        assert f"{name}=" in edge, name


def test_the_compose_file_refuses_to_start_without_a_master_key(compose_config: Config) -> None:
    result = compose_config(COMPOSE_FILE, {"INSIGHTS_MASTER_KEY": ""})
    assert result.returncode != 0
    assert "INSIGHTS_MASTER_KEY" in result.stderr


def test_the_check_rejects_a_broken_compose_file(compose_config: Config, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: when_ready", 1)
    )
    result = compose_config(broken, {"INSIGHTS_MASTER_KEY": "a-key"})
    assert result.returncode != 0
    assert "when_ready" in result.stderr or "condition" in result.stderr


def test_the_edge_image_fills_in_a_config_nginx_takes(
    compose_config: Config, tmp_path: Path
) -> None:
    """As the official image does at start: envsubst with only the names its environment
    defines (nginx's own $variables stay), then `nginx -t` on the result. The service names
    become loopback addresses: nginx resolves them while loading, and no compose network is here.
    """
    project = load(compose_config(COMPOSE_FILE, {"INSIGHTS_MASTER_KEY": "a-key"}).stdout)
    services = project["services"]
    dockerfile = (ROOT / services["edge"]["build"]["dockerfile"]).read_text()
    env = dict(re.findall(r"(INSIGHTS_[A-Z_]+)=(\"\"|\S+)", dockerfile))
    env = {name: "" if value == '""' else value for name, value in env.items()}
    env |= services["edge"]["environment"]
    for name in ("INSIGHTS_IMPORT_UPSTREAM", "INSIGHTS_INGEST_UPSTREAM", "INSIGHTS_QUERY_UPSTREAM"):
        env[name] = "127.0.0.1:" + env[name].rsplit(":", 1)[1]
    env["INSIGHTS_EDGE_LISTEN"] = f"127.0.0.1:{env['INSIGHTS_EDGE_LISTEN']}"
    rendered = subprocess.run(
        ["envsubst", " ".join(f"${{{name}}}" for name in env)],  # noqa: S607 - gettext's
        input=(ROOT / "deploy/nginx/insights.conf.template").read_text(),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    assert not re.search(r"\$\{INSIGHTS_[A-Z_]+\}", rendered)
    assert "$insights_owner" in rendered
    (tmp_path / "insights.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ include /etc/nginx/mime.types; include {tmp_path}/insights.conf; }}\n"
    )
    checked = subprocess.run(
        ["nginx", "-t", "-e", f"{tmp_path}/error.log", "-c", f"{tmp_path}/nginx.conf"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
