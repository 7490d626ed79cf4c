"""The projector alone: CPU per event of folding bench.ingest's stream into a store.

    uv run --no-sync python -m bench.projection --store sqlite|opensearch [--events N] [--batch N]

The stream of bench.ingest (its canonical events, duplicates dropped, in the order they are
posted) goes through `Projector.handle` in batches of `--batch`, straight into a fresh SQLite
file or fresh OpenSearch indices (OPENSEARCH_URL), with no HTTP, Kafka or queries around it.
The process's garbage collector is set up as a serving process's (`insights.tuning`). Prints
events/s and the process's CPU per event (its threads included: SQLite writes in one); for a
before/after, run it in two checkouts alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from bench.ingest import build_stream
from insights.tuning import freeze_startup_objects, tune_garbage_collector
from insights_common.clock import utc_now
from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import AnyEvent, parse_event
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.ports import ProjectionStore
from insights_query.service import Projector


def stream_events(events: int, seed: int) -> list[AnyEvent]:
    stream = build_stream(events=events, seed=seed, tag=f"p{uuid.uuid4().hex[:6]}", start=utc_now())
    seen: set[str] = set()
    decoded = []
    for raw in [*stream.templates, *stream.arrivals]:
        if raw["event_id"] not in seen:
            seen.add(raw["event_id"])
            decoded.append(parse_event(raw))
    return decoded


async def project(
    store: ProjectionStore, events: list[AnyEvent], batch: int
) -> tuple[float, float]:
    """CPU and wall seconds of projecting the events."""
    projector = Projector(store)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(events), batch):
        await projector.handle(events[start : start + batch])
    return time.process_time() - cpu, time.perf_counter() - wall


async def measure(args: argparse.Namespace) -> tuple[int, float, float]:
    events = stream_events(args.events, args.seed)
    tune_garbage_collector()
    freeze_startup_objects()
    if args.store == "sqlite":
        with tempfile.TemporaryDirectory() as work:
            db = SqliteDatabase(Path(work) / "insights.db")
            try:
                cpu, wall = await project(SqliteInsightsStore(db), events, args.batch)
            finally:
                db.close()
        return len(events), cpu, wall
    client = create_client(os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200"), pool=16)
    prefix = f"bench-projection-{uuid.uuid4().hex[:8]}"
    store = OpenSearchInsightsStore(client, prefix=prefix)
    await store.ensure_indices()
    try:
        cpu, wall = await project(store, events, args.batch)
    finally:
        await client.indices.delete(index=f"{prefix}-*")
        await client.close()
    return len(events), cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "opensearch"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events, cpu, wall = asyncio.run(measure(args))
    print(
        f"{args.store}: {events:,} events in batches of {args.batch:,}:"
        f" {events / wall:,.0f} events/s, {cpu / events * 1e6:.1f} µs of CPU an event"
    )


if __name__ == "__main__":
    main()
