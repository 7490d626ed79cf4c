"""What the first retention pass costs, and what it does to the queries meanwhile.

    uv run --no-sync python -m bench.retention [--messages 1000000] [--users 20000]
        [--old 0.5] [--chunk 2000] [--backend sqlite|opensearch|all] [--json]

For each store (the embedded mode's SQLite file; OpenSearch on OPENSEARCH_URL, under a fresh
index prefix removed afterwards) it projects `--users` imported users and `--messages`
notification.sent events straight into the store, in batches of 5,000 through its own `apply`
(no HTTP, no bus), a share `--old` of them sent 31 to 90 days ago and the rest within the last
29 days. The app's retention is set to 30 days. Then:

- the queries alone, for 5 s: 4 clients, each asking in turn a user search (a nickname prefix)
  and a user's message list (first page), through the query service over the store: p50, p99;
- the first pass, with the same clients running beside it until it ends: its duration, the
  messages removed a second, and the queries' p50 and p99 meanwhile.

Wall-clock on whatever else the machine is doing: rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ingest import quantile
from insights_common.clock import utc_now
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_contracts import AnyEvent, NotificationSent, UserUpserted
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import QueryStore
from insights_query.retention import RetentionService
from insights_query.service import QueryService
from insights_query.settings import QuerySettings

APP = "acme"
BATCH = 5000
DAYS = 30
CLIENTS = 4
QUIET_SECONDS = 5.0
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    count: int


@dataclass
class Figures:
    backend: str
    messages: int
    users: int
    fill_s: float
    fill_per_s: float
    pass_s: float
    removed: int
    removed_per_s: float
    chunks: int
    chunk: int
    left: int
    search_alone: Latency
    list_alone: Latency
    search_during: Latency
    list_during: Latency


def latency(samples: list[float]) -> Latency:
    ordered = sorted(samples)
    return Latency(
        p50_ms=round(quantile(ordered, 0.5) * 1000, 2),
        p99_ms=round(quantile(ordered, 0.99) * 1000, 2),
        count=len(ordered),
    )


def events(users: int, messages: int, old: float, now: datetime) -> list[list[AnyEvent]]:
    """Users first, then messages in batches; old and recent messages interleave."""
    rng = random.Random(7)
    batches: list[list[AnyEvent]] = []
    people: list[AnyEvent] = [
        UserUpserted(
            event_id=f"u{n}",
            app_id=APP,
            occurred_at=now - timedelta(days=100),
            user_id=f"user{n:06d}",
            phone_number=None,
            nickname=f"{WORDS[n % len(WORDS)].title()} {n}",
            source="import:bench",
        )
        for n in range(users)
    ]
    batches += [people[i : i + BATCH] for i in range(0, len(people), BATCH)]
    batch: list[AnyEvent] = []
    for n in range(messages):
        if rng.random() < old:
            sent_at = now - timedelta(days=31 + rng.random() * 59)
        else:
            sent_at = now - timedelta(days=rng.random() * 29)
        batch.append(
            NotificationSent.model_validate(
                {
                    "event_id": uuid.uuid5(uuid.NAMESPACE_OID, f"s{n}").hex,
                    "app_id": APP,
                    "occurred_at": sent_at,
                    "message_id": f"m{n:08d}",
                    "user_id": f"user{rng.randrange(users):06d}",
                    "channel": "push",
                    "template": {"key": "order_shipped", "name": "Order", "version": 1},
                    "content": {"title": "Shipped", "body": f"Order {n} is on its way"},
                }
            )
        )
        if len(batch) == BATCH:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


async def clients(
    service: QueryService, users: int, until: Callable[[], bool]
) -> tuple[list[float], list[float]]:
    searches: list[float] = []
    lists: list[float] = []

    async def client(number: int) -> None:
        rng = random.Random(number)
        while not until():
            started = time.perf_counter()
            await service.search_users(APP, q=rng.choice(WORDS)[:3], limit=20, after=None)
            searches.append(time.perf_counter() - started)
            started = time.perf_counter()
            await service.list_messages(
                APP, f"user{rng.randrange(users):06d}", limit=20, after=None
            )
            lists.append(time.perf_counter() - started)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return searches, lists


@asynccontextmanager
async def sqlite_store(
    work: Path,
) -> AsyncIterator[tuple[QueryStore, Callable[[], Awaitable[int]]]]:
    db = SqliteDatabase(work / "insights.db")
    store = SqliteInsightsStore(db)

    async def count() -> int:
        row = await db.read(lambda conn: conn.execute("SELECT count(*) FROM q_messages").fetchone())
        return int(row[0])

    try:
        yield store, count
    finally:
        db.close()


@asynccontextmanager
async def opensearch_store(
    work: Path,
) -> AsyncIterator[tuple[QueryStore, Callable[[], Awaitable[int]]]]:
    url = os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200")
    client = create_client(url, pool=16)
    prefix = f"bench-retention-{uuid.uuid4().hex[:8]}"
    store = OpenSearchInsightsStore(client, prefix=prefix)
    await store.ensure_indices()

    async def count() -> int:
        await client.indices.refresh(index=store.index("messages"))
        answer = await client.count(index=store.index("messages"))
        return int(answer["count"])

    try:
        yield store, count
    finally:
        await client.indices.delete(index=f"{prefix}-*")
        await client.close()


async def measure(backend: str, args: argparse.Namespace) -> Figures:
    now = utc_now()
    opened = sqlite_store if backend == "sqlite" else opensearch_store
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with opened(work) as (store, count):
            started = time.perf_counter()
            for batch in events(args.users, args.messages, args.old, now):
                await store.apply(batch)
            filled = await count()
            fill_s = time.perf_counter() - started
            settings_db = SqliteDatabase(work / "settings.db")
            settings = SqliteRetentionSettings(settings_db)
            await settings.set(APP, DAYS, now=now)
            passes = RetentionService(
                settings=settings, store=store, every=None, chunk=args.chunk, clock=lambda: now
            )
            service = QueryService(store, settings=QuerySettings())

            quiet_until = time.monotonic() + QUIET_SECONDS
            search_alone, list_alone = await clients(
                service, args.users, lambda: time.monotonic() > quiet_until
            )

            done = asyncio.Event()

            async def run_pass() -> Any:
                try:
                    return await passes.apply(APP)
                finally:
                    done.set()

            started = time.perf_counter()
            result, (search_during, list_during) = await asyncio.gather(
                run_pass(), clients(service, args.users, done.is_set)
            )
            pass_s = time.perf_counter() - started
            left = await count()
            settings_db.close()
    return Figures(
        backend=backend,
        messages=filled,
        users=args.users,
        fill_s=round(fill_s, 1),
        fill_per_s=round(filled / fill_s),
        pass_s=round(pass_s, 1),
        removed=result.messages,
        removed_per_s=round(result.messages / pass_s),
        chunks=result.chunks,
        chunk=args.chunk,
        left=left,
        search_alone=latency(search_alone),
        list_alone=latency(list_alone),
        search_during=latency(search_during),
        list_during=latency(list_during),
    )


def show(f: Figures) -> None:
    print(
        f"{f.backend}: {f.messages:,} messages of {f.users:,} users projected in {f.fill_s} s"
        f" ({f.fill_per_s:,}/s)"
    )
    print(
        f"  first pass (30 days, chunks of {f.chunk:,}): {f.removed:,} removed in {f.pass_s} s"
        f" ({f.removed_per_s:,}/s, {f.chunks} chunks), {f.left:,} left"
    )
    for name, alone, during in (
        ("search", f.search_alone, f.search_during),
        ("message list", f.list_alone, f.list_during),
    ):
        print(
            f"  {name:>12}: alone p50 {alone.p50_ms} ms p99 {alone.p99_ms} ms ({alone.count});"
            f" during the pass p50 {during.p50_ms} ms p99 {during.p99_ms} ms ({during.count})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--old", type=float, default=0.5)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "opensearch", "all"), default="sqlite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ("sqlite", "opensearch") if args.backend == "all" else (args.backend,)
    for backend in backends:
        figures = asyncio.run(measure(backend, args))
        if args.json:
            print(json.dumps(asdict(figures)))
        else:
            show(figures)


if __name__ == "__main__":
    main()
