"""How the cost grows with the app: load it cohort by cohort, and measure after each step.

    uv run --no-sync python -m bench.growth [--steps 100000,200000,500000,1000000]
        [--messages-per-user 10] [--seconds 30] [--clients 20] [--keep] [--json]

It starts the distributed deployment as bench.generate does and grows one app in it: each step
imports the users up to the step's count (by CSV files of 100,000 rows) and sends them
`--messages-per-user` messages each on average, by the raw topic, as a cohort of its own (its own
Zipf skew and message stream: an app that gained these users since the last step). When every
event is visible it records, for the step:

- the load: users/s and events/s until visible, and the CPU each process spent;
- the footprint: documents and bytes on disk of each OpenSearch index (primary store, after a
  flush), the OpenSearch heap used and committed (after the load, without forcing a GC), the
  PostgreSQL schema's size;
- the latencies: bench.query's mix at `--clients` for `--seconds` on the API and as long on its
  OpenSearch floor, with samples drawn from every cohort so far.

With `--keep` the full-size deployment stays running and its manifest (`--manifest`) is what
bench.query measures further (`--under-ingest`, longer runs); `bench.generate --down` removes it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import orjson
import uvloop
from opensearchpy import AsyncOpenSearch

from bench import generate, query
from bench.ingest import Names, Target
from bench.manifest import DEFAULT_PATH, Deployment, Manifest, Sampler
from bench.query_mix import KINDS
from insights_common.clock import utc_now

DEFAULT_STEPS = (100_000, 200_000, 500_000, 1_000_000)
MIB = 1024 * 1024


@dataclass
class Footprint:
    indices: dict[str, dict[str, int]]  # index -> docs, store_bytes (primaries)
    heap_used_bytes: int
    heap_committed_bytes: int
    heap_max_bytes: int
    postgres_bytes: int


@dataclass
class Step:
    users: int
    messages: int
    events: int
    load_seconds: float
    users_rate: float
    events_rate: float
    cpu_seconds: dict[str, float]
    footprint: Footprint
    query: query.Report


async def footprint(deployment: Deployment, postgres: str, schema: str | None) -> Footprint:
    client = AsyncOpenSearch(hosts=[deployment.opensearch_url], timeout=120)
    pattern = f"{deployment.index_prefix}-*"
    try:
        await client.indices.flush(index=pattern)
        stats = await client.indices.stats(index=pattern, metric="docs,store")
        nodes = await client.nodes.stats(metric="jvm")
    finally:
        await client.close()
    indices = {
        name.removeprefix(f"{deployment.index_prefix}-"): {
            "docs": found["primaries"]["docs"]["count"],
            "store_bytes": found["primaries"]["store"]["size_in_bytes"],
        }
        for name, found in sorted(stats["indices"].items())
    }
    heap = [node["jvm"]["mem"] for node in nodes["nodes"].values()]
    size = 0
    if schema:
        conn = await asyncpg.connect(postgres)
        try:
            size = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                schema,
            )
        finally:
            await conn.close()
    return Footprint(
        indices=indices,
        heap_used_bytes=sum(h["heap_used_in_bytes"] for h in heap),
        heap_committed_bytes=sum(h["heap_committed_in_bytes"] for h in heap),
        heap_max_bytes=sum(h["heap_max_in_bytes"] for h in heap),
        postgres_bytes=int(size),
    )


async def grow(
    target: Target, deployment: Deployment, names: Names, args: argparse.Namespace, now: datetime
) -> list[Step]:
    sampler = Sampler(args.seed)
    steps: list[Step] = []
    loaded = messages = events = 0
    for total in args.steps:
        cohort = total - loaded
        load_args = argparse.Namespace(
            seed=args.seed,
            users=cohort,
            messages=cohort * args.messages_per_user,
            first_user=loaded,
            days=args.days,
            zipf=args.zipf,
            door="raw",
            connections=4,
            manifest=args.manifest,
        )
        print(
            f"== step to {total:,} users: +{cohort:,} users, +{load_args.messages:,} messages",
            file=sys.stderr,
            flush=True,
        )
        report, manifest = await generate.load(target, deployment, load_args, now, sampler)
        loaded, messages, events = (
            total,
            messages + load_args.messages,
            events + report.messages.events,
        )
        manifest.messages, manifest.events = messages, events
        manifest.save(args.manifest)
        print("   measuring footprint and latencies ...", file=sys.stderr, flush=True)
        sizes = await footprint(deployment, os.environ["POSTGRES_DSN"], f"bench_{names.run}")
        query_args = argparse.Namespace(
            clients=args.clients,
            seconds=args.seconds,
            under_ingest=0,
            pool=args.pool,
            seed=1,
            kinds=[kind.name for kind in KINDS],
        )
        measured = await query.run(query_args, manifest, deployment)
        steps.append(
            Step(
                users=total,
                messages=messages,
                events=events,
                load_seconds=report.elapsed_seconds,
                users_rate=report.users.rate,
                events_rate=report.messages.rate,
                cpu_seconds=report.cpu_seconds,
                footprint=sizes,
                query=measured,
            )
        )
        show_step(steps[-1])
    return steps


def run(args: argparse.Namespace, now: datetime) -> list[Step]:
    """Grow an app in a deployment of its own, removed at the end unless --keep."""
    with generate.own_deployment(keep=args.keep, query_replicas=args.query_replicas) as (
        target,
        deployment,
        names,
    ):
        steps = uvloop.run(grow(target, deployment, names, args, now))
        if not args.keep:
            manifest = Manifest.load(args.manifest)
            manifest.deployment = None
            manifest.save(args.manifest)
    return steps


# -- output ----------------------------------------------------------------------------------


def show_step(step: Step) -> None:
    f = step.footprint
    print(
        f"-- {step.users:,} users, {step.messages:,} messages ({step.events:,} events):"
        f" this step loaded at {step.users_rate:,.0f} users/s and {step.events_rate:,.0f} events/s"
    )
    disk = ", ".join(
        f"{name} {found['docs']:,} docs {found['store_bytes'] / MIB:,.0f} MiB"
        for name, found in f.indices.items()
    )
    print(f"   on disk: {disk}; PostgreSQL {f.postgres_bytes / MIB:,.0f} MiB")
    print(
        f"   OpenSearch heap: {f.heap_used_bytes / MIB:,.0f} MiB used,"
        f" {f.heap_committed_bytes / MIB:,.0f} committed, {f.heap_max_bytes / MIB:,.0f} max"
    )
    query.show_phase("   latencies (ms)", step.query.quiet)
    sys.stdout.flush()


def show(steps: list[Step]) -> None:
    kinds = [kind for kind in KINDS if any(s.query.quiet.api[kind.name].requests for s in steps)]
    print("== growth: sizes in MiB; API p99 in ms per kind (API p99 / floor p99 beside it)")
    print("   " + "; ".join(f"{n} = {kind.label}" for n, kind in enumerate(kinds, 1)))
    head = f"{'users':>10}{'messages':>12}{'msgs':>7}{'users':>7}{'heap':>6}{'req/s':>7}"
    print(head + "".join(f"{n:>13}" for n in range(1, len(kinds) + 1)))
    for step in steps:
        sizes = {name: found["store_bytes"] / MIB for name, found in step.footprint.indices.items()}
        messages = sum(size for name, size in sizes.items() if name.startswith("messages"))
        users = sum(size for name, size in sizes.items() if name.startswith("users"))
        q = step.query.quiet
        cells = "".join(
            f"{q.api[k.name].p99_ms:>7.0f} ({query.ratio(q.api[k.name], q.raw[k.name]):.1f})"
            for k in kinds
        )
        print(
            f"{step.users:>10,}{step.messages:>12,}{messages:>7,.0f}{users:>7,.0f}"
            f"{step.footprint.heap_used_bytes / MIB:>6,.0f}{q.api_rate:>7,.0f}{cells}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--steps",
        default=",".join(str(n) for n in DEFAULT_STEPS),
        help="the user counts to measure at, ascending (default %(default)s)",
    )
    parser.add_argument("--messages-per-user", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--zipf", type=float, default=0.8)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30, help="per step, on API and floor")
    parser.add_argument("--pool", type=int, default=100, help="requests drawn per kind")
    parser.add_argument("--keep", action="store_true", help="leave the grown deployment running")
    parser.add_argument(
        "--query-replicas",
        type=int,
        default=1,
        help="query processes behind the edge, which sends them requests in turn",
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    try:
        args.steps = [int(n.replace("_", "")) for n in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps must be user counts separated by commas, not {args.steps!r}")
    if any(n < 1 for n in args.steps) or args.steps != sorted(set(args.steps)):
        parser.error("--steps must be positive and ascending")
    if args.messages_per_user < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--messages-per-user, --clients and --seconds must be positive")
    if args.query_replicas < 1:
        parser.error("--query-replicas must be at least 1")
    now = utc_now().replace(microsecond=0)
    signal.signal(signal.SIGINT, generate.interrupt)
    signal.signal(signal.SIGTERM, generate.interrupt)
    began = time.perf_counter()
    try:
        steps = run(args, now)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    if args.json:
        print(orjson.dumps([asdict(step) for step in steps]).decode())
        return
    show(steps)
    print(f"elapsed {time.perf_counter() - began:,.0f} s; manifest {args.manifest}")
    if args.keep:
        print(
            f"kept: measure it with `uv run --no-sync python -m bench.query --manifest"
            f" {args.manifest}`, remove it with `uv run --no-sync python -m bench.generate --down"
            f" --manifest {args.manifest}`"
        )


if __name__ == "__main__":
    main()
