"""Losing a node of a three-node cluster, and adding replicas of the product's processes.

The distributed deployment runs on three Kafka brokers (replication factor 3,
`min.insync.replicas` 2) and three OpenSearch nodes (one replica per shard), started by
`deploy/local/services.py cluster up` on ports of their own; PostgreSQL is the shared one.
Each test streams signed webhook batches through the edge and checks, once the stream stops:

- a broker or a node SIGKILLed meanwhile costs no refusal (a quorum still stands): every
  request was answered 202;
- every event answered 202 is in the API exactly once, and every user of an import;
- the killed node, started again, rejoins: each partition's in-sync replicas are all three
  brokers again, the OpenSearch cluster is green with three nodes.

`make test-cluster` runs them (marked `cluster`, left out of the other targets); `make test` ends
with it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deployments import DistributedDeployment
from tests.e2e.test_faults import APP, WebhookStream, listed_messages, upload

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SERVICES = [sys.executable, str(ROOT / "deploy/local/services.py"), "cluster"]
IMPORT_ROWS = 20_000
SETTLE_LIMIT = 600.0  # the projection of an import on 2 cores shared with six servers
PUBLISH_TIMEOUT = 20.0  # past the cluster's broker.session.timeout.ms (6 s) and the election


@dataclass
class Cluster:
    exports: dict[str, str]

    @property
    def kafka(self) -> str:
        return self.exports["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def opensearch(self) -> str:
        return self.exports["OPENSEARCH_URL"]

    def tool(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own tool
            [*SERVICES, *args], capture_output=True, text=True, timeout=900, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def kill(self, node: str) -> None:
        self.tool("kill", node)

    def up(self, *nodes: str) -> None:
        self.tool("up", *nodes)

    def search(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the first OpenSearch node that answers."""
        for url in self.opensearch.split(","):
            try:
                return httpx.request(method, url + path, timeout=30, **kwargs)
            except httpx.TransportError:
                continue
        raise AssertionError("no OpenSearch node answers")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The cluster, started when it is not running (it is left running, like the shared
    servers; `make test-cluster` stops it after). Every node is up again at the end."""
    printed = subprocess.run(  # noqa: S603 - our own tool
        [*SERVICES, "up"], capture_output=True, text=True, timeout=900, check=False
    )
    assert printed.returncode == 0, printed.stderr[-3000:]
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.stdout.splitlines()
        if line.startswith("export ")
    )
    running = Cluster(exports)
    try:
        yield running
    finally:
        running.up()


@pytest.fixture(scope="module")
def deployment(
    cluster: Cluster, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DistributedDeployment]:
    tag = uuid.uuid4().hex[:8]
    running = DistributedDeployment(
        work_dir=tmp_path_factory.mktemp("cluster"),
        kafka=cluster.kafka,
        opensearch=cluster.opensearch,
        postgres=request.getfixturevalue("postgres_dsn"),
        topic_prefix=f"cluster-{tag}.",
        index_prefix=f"cluster-{tag}",
        schema=f"cluster_{tag}",
        extra_env={
            "KAFKA_REPLICATION_FACTOR": cluster.exports["KAFKA_REPLICATION_FACTOR"],
            "KAFKA_MIN_INSYNC_REPLICAS": cluster.exports["KAFKA_MIN_INSYNC_REPLICAS"],
            "OPENSEARCH_REPLICAS": cluster.exports["OPENSEARCH_REPLICAS"],
            "KAFKA_PUBLISH_TIMEOUT": str(PUBLISH_TIMEOUT),
        },
        ready_limit=300,
    )
    try:
        yield running
    finally:
        running.stop()
        _drop_schema(request.getfixturevalue("postgres_dsn"), f"cluster_{tag}")
        cluster.search("DELETE", f"/cluster-{tag}*")


def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg  # noqa: PLC0415

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="module")
def key(deployment: DistributedDeployment) -> str:
    return deployment.cli("keys", "create", "--app", APP)


@pytest.fixture(scope="module")
def secret(deployment: DistributedDeployment) -> str:
    return deployment.cli("webhooks", "secret", "--app", APP)


def people(tag: str) -> bytes:
    rows = [f"{tag}.{n:06d},+8210{30_000_000 + n:08d}" for n in range(IMPORT_ROWS)]
    return ("user_id,phone_number\n" + "\n".join(rows) + "\n").encode()


@dataclass
class Seen:
    acknowledged: int
    visible: int
    doubled: int
    refused: list[str]
    import_status: str = "none"
    imported: int = 0


def settle(
    stream: WebhookStream,
    deployment: DistributedDeployment,
    cluster: Cluster,
    *,
    key: str,
    location: str | None = None,
    tag: str = "",
) -> Seen:
    """Wait until the stream's events (and the import's users) are all visible, at most
    SETTLE_LIMIT; answer what was seen last."""
    deadline = time.monotonic() + SETTLE_LIMIT
    refused = [f"{a.status} {a.text[:200]}" for a in stream.answers if a.status != 202]
    seen = Seen(stream.acknowledged, 0, 0, refused)
    with deployment.client(key) as api:
        while True:
            try:
                visible = doubled = 0
                for user_id, ids in stream.acked.items():
                    listed = listed_messages(api, user_id)
                    visible += len(ids & set(listed))
                    doubled += len(listed) - len(set(listed))
                seen.visible, seen.doubled = visible, doubled
                if location is not None:
                    seen.import_status = str(api.get(location).json().get("status"))
                    seen.imported = imported_users(cluster, deployment.index_prefix, tag)
            except (AssertionError, httpx.HTTPError):
                pass  # asked again
            else:
                taken = location is None or (
                    seen.import_status == "completed" and seen.imported == IMPORT_ROWS
                )
                if seen.visible == seen.acknowledged and taken:
                    return seen
            if time.monotonic() > deadline:
                return seen
            time.sleep(1)


def imported_users(cluster: Cluster, index_prefix: str, tag: str) -> int:
    query = {
        "query": {
            "bool": {"filter": [{"term": {"app_id": APP}}, {"prefix": {"user_id": f"{tag}."}}]}
        }
    }
    answer = cluster.search("POST", f"/{index_prefix}-users/_count", json=query)
    answer.raise_for_status()
    return int(answer.json()["count"])


def partitions_short_of_isr(cluster: Cluster, prefix: str) -> list[str]:
    """The partitions of the deployment's topics whose in-sync replicas are not all three."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    async def describe() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.kafka.split(","))
        await admin.start()
        try:
            topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
            short = []
            for topic in await admin.describe_topics(topics):
                for partition in topic["partitions"]:
                    if len(partition["isr"]) < 3:
                        short.append(f"{topic['topic']}/{partition['partition']}")
            return short
        finally:
            await admin.close()

    return asyncio.run(describe())


def group_shares(
    cluster: Cluster,
    deployment: DistributedDeployment,
    what: str,
    wanted: Callable[[list[int]], bool],
    limit: float = 300.0,
) -> list[int]:
    """The projectors' group's shares (`projector_shares`) once `wanted` takes them."""
    deadline = time.monotonic() + limit
    while not wanted(shares := projector_shares(cluster, deployment)):
        assert time.monotonic() < deadline, f"{what}: not after {limit:.0f} s (last {shares})"
        time.sleep(1)
    return shares


def projector_shares(cluster: Cluster, deployment: DistributedDeployment) -> list[int]:
    """How many partitions each member of the projectors' consumer group holds, once the
    group is stable (none while it rebalances)."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment  # noqa: PLC0415

    group = f"{deployment.topic_prefix}insights-projector"

    async def describe() -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.kafka.split(","))
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        (described,) = response.to_object()["groups"]
        if described["state"] != "Stable":
            return []
        return [
            len(ConsumerProtocolMemberAssignment.decode(member["member_assignment"]).partitions())
            for member in described["members"]
        ]

    return asyncio.run(describe())


def until(check: Any, what: str, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {limit:.0f} s"
        time.sleep(1)


def stream_during(
    deployment: DistributedDeployment, secret: str, tag: str, during: Any
) -> WebhookStream:
    """Stream webhooks, call `during()` a few seconds in, then stream a few seconds more."""
    stream = WebhookStream(deployment.url, secret, tag)
    stream.start()
    try:
        time.sleep(3)
        during()
        time.sleep(5)
    finally:
        stream.stopping.set()
        stream.join(timeout=330)
    assert not stream.is_alive() and stream.error is None, stream.error
    return stream


def check(seen: Seen, *, with_import: bool = False) -> None:
    print(f"\n{seen}", flush=True)  # noqa: T201 - the figures, with -s
    assert seen.acknowledged > 0
    assert not seen.refused, seen.refused[:5]
    assert (seen.visible, seen.doubled) == (seen.acknowledged, 0), seen
    if with_import:
        assert (seen.import_status, seen.imported) == ("completed", IMPORT_ROWS), seen


def test_a_broker_lost_during_a_stream_and_an_import(
    cluster: Cluster, deployment: DistributedDeployment, key: str, secret: str
) -> None:
    tag = f"broker-{uuid.uuid4().hex[:6]}"
    uploaded: dict[str, str] = {}

    def lose_a_broker() -> None:
        with deployment.client(key) as api:
            location, answers = upload(api, people(tag))
        assert [a.status for a in answers] == [202], answers
        uploaded["location"] = location
        cluster.kill("kafka-2")  # while the import is published and projected
        time.sleep(8)  # past broker.session.timeout.ms: its partitions are led elsewhere

    stream = stream_during(deployment, secret, tag, lose_a_broker)
    seen = settle(stream, deployment, cluster, key=key, location=uploaded["location"], tag=tag)
    check(seen, with_import=True)

    cluster.up("kafka-2")
    until(
        lambda: not partitions_short_of_isr(cluster, deployment.topic_prefix),
        "kafka-2 back in every partition's in-sync replicas",
    )
    # And the deployment goes on as before.
    after = stream_during(deployment, secret, f"{tag}-after", lambda: None)
    check(settle(after, deployment, cluster, key=key))


def test_an_opensearch_node_lost_during_a_stream(
    cluster: Cluster, deployment: DistributedDeployment, key: str, secret: str
) -> None:
    tag = f"node-{uuid.uuid4().hex[:6]}"
    # The first node: the one every client tries first.
    stream = stream_during(deployment, secret, tag, lambda: cluster.kill("opensearch-1"))
    check(settle(stream, deployment, cluster, key=key))

    cluster.up("opensearch-1")

    def green() -> bool:
        health = cluster.search("GET", "/_cluster/health").json()
        return bool(health["status"] == "green" and health["number_of_nodes"] == 3)

    until(green, "the OpenSearch cluster green with three nodes")
    after = stream_during(deployment, secret, f"{tag}-after", lambda: None)
    check(settle(after, deployment, cluster, key=key))


def test_projector_replicas_one_three_one_during_a_stream(
    cluster: Cluster, deployment: DistributedDeployment, key: str, secret: str
) -> None:
    tag = f"scale-{uuid.uuid4().hex[:6]}"

    def scale() -> None:
        # A projector is a member of the group for each of its subscribers: count them first.
        alone = len(group_shares(cluster, deployment, "the first projector", bool))
        for name in ("projector-2", "projector-3"):
            deployment.add_replica("projector", name)
        # The group shares the partitions among the three (whether or not their partitions get
        # records meanwhile), then, the two stopped, gives them all back to the first.
        group_shares(
            cluster,
            deployment,
            "three projectors, each subscriber with partitions",
            lambda shares: len(shares) == 3 * alone and min(shares) > 0,
        )
        for name in ("projector-3", "projector-2"):
            deployment.stop_one(name)
            del deployment.processes[name]
        group_shares(
            cluster, deployment, "the first projector alone", lambda shares: len(shares) == alone
        )

    stream = stream_during(deployment, secret, tag, scale)
    check(settle(stream, deployment, cluster, key=key))


def test_two_ingest_and_two_import_replicas_behind_the_edge(
    cluster: Cluster, deployment: DistributedDeployment, key: str, secret: str
) -> None:
    tag = f"edge-{uuid.uuid4().hex[:6]}"
    work = deployment.work_dir
    deployment.add_replica("ingest", "ingest-2")
    deployment.add_replica(
        "import",
        "import-2",
        env={"IMPORT_REPLICA_ID": "import-2", "IMPORT_DATA_DIR": str(work / "import-2")},
    )
    edge = deployment.edge
    edge.stop()
    edge.ingest_upstream = ",".join(
        f"127.0.0.1:{deployment.ports[name]}" for name in ("ingest", "ingest-2")
    )
    edge.import_upstream = ",".join(
        f"127.0.0.1:{deployment.ports[name]}" for name in ("import", "import-2")
    )
    edge.start()
    try:
        locations: list[str] = []

        def two_imports() -> None:
            with deployment.client(key) as api:
                for part in ("a", "b"):
                    location, answers = upload(api, people(f"{tag}{part}"))
                    assert [a.status for a in answers] == [202], answers
                    locations.append(location)

        stream = stream_during(deployment, secret, tag, two_imports)
        check(settle(stream, deployment, cluster, key=key))
        for part, location in zip("ab", locations, strict=True):
            seen = settle(
                stream, deployment, cluster, key=key, location=location, tag=f"{tag}{part}"
            )
            check(seen, with_import=True)
        # Both replicas of each took requests.
        upstreams = {
            json.loads(line)["upstream"]
            for line in edge.access_log.read_text().splitlines()
            if line.strip()
        }
        for name in ("ingest", "ingest-2", "import", "import-2"):
            assert f"127.0.0.1:{deployment.ports[name]}" in upstreams, (name, upstreams)
    finally:
        edge.stop()
        edge.ingest_upstream = f"127.0.0.1:{deployment.ports['ingest']}"
        edge.import_upstream = f"127.0.0.1:{deployment.ports['import']}"
        edge.start()
