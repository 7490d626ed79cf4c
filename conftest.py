"""Real Kafka, OpenSearch and PostgreSQL for every test that needs them.

Each endpoint comes from the environment when it is set (KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL,
POSTGRES_DSN); otherwise from testcontainers when a Docker engine answers; otherwise from the
project's own `deploy/local/services.py`, which fetches and starts the real servers on loopback.
Only what a collected test asks for is started. Each test gets its own topic prefix, index prefix
or PostgreSQL schema, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import socket
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from tests.sso.keycloak import Keycloak, Realm

ROOT = Path(__file__).resolve().parent
LOCAL_SERVICES = ROOT / "deploy" / "local" / "services.py"

T = TypeVar("T")

ENV_NAMES = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "opensearch": "OPENSEARCH_URL",
    "postgres": "POSTGRES_DSN",
}


def _docker_engine_answers() -> bool:
    """True when a Docker engine answers `GET /_ping` on its unix socket (or DOCKER_HOST)."""
    if os.environ.get("INSIGHTS_TESTS_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line + b" "
    except OSError:
        return False


def _from_container(service: str, stack: ExitStack) -> str:
    # testcontainers' own modules still use its deprecated wait decorator; that is not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if service == "kafka":
            from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

            # Its Kafka module drives Confluent's image; 8.1 carries Apache Kafka 4.1.
            kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:8.1.0").with_kraft())
            return str(kafka.get_bootstrap_server())
        if service == "opensearch":
            from testcontainers.community.opensearch import OpenSearchContainer  # noqa: PLC0415

            search = stack.enter_context(
                OpenSearchContainer("opensearchproject/opensearch:2.19.6", security_enabled=False)
            )
            config = search.get_config()
            return f"http://{config['host']}:{config['port']}"
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415

        pg = stack.enter_context(PostgresContainer("postgres:15", driver=None))
        return str(pg.get_connection_url())


def local_exports(service: str) -> dict[str, str]:
    """Start (or reuse) the service with deploy/local/services.py; answers its exports."""
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(LOCAL_SERVICES), "up", service],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.exit(
            f"could not start {service} with {LOCAL_SERVICES.relative_to(ROOT)}:\n"
            f"{result.stderr[-3000:]}",
            returncode=3,
        )
    return dict(re.findall(r"^export (\w+)=(\S+)$", result.stdout, re.M))


def _from_local_script(service: str) -> str:
    wanted = ENV_NAMES[service]
    exports = local_exports(service)
    if wanted not in exports:
        pytest.exit(f"{LOCAL_SERVICES.name} up {service} printed no {wanted}", returncode=3)
    return exports[wanted]


class Services:
    """Endpoints resolved once per test session, started on first use."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._endpoints: dict[str, str] = {}
        self._docker: bool | None = None

    def endpoint(self, service: str) -> str:
        if service not in self._endpoints:
            from_env = os.environ.get(ENV_NAMES[service])
            if from_env:
                self._endpoints[service] = from_env
            else:
                if self._docker is None:
                    self._docker = _docker_engine_answers()
                if self._docker:
                    self._endpoints[service] = _from_container(service, self._stack)
                else:
                    self._endpoints[service] = _from_local_script(service)
                # Processes the tests start (the services of `insights serve`) find it here.
                os.environ[ENV_NAMES[service]] = self._endpoints[service]
        return self._endpoints[service]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def real_services() -> Iterator[Services]:
    services = Services()
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(real_services: Services) -> str:
    return real_services.endpoint("kafka")


@pytest.fixture(scope="session")
def opensearch_url(real_services: Services) -> str:
    return real_services.endpoint("opensearch")


@pytest.fixture(scope="session")
def postgres_dsn(real_services: Services) -> str:
    return real_services.endpoint("postgres")


@pytest.fixture(scope="session")
def keycloak() -> Keycloak:
    """A real OpenID provider: Keycloak at KEYCLOAK_URL (with KEYCLOAK_ADMIN_USER and
    KEYCLOAK_ADMIN_PASSWORD), else started on loopback by deploy/local/services.py."""
    from tests.sso.keycloak import Keycloak  # noqa: PLC0415

    exports = dict(os.environ) if os.environ.get("KEYCLOAK_URL") else local_exports("keycloak")
    return Keycloak(
        exports["KEYCLOAK_URL"],
        exports.get("KEYCLOAK_ADMIN_USER", "admin"),
        exports["KEYCLOAK_ADMIN_PASSWORD"],
    )


@pytest.fixture(scope="session")
def sso_realm(keycloak: Keycloak) -> Iterator[Realm]:
    """tests/sso/realm.json imported into that Keycloak for this session, removed after."""
    realm = keycloak.import_realm()
    yield realm
    keycloak.remove_realm(realm)


async def until(check: Callable[[], object], limit: float = 60) -> None:
    """Wait until `check()` (or what it answers, when that is awaitable) is true; a test fails
    after `limit` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        answer = check()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not reached in {limit} s")
        await asyncio.sleep(0.02)


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a worker thread.

    The isolation fixtures are synchronous so that async fixtures can request them with
    `request.getfixturevalue` (an async fixture cannot be requested from inside a running loop);
    their setup and cleanup talk to the servers this way.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass(frozen=True)
class PgSchema:
    dsn: str
    schema: str


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[PgSchema]:
    """A fresh, empty PostgreSQL schema for one test, dropped afterwards."""
    import asyncpg  # noqa: PLC0415

    schema = unique_name("t_")

    async def execute(statement: str) -> None:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    run_async(lambda: execute(f'CREATE SCHEMA "{schema}"'))
    yield PgSchema(postgres_dsn, schema)
    run_async(lambda: execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


class Databases:
    """A test's storage for a store port suite: SQLite or a fresh PostgreSQL schema.

    `open` connects as a newly started process would; every connection opened is closed after.
    """

    def __init__(self, kind: str, *, sqlite_path: Path, pg: PgSchema | None) -> None:
        self.kind = kind
        self.sqlite_path = sqlite_path
        self.pg = pg
        self.opened: list[Any] = []

    async def open(self) -> Any:
        """A SqliteDatabase or a PostgresDatabase on this test's storage."""
        from insights_common.postgres.database import PostgresDatabase  # noqa: PLC0415
        from insights_common.sqlite.database import SqliteDatabase  # noqa: PLC0415

        if self.pg is None:
            db: Any = SqliteDatabase(self.sqlite_path)
        else:
            db = await PostgresDatabase.connect(self.pg.dsn, schema=self.pg.schema, max_size=2)
        self.opened.append(db)
        return db

    async def close(self) -> None:
        for db in self.opened:
            closing = db.close()
            if asyncio.iscoroutine(closing):
                await closing


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    pg = request.getfixturevalue("pg_schema") if request.param == "postgres" else None
    storage = Databases(request.param, sqlite_path=tmp_path / "insights.db", pg=pg)
    yield storage
    await storage.close()


@pytest.fixture
def os_prefix(opensearch_url: str) -> Iterator[str]:
    """A fresh index prefix for one test; its indices, aliases and templates go afterwards."""
    from opensearchpy import AsyncOpenSearch  # noqa: PLC0415

    prefix = unique_name("t-")
    yield prefix

    async def clean() -> None:
        client = AsyncOpenSearch(hosts=[opensearch_url])
        try:
            await client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
            templates = await client.indices.get_index_template(name=f"{prefix}*", ignore=[404])
            for template in templates.get("index_templates", []):
                await client.indices.delete_index_template(name=template["name"])
        finally:
            await client.close()

    run_async(clean)


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic prefix for one test; its topics are deleted afterwards."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    prefix = unique_name("t.")
    yield prefix

    async def clean() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            mine = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    run_async(clean)
