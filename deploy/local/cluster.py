#!/usr/bin/env python3
"""Three Kafka brokers and three OpenSearch nodes on loopback, to lose one of each.

Beside the single-node services of services.py, with their own ports and data; they share its
fetched Kafka and OpenSearch. Standard library only.

    python deploy/local/services.py cluster up [NODE ...]     # prints shell exports
    python deploy/local/services.py cluster down [--purge] [NODE ...]
    python deploy/local/services.py cluster kill NODE ...     # SIGKILL, as a crash; `up NODE` after
    python deploy/local/services.py cluster status | env [NODE ...]

NODE is kafka-1, kafka-2, kafka-3, opensearch-1, opensearch-2 or opensearch-3. Kafka runs in
KRaft mode, each node a broker and a controller (a quorum of three: two keep it), the internal
topics with three copies and `min.insync.replicas` 2. The OpenSearch nodes form one cluster,
each eligible as cluster manager. See deploy/local/README.md.
"""

# A command-line tool: it prints, and it runs programs found on this machine by design.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error

from services import (
    Kafka,
    OpenSearch,
    Service,
    ServiceError,
    Settings,
    _env_port,
    _kafka_uuid,
    in_parallel,
    kafka_metadata,
    say,
    tail,
)

NODES = 3
KAFKA_MIN_ISR = 2
OPENSEARCH_CLUSTER_NAME = "user-insights-cluster"


def port_base() -> int:
    """Node i (1-3) listens on base+92+2i (Kafka), +93+2i (its controller), +200+i (OpenSearch
    HTTP) and +300+i (transport): 29094-29099, 29201-29203, 29301-29303 by default."""
    return _env_port("CLUSTER_PORT_BASE", 29000)


class KafkaNode(Kafka):
    replicas = NODES
    min_isr = KAFKA_MIN_ISR
    session_timeout_ms = 6000
    heartbeat_ms = 1500

    def __init__(self, settings: Settings, node: int) -> None:
        self.name = f"kafka-{node}"
        self.node_id = node
        super().__init__(settings)
        self.dir = settings.state_dir / "cluster" / self.name
        self.pid_file = self.dir / "kafka.pid"
        self.log_file = self.dir / "kafka.log"
        self.ports_file = self.dir / "ports.json"
        self.lock_file = settings.state_dir / "cluster" / f".{self.name}.lock"

    @property
    def broker_port(self) -> int:
        return port_base() + 92 + 2 * self.node_id

    @property
    def controller_port(self) -> int:
        return self.broker_port + 1

    def voters(self) -> str:
        return ",".join(f"{n}@127.0.0.1:{port_base() + 93 + 2 * n}" for n in range(1, NODES + 1))

    def new_cluster_id(self) -> str:
        """The one id every node's storage is formatted with, made by the first to ask."""
        shared = self.settings.state_dir / "cluster" / "kafka-cluster-id"
        shared.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(shared, "x") as created:
                created.write(_kafka_uuid())
        except FileExistsError:
            pass
        return shared.read_text().strip()


class OpenSearchNode(OpenSearch):
    cluster_name = OPENSEARCH_CLUSTER_NAME

    def __init__(self, settings: Settings, node: int) -> None:
        self.name = f"opensearch-{node}"
        self.node = node
        self.node_name = f"node-{node}"
        super().__init__(settings)
        self.dir = settings.state_dir / "cluster" / self.name
        self.pid_file = self.dir / "opensearch.pid"
        self.log_file = self.dir / "opensearch.log"
        self.ports_file = self.dir / "ports.json"
        self.lock_file = settings.state_dir / "cluster" / f".{self.name}.lock"

    @property
    def http_port(self) -> int:
        return port_base() + 200 + self.node

    @property
    def transport_port(self) -> int:
        return port_base() + 300 + self.node

    def discovery(self) -> str:
        seeds = ", ".join(f"127.0.0.1:{port_base() + 300 + n}" for n in range(1, NODES + 1))
        managers = ", ".join(f"node-{n}" for n in range(1, NODES + 1))
        return (
            f"discovery.seed_hosts: [{seeds}]\n"
            f"cluster.initial_cluster_manager_nodes: [{managers}]\n"
        )


def nodes(settings: Settings) -> list[Service]:
    kafka: list[Service] = [KafkaNode(settings, n) for n in range(1, NODES + 1)]
    search: list[Service] = [OpenSearchNode(settings, n) for n in range(1, NODES + 1)]
    return kafka + search


def exports() -> dict[str, str]:
    base = port_base()
    search = [f"http://127.0.0.1:{base + 200 + n}" for n in range(1, NODES + 1)]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(
            f"127.0.0.1:{base + 92 + 2 * n}" for n in range(1, NODES + 1)
        ),
        "KAFKA_REPLICATION_FACTOR": str(NODES),
        "KAFKA_MIN_INSYNC_REPLICAS": str(KAFKA_MIN_ISR),
        "OPENSEARCH_URL": ",".join(search),
        "OPENSEARCH_REPLICAS": "1",
    }


def wait_whole(settings: Settings, running: list[Service]) -> None:
    """Until every running Kafka node is a broker of the cluster and the OpenSearch cluster
    counts every running node: a node that answers alone has not joined yet."""
    kafka = [n for n in running if isinstance(n, KafkaNode)]
    search = [n for n in running if isinstance(n, OpenSearchNode)]
    deadline = time.monotonic() + settings.timeout
    while time.monotonic() < deadline:
        brokers: set[int] = set()
        for node in kafka:
            try:
                brokers.update(kafka_metadata("127.0.0.1", node.broker_port)[0])
            except (OSError, ValueError):
                continue
        joined = 0
        for node in search:
            try:
                joined = max(joined, node.request("GET", "/_cluster/health")["number_of_nodes"])
            except (OSError, ValueError, KeyError, urllib.error.URLError):
                continue
        if brokers >= {n.node_id for n in kafka} and joined >= len(search):
            return
        time.sleep(0.5)
    raise ServiceError(
        f"the cluster did not form in {settings.timeout:.0f}s (INSIGHTS_SERVICES_TIMEOUT)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="services.py cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("up", "down", "kill", "status", "env", "logs"))
    parser.add_argument("names", nargs="*", metavar="NODE", help="default: every node")
    parser.add_argument("--purge", action="store_true", help="down: also delete their data")
    args = parser.parse_args(argv)
    os.umask(0o022)
    try:
        settings = Settings.from_env()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    every = nodes(settings)
    known = {n.name: n for n in every}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown node {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.command == "kill" and not args.names:
        parser.error("kill takes the nodes to kill (kafka-2, opensearch-1, ...)")
    chosen = [known[n] for n in dict.fromkeys(args.names)] or every

    if args.command == "env":
        for key, value in exports().items():
            print(f"export {key}={value}")
        return 0
    if args.command == "logs":
        for node in chosen:
            print(f"--- {node.log_file}\n{tail(node.log_file, 60, since_mark=False)}")
        return 0
    if args.command == "status":
        results = [node.status() for node in chosen]
        for _, line in results:
            print(line)
        return 0 if all(ok for ok, _ in results) else 1
    if args.command == "down":
        errors = in_parallel(chosen, lambda n: n.down(purge=args.purge))
    elif args.command == "kill":
        errors = in_parallel(chosen, lambda n: n.kill())
    else:
        began = time.monotonic()
        (settings.state_dir / "cluster").mkdir(parents=True, exist_ok=True)
        # Each node waits for itself; a node of a forming cluster answers only once it has
        # found the others, so they all start at once.
        errors = in_parallel(chosen, lambda n: n.up())
        if not errors:
            try:
                wait_whole(settings, [n for n in every if n.running_pid() is not None])
            except ServiceError as exc:
                errors.append(str(exc))
        if not errors:
            say(
                "cluster",
                f"{', '.join(n.name for n in chosen)} up in {time.monotonic() - began:.1f}s",
            )
            for key, value in exports().items():
                print(f"export {key}={value}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
