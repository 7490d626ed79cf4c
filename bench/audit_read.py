"""What the audit trail costs the read path: the query process's own app, once recording every
read in PostgreSQL as it does in production and once recording nothing, side by side in one run.

    uv run --no-sync python -m bench.audit_read [--manifest PATH] [--clients 20]
        [--seconds 60] [--slice 5] [--json]

Against a deployment bench.generate loaded (its OpenSearch indices, read from the manifest). This
process builds the distributed query process's HTTP app twice (`distributed.service_app` over
`create_query`, the same OpenSearch store, the same PostgreSQL key store and sessions): "recorded"
appends each entry through `GroupedAuditLog` over `PostgresAuditLog` before answering, as the
query process does; "unrecorded" is the same app with a trail that keeps nothing, the control.
`--clients` concurrent clients call it through ASGI (no sockets, no proxy: what is left is the
process's own work and its round trips to OpenSearch and PostgreSQL, so the trail's share is
the largest it can be) with the recorded kinds of bench.query's mix (user + stats, message list,
message details of its user as the dashboard reads them, message details by id) and one kind
that is never recorded (search by exact id), each sending its next request when the last is
answered.

The two apps run in alternating slices of `--slice` seconds, so the machine's other load falls
on both alike. Prints per kind p50 and p99 of each, the recorded/unrecorded ratio of p99, the
requests a second, and the CPU this process and PostgreSQL spent per request (PostgreSQL's from
/proc: every server process of this machine, so only meaningful on a server nobody else uses). On
POSTGRES_DSN, in a fresh schema removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from bench.ingest import quantile
from bench.manifest import DEFAULT_PATH, Manifest
from bench.query_mix import BY_NAME, Pools, Spec
from insights.distributed import access_of, key_store, service_app
from insights_common.audit import AuditEntry, AuditFilter, verify
from insights_common.auth import SecretBox
from insights_common.kafka import KafkaBus, KafkaOptions
from insights_common.pg_retention import PostgresRetentionSettings
from insights_common.postgres import PostgresDatabase
from insights_common.settings import KeyCacheSettings
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import create_distributed
from insights_query.settings import QuerySettings

RECORDED = ("user", "messages", "message_of_user", "message")
CONTROL = ("search_id",)
VARIANTS = ("unrecorded", "recorded")


class Unrecorded:
    """The control: a trail that keeps nothing (what the read path costs without one)."""

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return entry

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        return list(entries)

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        return []

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        return []


@dataclass
class KindFigures:
    kind: str
    recorded: bool
    unrecorded_p50_ms: float
    unrecorded_p99_ms: float
    recorded_p50_ms: float
    recorded_p99_ms: float
    p99_ratio: float


@dataclass
class Figures:
    clients: int
    seconds_each: float
    kinds: list[KindFigures]
    requests_per_s: dict[str, float]
    cpu_us_per_request: dict[str, float]
    postgres_cpu_us_per_request: dict[str, float]
    entries: int
    chain_intact: bool


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its CPU is read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (those gone since count as nothing)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


async def measure(
    manifest: Manifest, dsn: str, *, clients: int, seconds: float, slice_s: float
) -> Figures:
    deployment = manifest.deployment
    if deployment is None:
        raise SystemExit("the manifest names no deployment: run bench.generate with --keep")
    schema = f"bench_audit_read_{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        db = await PostgresDatabase.connect(dsn, schema=schema, max_size=10)
        stack.push_async_callback(db.close)

        async def drop_schema() -> None:
            async with db.acquire() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

        stack.push_async_callback(drop_schema)
        keys = await key_store(db, SecretBox(Fernet.generate_key()), KeyCacheSettings())
        key = await keys.create_api_key(deployment.app, scopes=("read",))
        access, trail = await access_of(db, keys)
        retention = PostgresRetentionSettings(db)
        await retention.migrate()
        client = create_client(deployment.opensearch_url)
        stack.push_async_callback(client.close)
        store = OpenSearchInsightsStore(client, prefix=deployment.index_prefix)
        # Only erases publish on it, and no request of the mix erases: it is never started.
        bus = KafkaBus(
            KafkaOptions(
                bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                topic_prefix=deployment.topic_prefix,
            )
        )
        apps = {}
        for variant in VARIANTS:
            audit = trail if variant == "recorded" else Unrecorded()
            _, _, parts = create_distributed(
                store=store,
                access=access,
                audit=audit,
                retention=retention,
                bus=bus,
                settings=QuerySettings(),
            )
            app = service_app(f"query ({variant})", parts, readiness=[])
            apps[variant] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 40000)),
                base_url="http://query.bench",
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            stack.push_async_callback(apps[variant].aclose)

        mix = Pools(manifest, seed=7, size=2000)
        pools = mix.build()
        found = [
            (spec.subject, await store.get_message(deployment.app, spec.subject))
            for spec in pools.get("message", [])
        ]
        owners = {message_id: d.user_id for message_id, d in found if d is not None}
        pools["message_of_user"] = mix.of_their_users(pools.get("message", []), owners)
        kinds = [kind for kind in (*RECORDED, *CONTROL) if pools.get(kind)]
        weights = [BY_NAME[kind].weight for kind in kinds]
        latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        answered: dict[str, int] = defaultdict(int)
        spent: dict[str, float] = defaultdict(float)
        own_cpu: dict[str, float] = defaultdict(float)
        pg_cpu: dict[str, float] = defaultdict(float)
        pids = postgres_pids()

        async def one_client(number: int, variant: str, until: float, record: bool) -> None:
            rng = random.Random(number)
            http = apps[variant]
            while time.perf_counter() < until:
                kind = rng.choices(kinds, weights)[0]
                spec: Spec = rng.choice(pools[kind])
                started = time.perf_counter()
                answer = await http.get(spec.path, params=spec.params)
                took = time.perf_counter() - started
                if answer.status_code not in (200, 404):
                    raise SystemExit(f"{spec.path}: {answer.status_code} {answer.text[:300]}")
                if record:
                    latencies[(variant, kind)].append(took)
                    answered[variant] += 1

        async def run_slice(variant: str, length: float, record: bool) -> None:
            cpu, pg, wall = time.process_time(), cpu_seconds(pids), time.perf_counter()
            until = wall + length
            await asyncio.gather(*(one_client(n, variant, until, record) for n in range(clients)))
            if record:
                own_cpu[variant] += time.process_time() - cpu
                pg_cpu[variant] += cpu_seconds(pids) - pg
                spent[variant] += time.perf_counter() - wall

        for variant in VARIANTS:  # warm up: connections, caches, the JIT of nothing
            await run_slice(variant, 2.0, record=False)
        turns = max(1, round(seconds / slice_s))
        for turn in range(turns):
            order = VARIANTS if turn % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                await run_slice(variant, slice_s, record=True)

        rows = []
        for kind in kinds:
            p = {variant: sorted(latencies[(variant, kind)]) for variant in VARIANTS}
            u50, u99 = quantile(p["unrecorded"], 0.5) * 1e3, quantile(p["unrecorded"], 0.99) * 1e3
            r50, r99 = quantile(p["recorded"], 0.5) * 1e3, quantile(p["recorded"], 0.99) * 1e3
            rows.append(
                KindFigures(
                    kind=BY_NAME[kind].label,
                    recorded=kind in RECORDED,
                    unrecorded_p50_ms=round(u50, 2),
                    unrecorded_p99_ms=round(u99, 2),
                    recorded_p50_ms=round(r50, 2),
                    recorded_p99_ms=round(r99, 2),
                    p99_ratio=round(r99 / u99, 2) if u99 else 0.0,
                )
            )
        checked = await verify(trail, deployment.app)
        return Figures(
            clients=clients,
            seconds_each=round(spent["recorded"], 1),
            kinds=rows,
            requests_per_s={v: round(answered[v] / spent[v], 1) for v in VARIANTS},
            cpu_us_per_request={v: round(own_cpu[v] / answered[v] * 1e6, 1) for v in VARIANTS},
            postgres_cpu_us_per_request={
                v: round(pg_cpu[v] / answered[v] * 1e6, 1) for v in VARIANTS
            },
            entries=checked.entries,
            chain_intact=checked.intact,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, for each app")
    parser.add_argument("--slice", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dsn = os.environ.get("POSTGRES_DSN", "postgresql://insights@127.0.0.1:5432/insights")
    figures = asyncio.run(
        measure(
            Manifest.load(args.manifest),
            dsn,
            clients=args.clients,
            seconds=args.seconds,
            slice_s=args.slice,
        )
    )
    if args.json:
        print(json.dumps(asdict(figures)))
        return
    print(f"{args.clients} clients, {figures.seconds_each} s measured for each app, in turns")
    print(f"{'kind':<34} {'unrecorded p50/p99 ms':>22} {'recorded p50/p99 ms':>20} {'p99 x':>6}")
    for row in figures.kinds:
        label = row.kind + ("" if row.recorded else " (never recorded)")
        print(
            f"{label:<34} {row.unrecorded_p50_ms:>10.2f} / {row.unrecorded_p99_ms:<9.2f}"
            f" {row.recorded_p50_ms:>9.2f} / {row.recorded_p99_ms:<8.2f} {row.p99_ratio:>6.2f}"
        )
    for name in ("requests_per_s", "cpu_us_per_request", "postgres_cpu_us_per_request"):
        values = getattr(figures, name)
        print(f"{name:<28} unrecorded {values['unrecorded']:>9}   recorded {values['recorded']:>9}")
    print(f"entries written: {figures.entries}, chain intact: {figures.chain_intact}")


if __name__ == "__main__":
    main()
