"""A steady stream of webhook events into a loaded deployment, in a process of its own.

It runs beside the query benchmark's clients, in its own process so that generating and signing
events takes none of their event loop's time. Every 0.1 s it posts the next rate/10 events of a
fresh stream of messages (from bench.traffic: the manifest's users, a stream never sent before,
the last hour's messages) in signed batches of up to 1,000, at most 8 in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import signal
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import orjson

from bench.ingest import BATCH, Api, Target, quantile
from bench.traffic import Traffic
from insights_common.clock import utc_now

TICK = 0.1
IN_FLIGHT = 8


@dataclass
class FeedFigures:
    rate: int  # asked for
    events: int
    seconds: float
    achieved: float
    batch_p50_ms: float
    batch_p99_ms: float
    failures: int


async def _feed(config: dict[str, Any], stop: Event) -> FeedFigures:
    target = Target(config["url"], config["secret"], config["key"], "", app=config["app"])
    rate = int(config["rate"])
    traffic = Traffic(
        app_id=config["app"],
        seed=config["seed"],
        users=config["users"],
        messages=math.ceil(rate * 3600 / 2.5),
        now=utc_now(),
        days=1 / 24,
        zipf=config["zipf"],
        stream=int(time.time()),
    )
    events = traffic.events()
    per_tick = max(1, round(rate * TICK))
    api = Api(target, connections=IN_FLIGHT)
    slots = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []
    totals = {"events": 0, "failures": 0}
    tasks: set[asyncio.Task[None]] = set()

    async def post(body: bytes, count: int) -> None:
        async with slots:
            began = time.perf_counter()
            try:
                await api.post(body)
            except (RuntimeError, OSError):
                totals["failures"] += 1
                return
            latencies.append(time.perf_counter() - began)
            totals["events"] += count

    started = time.perf_counter()
    try:
        for tick in itertools.count():
            if stop.is_set():
                break
            await asyncio.sleep(max(0.0, started + tick * TICK - time.perf_counter()))
            batch = list(itertools.islice(events, per_tick))
            for start in range(0, len(batch), BATCH):
                part = batch[start : start + BATCH]
                task = asyncio.create_task(post(orjson.dumps(part), len(part)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        await api.close()
    seconds = time.perf_counter() - started
    latencies.sort()
    return FeedFigures(
        rate=rate,
        events=totals["events"],
        seconds=seconds,
        achieved=totals["events"] / seconds,
        batch_p50_ms=1000 * quantile(latencies, 0.5),
        batch_p99_ms=1000 * quantile(latencies, 0.99),
        failures=totals["failures"],
    )


def _run(config: dict[str, Any], stop: Event, out: Connection) -> None:
    # A Ctrl-C reaches the whole process group: this process stops when the parent says so.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out.send(asdict(asyncio.run(_feed(config, stop))))


class Feed:
    """The feeding process: started on enter; on exit told to stop, and its figures read."""

    def __init__(self, config: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._out, child = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run, args=(config, self._stop, child), name="bench-feed", daemon=True
        )
        self.figures: FeedFigures | None = None

    def __enter__(self) -> Feed:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._out.poll(0.2):
                self.figures = FeedFigures(**self._out.recv())
                break
            if not self._process.is_alive():
                break
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
