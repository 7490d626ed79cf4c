"""What the audit trail costs the read path: the query process's own app recording every read in
PostgreSQL as it does in production, and recording nothing, side by side in one run.

    uv run --no-sync python -m bench.audit_read [--manifest PATH] [--clients 20]
        [--seconds 60] [--slice 5] [--over asgi|http] [--linger MS[,MS...]|none]
        [--spool [SECONDS[,SECONDS...]]]
        [--in-process] [--unsent]
        [--again] [--rounds N] [--seed N] [--json]

Against a deployment bench.generate loaded (its OpenSearch indices, read from the manifest). This
process builds the distributed query process's HTTP app once per variant (`service_app` over
`build_query`, the same OpenSearch store, the same PostgreSQL key store and sessions):
"recorded, spooled" (`--spool`) writes each entry to a spool file before answering, and a
shipper, a process of its own beside the app (`insights audit ship`), takes them into PostgreSQL,
as the query process does by default (`--spool 0.1,0.5`: one such app per pause between the
shipper's passes; `--in-process`: the same shipper as a task of the app's own
process, as in the embedded mode; `--unsent`: an app that spools its entries and never ships
them, what the read path alone pays); "recorded, linger N ms" answers once PostgreSQL has the
entry, as with AUDIT_SPOOL=false; "unrecorded" is the same app with a trail that keeps nothing,
the control.
`--clients` concurrent clients call each with the recorded kinds of bench.query's mix (user +
stats, message list, message details of its user as the dashboard reads them, message details
by id) and one kind that is never recorded (search by exact id), each sending its next request
when the last is answered. `--over asgi` (the default) calls the apps in this process, through
ASGI: no sockets, no HTTP, the clients on the apps' own event loop, so the trail's share is the
largest it can be.
`--over http` serves each app from a process of its own, as `insights serve query` runs (its
garbage collector, event loop and uvicorn's settings), called over loopback HTTP: what a caller
of the query process sees, the proxy aside.

`--linger 0,2,8` measures one recorded app without a spool per value of `GroupedAuditLog`'s
linger (how long an entry written beside a read waits for others to share its round trip; the
default is the product's; `none` for no such app). `--again` adds a second app of each
variant, in a process of its own: what two apps of one variant differ by (each process's own
memory layout, hash seed, place on the cores) is the benchmark's noise, the band a difference
must leave to be measured at all.

The apps run in turn, in slices of `--slice` seconds, each turn in an order of its own drawn at
random, so the machine's other load falls on all alike and no app is always at the same place of a
turn or next to the same app (with each turn the reverse of the last, the apps at the ends ran two
slices in a row at every turn). Prints per kind each app's p50 and p99 and its p99 over the
unrecorded app's; the requests a second; the CPU the app's process, its shipper and PostgreSQL
spent per request (PostgreSQL's from /proc: every server process of this machine, so only
meaningful on a server nobody else uses); and how many entries a transaction of each recorded app
held. `--rounds N` measures N times, each round with processes of its own (started in an order
drawn at random), and ends with each recorded variant's difference from the unrecorded apps in
requests/s and CPU a request (the app's process alone, and with its shipper): its mean over the
rounds and the 95% confidence interval of that mean. An interval that holds 0 says the benchmark
cannot tell the variant from the control; with `--again`, the second unrecorded app against the
first shows how wide such an interval is for two apps that do the same. The orders come from a seed
drawn anew for each run and printed (`--seed` orders a run again as that one did), so the rounds
of two runs pooled together are each ordered independently.
On POSTGRES_DSN, in a fresh schema removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI

from bench.ingest import quantile
from bench.manifest import DEFAULT_PATH, Deployment, Manifest
from bench.query_mix import BY_NAME, Pools, Spec
from insights import audit_shipper
from insights.connections import access_of, key_store
from insights.distributed import service_app
from insights.tuning import freeze_startup_objects, run, server_config, tune_garbage_collector
from insights_common.audit import (
    AuditEntry,
    AuditFilter,
    AuditLog,
    GroupedAuditLog,
    SpoolMark,
    Trail,
    verify,
)
from insights_common.audit_ship import EVERY, InProcessShipping, ShipperProcess, SpoolShipper
from insights_common.audit_spool import AuditSpool, Shipping, SpooledTrail
from insights_common.auth import KeyStore, SecretBox
from insights_common.http.guard import HttpSettings
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.kafka.watermark import KafkaProjectionWatermark
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.retention import PostgresRetentionSettings
from insights_common.settings import KeyCacheSettings
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import build_query
from insights_query.settings import QuerySettings

RECORDED = ("user", "messages", "message_of_user", "message")
CONTROL = ("search_id",)
UNRECORDED = "unrecorded"
SPOOLED = "recorded, spooled"
RECORDED_BY_LINGER = "recorded"
"""The kind of app that answers once PostgreSQL has its entry (`recorded(linger)` names one)."""
UNSENT = "spooled, never shipped"
IN_PROCESS = "spooled, shipped in process"
"""The embedded mode's way: the same shipper, a task of the app's own process."""
AGAIN = " again"
"""The suffix of a variant's second app (`--again`)."""
OVER = ("asgi", "http")
BOX_VARIABLE = "BENCH_AUDIT_READ_BOX"


class Unrecorded:
    """The control: a trail that keeps nothing (what the read path costs without one)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return entry

    async def beside(self, entry: AuditEntry) -> AuditEntry:
        return entry

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        return list(entries)

    async def spooled(self, spool: str) -> int:
        return 0

    async def forget_spool(self, spool: str) -> None:
        return None

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        return []

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        return []


class Unshipped:
    """Runs no shipper: an app spooling through it pays what the read path pays for its entry,
    without the shipping."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def wake(self) -> None:
        return None


def recorded(linger_ms: float) -> str:
    """The name of the app recording with this linger."""
    return f"{RECORDED_BY_LINGER}, linger {linger_ms:g} ms"


def spooled(every: float) -> str:
    """The name of the app whose shipper, a process of its own, passes every `every` seconds
    (`SPOOLED` at the product's default)."""
    return SPOOLED if every == EVERY else f"{SPOOLED}, every {every:g} s"


def spooled_in(variant: str) -> float | None:
    """How often the shipper of an app so named passes; None when its name names no shipper
    process."""
    name = variant.removesuffix(AGAIN)
    if name == SPOOLED:
        return EVERY
    if not name.startswith(f"{SPOOLED}, every "):
        return None
    return float(name.removeprefix(f"{SPOOLED}, every ").removesuffix(" s"))


def linger_in(variant: str, kind: str) -> float | None:
    """The linger, in seconds, that the name of an app of this kind (`RECORDED_BY_LINGER`,
    `SPOOLED`) gives it; None when it names none (or is of another kind)."""
    prefix = f"{kind}, linger "
    name = variant.removesuffix(AGAIN)
    if not name.startswith(prefix):
        return None
    return float(name.removeprefix(prefix).removesuffix(" ms")) / 1e3


@dataclass
class KindFigures:
    kind: str
    recorded: bool
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    p99_ratio: dict[str, float]
    """Each app's p99 over the unrecorded app's."""


@dataclass
class Figures:
    clients: int
    seconds_each: float
    variants: list[str]
    kinds: list[KindFigures]
    requests_per_s: dict[str, float]
    cpu_us_per_request: dict[str, float]
    system_cpu_us_per_request: dict[str, float]
    """The part of cpu_us_per_request the kernel spent (system time)."""
    postgres_cpu_us_per_request: dict[str, float]
    entries_per_transaction: dict[str, float]
    entries: int
    chain_intact: bool
    shipper_cpu_us_per_request: dict[str, float] = field(default_factory=dict)
    """What a spooled app's shipper, a process of its own, spent per request of the app."""

    @property
    def cpu_with_shipper_us_per_request(self) -> dict[str, float]:
        """Each app's CPU a request, its shipper's included."""
        return {
            v: round(cpu + self.shipper_cpu_us_per_request.get(v, 0.0), 1)
            for v, cpu in self.cpu_us_per_request.items()
        }


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


def cpu_seconds(pids: Sequence[int], *, system: bool = False) -> float:
    """utime + stime of these processes (those gone since count as nothing); with `system`,
    stime alone: what the kernel spent on their behalf."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[12]) + (0 if system else int(fields[11]))
    return total / ticks


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent` now (a query process's shipper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def children_cpu_seconds(parent: int) -> float:
    """utime + stime of the processes whose parent is `parent` now."""
    return cpu_seconds(children(parent))


def shipper_process(every: float) -> Callable[[Path], Shipping]:
    """A spool directory's shipper, a process of its own passing every `every` seconds, as
    the query process starts it."""
    return lambda spool: ShipperProcess(audit_shipper.command(spool, every=every))


def in_process(log: AuditLog) -> Callable[[Path], Shipping]:
    """A spool directory's shipper into `log`, run as a task of this process."""
    return lambda spool: InProcessShipping(SpoolShipper(log, spool))


async def spooling(
    stack: AsyncExitStack,
    log: AuditLog,
    shipping: Callable[[Path], Shipping],
) -> tuple[SpooledTrail, Shipping]:
    """A trail over `log` through a spool in a directory of its own, shipped as `shipping`
    ships the directory; started, and stopped and the directory removed when `stack` closes."""
    directory = Path(tempfile.mkdtemp(prefix="bench-audit-spool-"))
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    shipper = shipping(directory)
    spool = AuditSpool(directory, max_bytes=sys.maxsize)  # the unshipped app's stays
    trail = SpooledTrail(GroupedAuditLog(log), spool, shipper)
    await trail.start()
    stack.push_async_callback(trail.stop)
    return trail, shipper


async def open_apps(
    stack: AsyncExitStack,
    deployment: Deployment,
    db: PostgresDatabase,
    keys: KeyStore,
    variants: Sequence[str],
) -> tuple[dict[str, FastAPI], AuditLog, OpenSearchInsightsStore, dict[str, ShipperProcess]]:
    """The query process's app of each variant over the deployment's indices, the trail the
    recorded ones write to (to read it back), the store, and the spooled apps' shippers."""
    shippers: dict[str, ShipperProcess] = {}
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
    for variant in variants:
        audit: Trail
        if (every := spooled_in(variant)) is not None:  # as query_process records
            audit, shipper = await spooling(
                stack,
                PostgresAuditLog(db),
                shipper_process(every),
            )
            assert isinstance(shipper, ShipperProcess)  # noqa: S101 - made just above
            shippers[variant] = shipper
        elif variant.removesuffix(AGAIN) == IN_PROCESS:
            store_of = PostgresAuditLog(db)
            audit, _ = await spooling(stack, store_of, in_process(store_of))
        elif variant.removesuffix(AGAIN) == UNSENT:
            audit, _ = await spooling(stack, PostgresAuditLog(db), lambda _: Unshipped())
        elif (linger := linger_in(variant, RECORDED_BY_LINGER)) is not None:
            audit = GroupedAuditLog(PostgresAuditLog(db), linger=linger)  # spool off
        else:
            audit = Unrecorded()
        settings = QuerySettings()
        query = build_query(
            store=store,
            access=access,
            audit=audit,
            retention=retention,
            publisher=bus,
            watermark=KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group),
            settings=settings,
        )
        apps[variant] = service_app(f"query ({variant})", query.parts, readiness=[])
    return apps, trail, store, shippers


async def entries_per_transaction(db: PostgresDatabase, actors: dict[str, str]) -> dict[str, float]:
    """How many entries each recorded app's transactions held on average: rows written in one
    transaction share its id (`xmin`). `actors` names each app's caller."""
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, count(*) AS entries, count(DISTINCT xmin::text) AS transactions"
            " FROM audit_log GROUP BY actor"
        )
    by_actor = {row["actor"]: row["entries"] / row["transactions"] for row in rows}
    return {
        variant: round(by_actor[actor], 2) for variant, actor in actors.items() if actor in by_actor
    }


def _dsn() -> str:
    return os.environ.get("POSTGRES_DSN", "postgresql://insights@127.0.0.1:5432/insights")


async def serve(manifest: Manifest, variant: str, schema: str, port: int) -> None:
    """One app, in a process of its own, over HTTP (`--over http` starts two of these)."""
    deployment = manifest.deployment
    if deployment is None:
        raise SystemExit("the manifest names no deployment")
    async with AsyncExitStack() as stack:
        db = await PostgresDatabase.connect(_dsn(), schema=schema, max_size=10)
        stack.push_async_callback(db.close)
        box = SecretBox(os.environ[BOX_VARIABLE].encode())
        keys = await key_store(db, box, KeyCacheSettings())
        apps, _, _, _ = await open_apps(stack, deployment, db, keys, (variant,))
        freeze_startup_objects()
        config = server_config(
            apps[variant], HttpSettings(), host="127.0.0.1", port=port, log_level="warning"
        )
        await uvicorn.Server(config).serve()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(
    stack: AsyncExitStack, manifest_path: Path, variant: str, schema: str, box: bytes, port: int
) -> subprocess.Popen[bytes]:
    """`serve` of one variant in a new process, stopped when `stack` closes."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
        [
            sys.executable,
            *("-m", "bench.audit_read", "--serve", variant, "--schema", schema),
            *("--port", str(port), "--manifest", str(manifest_path)),
        ],
        env={**os.environ, BOX_VARIABLE: box.decode(), "POSTGRES_SCHEMA": schema},
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

    stack.callback(stop)
    return process


async def start_server(
    stack: AsyncExitStack, manifest_path: Path, variant: str, schema: str, box: bytes
) -> tuple[str, int]:
    """A process serving one variant: its address once it answers, and its pid."""
    port = free_port()
    process = spawn(stack, manifest_path, variant, schema, box, port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=2) as probe:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"the {variant} app's process ended ({process.returncode})")
            try:
                if (await probe.get("/healthz")).status_code == 200:
                    return url, process.pid
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"the {variant} app's process did not answer in 60 s")


async def measure(
    manifest: Manifest,
    manifest_path: Path,
    dsn: str,
    *,
    variants: Sequence[str],
    clients: int,
    seconds: float,
    slice_s: float,
    over: str,
    seed: int = 0,
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
        secret = Fernet.generate_key()
        keys = await key_store(db, SecretBox(secret), KeyCacheSettings())
        # The spooled apps' shippers are processes of their own, on this schema.
        os.environ.update(POSTGRES_DSN=dsn, POSTGRES_SCHEMA=schema)
        # Over HTTP the apps are the served processes': none is built here.
        built = variants if over == "asgi" else ()
        local, trail, store, shippers = await open_apps(stack, deployment, db, keys, built)
        apps: dict[str, httpx.AsyncClient] = {}
        cpu_of: dict[str, Callable[[], float]] = {}
        system_of: dict[str, Callable[[], float]] = {}
        shipper_of: dict[str, Callable[[], float]] = {}
        actors: dict[str, str] = {}
        for variant in variants:
            # A key of each app's own, so the trail tells whose entries are whose.
            key = await keys.create_api_key(deployment.app, scopes=("read",))
            info = await keys.resolve_api_key(key)
            if info is None:
                raise SystemExit("a key just made does not resolve")
            actors[variant] = f"key:{info.key_id}"
            headers = {"Authorization": f"Bearer {key}"}
            if over == "http":
                url, pid = await start_server(stack, manifest_path, variant, schema, secret)
                apps[variant] = httpx.AsyncClient(
                    base_url=url,
                    headers=headers,
                    timeout=60,
                    limits=httpx.Limits(
                        max_connections=clients,
                        max_keepalive_connections=clients,
                        # Dropped before the app's own keep-alive closes them while the other
                        # apps' slices run: a connection taken up again just as the app closes
                        # it ends its request with a ReadError.
                        keepalive_expiry=HttpSettings().keep_alive_seconds / 2,
                    ),
                )
                cpu_of[variant] = functools.partial(cpu_seconds, [pid])
                system_of[variant] = functools.partial(cpu_seconds, [pid], system=True)
                if spooled_in(variant) is not None:
                    shipper_of[variant] = functools.partial(children_cpu_seconds, pid)
            else:
                apps[variant] = httpx.AsyncClient(
                    transport=httpx.ASGITransport(
                        app=local[variant], client=("203.0.113.9", 40000)
                    ),
                    base_url="http://query.bench",
                    headers=headers,
                    timeout=60,
                )
                cpu_of[variant] = time.process_time
                system_of[variant] = lambda: os.times().system
                if variant in shippers:
                    shipper_of[variant] = functools.partial(
                        lambda shipper: cpu_seconds([shipper.pid or 0]), shippers[variant]
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
        own_system: dict[str, float] = defaultdict(float)
        shipper_cpu: dict[str, float] = defaultdict(float)
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
            cpu, pg, wall = cpu_of[variant](), cpu_seconds(pids), time.perf_counter()
            system = system_of[variant]()
            shipping = shipper_of.get(variant, lambda: 0.0)
            shipped = shipping()
            until = wall + length
            await asyncio.gather(*(one_client(n, variant, until, record) for n in range(clients)))
            if record:
                own_cpu[variant] += cpu_of[variant]() - cpu
                own_system[variant] += system_of[variant]() - system
                shipper_cpu[variant] += shipping() - shipped
                pg_cpu[variant] += cpu_seconds(pids) - pg
                spent[variant] += time.perf_counter() - wall

        for variant in variants:  # warm up: connections, caches, the JIT of nothing
            await run_slice(variant, 2.0, record=False)
        turns = max(1, round(seconds / slice_s))
        order = random.Random(seed)
        for _ in range(turns):
            for variant in order.sample(variants, len(variants)):
                await run_slice(variant, slice_s, record=True)

        rows = []
        for kind in kinds:
            p = {variant: sorted(latencies[(variant, kind)]) for variant in variants}
            p50 = {v: round(quantile(p[v], 0.5) * 1e3, 2) for v in variants}
            p99 = {v: round(quantile(p[v], 0.99) * 1e3, 2) for v in variants}
            base = p99[UNRECORDED]
            rows.append(
                KindFigures(
                    kind=BY_NAME[kind].label,
                    recorded=kind in RECORDED,
                    p50_ms=p50,
                    p99_ms=p99,
                    p99_ratio={v: round(p99[v] / base, 2) if base else 0.0 for v in variants},
                )
            )
        checked = await verify(trail, deployment.app)
        return Figures(
            clients=clients,
            seconds_each=round(min(spent.values()), 1),
            variants=list(variants),
            kinds=rows,
            requests_per_s={v: round(answered[v] / spent[v], 1) for v in variants},
            cpu_us_per_request={v: round(own_cpu[v] / answered[v] * 1e6, 1) for v in variants},
            system_cpu_us_per_request={
                v: round(own_system[v] / answered[v] * 1e6, 1) for v in variants
            },
            postgres_cpu_us_per_request={
                v: round(pg_cpu[v] / answered[v] * 1e6, 1) for v in variants
            },
            shipper_cpu_us_per_request={
                v: round(shipper_cpu[v] / answered[v] * 1e6, 1) for v in shipper_of
            },
            entries_per_transaction=await entries_per_transaction(db, actors),
            entries=checked.entries,
            chain_intact=checked.intact,
        )


def print_figures(figures: Figures, over: str) -> None:
    variants = figures.variants
    print(
        f"{figures.clients} clients, {figures.seconds_each} s measured for each app, in turns,"
        f" over {over}"
    )
    width = max(len(v) for v in variants) + 2
    print(
        f"{'p50 / p99 ms (p99 over unrecorded)':<40}"
        + "".join(f"{v:>{width + 8}}" for v in variants)
    )
    for row in figures.kinds:
        label = row.kind + ("" if row.recorded else " (never recorded)")
        cells = "".join(
            f"{f'{row.p50_ms[v]:.2f} / {row.p99_ms[v]:.2f} ({row.p99_ratio[v]:.2f})':>{width + 8}}"
            for v in variants
        )
        print(f"{label:<40}{cells}")
    for name in (
        "requests_per_s",
        "cpu_us_per_request",
        "system_cpu_us_per_request",
        "shipper_cpu_us_per_request",
        "cpu_with_shipper_us_per_request",
        "postgres_cpu_us_per_request",
        "entries_per_transaction",
    ):
        values: dict[str, float] = getattr(figures, name)
        cells = "".join(
            f"{values[v]:>{width + 8}}" if v in values else f"{'-':>{width + 8}}" for v in variants
        )
        print(f"{name:<40}{cells}")
    print(f"entries written: {figures.entries}, chain intact: {figures.chain_intact}")


MEASURES = (
    ("requests_per_s", "requests/s"),
    ("cpu_us_per_request", "CPU/req"),
    ("cpu_with_shipper_us_per_request", "with its shipper"),
)
"""What `differences` compares, with its label."""

T_95 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14)
"""Student's t for a two-sided 95% interval, by degrees of freedom from 1 (2.09 past 14)."""


def interval(values: Sequence[float]) -> tuple[float, float]:
    """The mean of `values` and the half-width of its 95% confidence interval."""
    mean = statistics.fmean(values)
    df = len(values) - 1
    t = T_95[df - 1] if df <= len(T_95) else 2.09
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def differences(rounds: Sequence[Figures]) -> dict[str, dict[str, list[float]]]:
    """Per round, each variant's requests/s and CPU a request relative to the unrecorded apps'
    (both, averaged, when `--again` made two), in %: `{variant: {measure: [round, ...]}}`. The
    second unrecorded app against the first is the benchmark's own noise."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for figures in rounds:
        for name, _ in MEASURES:
            values: dict[str, float] = getattr(figures, name)
            kinds: dict[str, list[float]] = defaultdict(list)
            for variant, value in values.items():
                kinds[variant.removesuffix(AGAIN)].append(value)
            base = statistics.fmean(kinds[UNRECORDED])
            for kind, copies in kinds.items():
                if kind != UNRECORDED:
                    found[kind][name].append(100 * (statistics.fmean(copies) / base - 1))
            if UNRECORDED + AGAIN in values:
                noise = values[UNRECORDED + AGAIN] / values[UNRECORDED] - 1
                found[UNRECORDED + AGAIN + " vs " + UNRECORDED][name].append(100 * noise)
    return {kind: dict(by_measure) for kind, by_measure in found.items()}


def print_differences(summary: dict[str, dict[str, list[float]]], rounds: int) -> None:
    print(f"over {rounds} rounds: % from the unrecorded apps, mean ± 95% confidence interval")
    for kind, by_measure in summary.items():
        cells = []
        for name, label in MEASURES:
            mean, half = interval(by_measure[name])
            each = ", ".join(f"{v:+.1f}" for v in by_measure[name])
            cells.append(f"{label} {mean:+.2f} ± {half:.2f} ({each})")
        print(f"  {kind}: " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, for each app")
    parser.add_argument("--slice", type=float, default=5.0)
    parser.add_argument("--over", choices=OVER, default="asgi")
    parser.add_argument(
        "--linger",
        default=f"{GroupedAuditLog.LINGER * 1e3:g}",
        help="ms an entry beside a read waits for others without a spool; one recorded app per"
        " value (0,2,8); none for no such app",
    )
    parser.add_argument(
        "--again", action="store_true", help="a second app of each variant: the noise band"
    )
    parser.add_argument(
        "--spool",
        nargs="?",
        const=f"{EVERY:g}",
        metavar="SECONDS[,SECONDS...]",
        help="add an app recording through a spool shipped by a process of its own, as served;"
        f" one app per pause between the shipper's passes (default {EVERY:g})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="the first round's seed for its processes' and slices' orders (the next round's is"
        " one more); drawn at random and printed when not given, so that the rounds of two runs"
        " pooled together are orders of their own",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="add an app whose spool is shipped by a task of its own process (the embedded way)",
    )
    parser.add_argument(
        "--unsent",
        action="store_true",
        help="add an app that spools its entries and never ships them: the read path's part",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure this many times, each with processes of its own, and print each recorded"
        " variant's difference from the unrecorded apps with its 95%% confidence interval",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    manifest = Manifest.load(args.manifest)
    if args.serve:  # as `insights serve` runs a process: its collector, event loop, server
        tune_garbage_collector()
        run(serve(manifest, args.serve, args.schema, args.port))
        return
    variants = (
        UNRECORDED,
        *(recorded(float(ms)) for ms in args.linger.split(",") if ms != "none"),
        *(spooled(float(every)) for every in (args.spool or "").split(",") if every),
        *((IN_PROCESS,) if args.in_process else ()),
        *((UNSENT,) if args.unsent else ()),
    )
    if args.again:
        variants = (*variants, *(variant + AGAIN for variant in variants))
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    if not args.json:
        print(f"seed {first} (--seed {first} orders the rounds again as this run does)")
    rounds = []
    for number in range(args.rounds):
        # Each round starts its processes anew, in an order of its own.
        seed = first + number
        order = tuple(random.Random(seed).sample(variants, len(variants)))
        figures = asyncio.run(
            measure(
                manifest,
                args.manifest,
                _dsn(),
                variants=order,
                clients=args.clients,
                seconds=args.seconds,
                slice_s=args.slice,
                over=args.over,
                seed=seed,
            )
        )
        rounds.append(figures)
        if not args.json:
            if args.rounds > 1:
                print(f"round {number + 1} of {args.rounds}")
            print_figures(figures, args.over)
    summary = differences(rounds) if args.rounds > 1 else None
    if args.json:
        print(
            json.dumps(
                {"seed": first, "rounds": [asdict(f) for f in rounds], "differences": summary}
            )
        )
        return
    if summary is not None:
        print_differences(summary, args.rounds)


if __name__ == "__main__":
    main()
