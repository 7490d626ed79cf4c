"""What OpenSearch pays per event for the documents the projector writes, mapping by mapping.

    uv run --no-sync python -m bench.documents [--events N] [--batch N] [--rounds N]
        [--variants base,no-prefixes,...]

bench.ingest's stream (its canonical events, duplicates dropped, as in bench.projection) goes
through `Projector.handle` in batches of `--batch` into fresh OpenSearch indices
(OPENSEARCH_URL), once per variant of the index templates, the variants alternating, `--rounds`
times. As in the distributed projector, a refresh is asked for after each batch and not waited
for (`OpenSearchInsightsStore.visible`, which the committer awaits). After the last batch, a
refresh and the end of every merge of the run's indices are waited for, so their cost counts.

Prints one row per variant and round: the projector's CPU per event (this process), OpenSearch's
(its process, from /proc: the single node the run writes to, so any other work it does counts
too; the idle rate measured at the start is printed), OpenSearch's own indexing, refresh and
merge time per event on the run's indices (`_stats`: the time those operations took on these
indices alone), the message documents written per event, the bulk bytes per event, and the
events/s until the last refresh and merge ended.

The variants change one thing each against `base` (the templates of `mappings.py`):
- `no-prefixes`: the users' search fields without `index_prefixes`.
- `no-index-aggs`: message fields only summed, sorted or maxed (the five flags, `engaged_us`,
  `first_event_us`, `last_event_us`, `sent_day`) kept as doc values only (`index: false`).
- `no-refresh`: no refresh until the end (`refresh_interval: -1`, none asked for): what the
  refreshes cost, not a mapping anyone could ship.
- `explicit-refreshes`: no scheduled refresh (`refresh_interval: -1`), only the ones asked for
  after each batch, at most one each 0.5 s (`Refreshes`).
- `no-detail`: message documents without `detail` (the detail's JSON, which repeats the sent
  event's content): what that part of each document costs; the reads need it, so a bound.
- `best-compression`: `index.codec: best_compression` (smaller stored `_source`).
- `lean`: `no-prefixes` and `no-index-aggs` together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from opensearchpy import AsyncOpenSearch

from bench.ingest import _backing_pids, _cpu
from bench.projection import stream_events
from insights.tuning import freeze_startup_objects, tune_garbage_collector
from insights_contracts import AnyEvent
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.opensearch import mappings as index_mappings
from insights_query.adapters.opensearch import store as opensearch_store
from insights_query.service import Projector

Mappings = dict[str, dict[str, Any]]

_AGGREGATED_ONLY = (
    "delivered",
    "read",
    "clicked",
    "failed",
    "responded",
    "engaged_us",
    "first_event_us",
    "last_event_us",
    "sent_day",
)


def _no_prefixes(mappings: Mappings) -> None:
    for field in mappings["users"]["properties"].values():
        field.pop("index_prefixes", None)


def _no_index_aggs(mappings: Mappings) -> None:
    fields = mappings["messages"]["properties"]
    for name in _AGGREGATED_ONLY:
        fields[name] = {**fields[name], "index": False}


def _lean(mappings: Mappings) -> None:
    _no_prefixes(mappings)
    _no_index_aggs(mappings)


@dataclass(frozen=True)
class Variant:
    change: Callable[[Mappings], None] | None = None
    settings: dict[str, Any] | None = None
    refresh: bool = True
    scheduled: bool = True
    detail: bool = True


VARIANTS: dict[str, Variant] = {
    "base": Variant(),
    "no-prefixes": Variant(_no_prefixes),
    "no-index-aggs": Variant(_no_index_aggs),
    "no-refresh": Variant(refresh=False, scheduled=False),
    "explicit-refreshes": Variant(scheduled=False),
    "no-detail": Variant(detail=False),
    "best-compression": Variant(settings={"codec": "best_compression"}),
    "lean": Variant(_lean),
}


@dataclass(frozen=True)
class Row:
    variant: str
    events: int
    projector_cpu: float
    opensearch_cpu: float
    wall: float
    index_ms: int
    refresh_ms: int
    merge_ms: int
    message_writes: int
    bulk_bytes: int

    def line(self) -> str:
        per = 1e6 / self.events
        return (
            f"| {self.variant} | {self.projector_cpu * per:.1f} | {self.opensearch_cpu * per:.1f}"
            f" | {self.index_ms * 1e3 / self.events:.1f}"
            f" | {self.refresh_ms * 1e3 / self.events:.1f}"
            f" | {self.merge_ms * 1e3 / self.events:.1f}"
            f" | {self.message_writes / self.events:.2f}"
            f" | {self.bulk_bytes / self.events:,.0f} | {self.events / self.wall:,.0f} |"
        )


HEADER = (
    "| variant | projector µs/event | OpenSearch µs/event (process) | indexing µs/event"
    " | refresh µs/event | merge µs/event | message writes/event | bulk bytes/event | events/s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


@contextmanager
def _templates(variant: Variant) -> Any:
    """The store's index templates as the variant has them, for the duration."""
    saved = index_mappings.MAPPINGS
    changed = copy.deepcopy(saved)
    if variant.change is not None:
        variant.change(changed)  # type: ignore[arg-type]
    index_mappings.MAPPINGS = changed
    try:
        yield
    finally:
        index_mappings.MAPPINGS = saved


def _documents(variant: Variant) -> Any:
    """The store's message documents as the variant has them, while the result is entered."""
    if variant.detail:
        return contextlib.nullcontext()
    made = opensearch_store.__dict__["message_doc"]

    def without_detail(*args: Any) -> Any:
        doc = made(*args)
        doc.pop("detail", None)
        return doc

    return mock.patch.object(opensearch_store, "message_doc", without_detail)


def _opensearch_cpu() -> float:
    return sum(_cpu(pid) for pid in _backing_pids().get("opensearch", []))


async def _settle(client: AsyncOpenSearch, indices: str) -> dict[str, Any]:
    """Wait for a refresh and for the run's merges to end; answer the indices' totals."""
    await client.indices.refresh(index=indices)
    while True:
        stats = await client.indices.stats(index=indices, metric="indexing,refresh,merge")
        totals = stats["_all"]["total"]
        if totals["merges"]["current"] == 0:
            return dict(totals)
        await asyncio.sleep(0.2)


async def run_variant(
    client: AsyncOpenSearch, name: str, events: list[AnyEvent], batch: int
) -> Row:
    variant = VARIANTS[name]
    prefix = f"bench-documents-{uuid.uuid4().hex[:8]}"
    indices = f"{prefix}-*"
    store = OpenSearchInsightsStore(client, prefix=prefix)
    written = {"messages": 0, "bytes": 0}
    bulk = store._bulk
    send = client.bulk

    async def counted_bulk(writes: Any) -> Any:
        written["messages"] += sum(1 for w in writes if w.kind == "messages")
        return await bulk(writes)

    async def counted_send(*args: Any, body: bytes, **kwargs: Any) -> Any:
        written["bytes"] += len(body)
        return await send(*args, body=body, **kwargs)

    store._bulk = counted_bulk  # type: ignore[method-assign]
    client.bulk = counted_send
    projector = Projector(store)
    refreshes: list[asyncio.Task[None]] = []
    try:
        with _templates(variant):
            await store.ensure_indices(refresh_seconds=0.5)
        if not variant.scheduled:
            await client.indices.put_settings(
                index=indices, body={"index": {"refresh_interval": -1}}
            )
        if variant.settings:
            # Static settings: changed on the closed, still empty indices.
            await client.indices.close(index=indices)
            await client.indices.put_settings(index=indices, body={"index": variant.settings})
            await client.indices.open(index=indices, params={"wait_for_active_shards": "all"})
        await asyncio.sleep(1)  # the indices' creation behind
        search_cpu, cpu, wall = _opensearch_cpu(), time.process_time(), time.perf_counter()
        with _documents(variant):
            for start in range(0, len(events), batch):
                await projector.handle(events[start : start + batch])
                if variant.refresh:
                    refreshes.append(asyncio.create_task(store.visible()))
            await asyncio.gather(*refreshes)
        cpu = time.process_time() - cpu
        totals = await _settle(client, indices)
        wall = time.perf_counter() - wall
        search_cpu = _opensearch_cpu() - search_cpu
    finally:
        client.bulk = send
        await client.indices.delete(index=indices)
        await client.indices.delete_index_template(name=indices, params={"ignore": 404})
    return Row(
        variant=name,
        events=len(events),
        projector_cpu=cpu,
        opensearch_cpu=search_cpu,
        wall=wall,
        index_ms=totals["indexing"]["index_time_in_millis"],
        refresh_ms=totals["refresh"]["total_time_in_millis"],
        merge_ms=totals["merges"]["total_time_in_millis"],
        message_writes=written["messages"],
        bulk_bytes=written["bytes"],
    )


async def measure(args: argparse.Namespace) -> None:
    events = stream_events(args.events, args.seed)
    tune_garbage_collector()
    freeze_startup_objects()
    client = create_client(os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200"), pool=16)
    try:
        idle = _opensearch_cpu()
        await asyncio.sleep(2)
        idle = (_opensearch_cpu() - idle) / 2
        print(
            f"{len(events):,} events in batches of {args.batch:,};"
            f" OpenSearch idle: {idle * 100:.0f}% of a core\n"
        )
        print(HEADER, flush=True)
        began = time.perf_counter()
        for _ in range(args.rounds):
            for name in args.variants.split(","):
                print((await run_variant(client, name, events, args.batch)).line(), flush=True)
        print(f"\nthe runs took {time.perf_counter() - began:.0f} s")
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: choose from {', '.join(VARIANTS)}")
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
