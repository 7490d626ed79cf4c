"""The ingest benchmark: signed webhook batches in, events visible through the query API out.

    uv run --no-sync python -m bench.ingest --mode embedded|distributed|all [--events N] [--json]

It generates a realistic stream for one app (many users; messages going sent -> delivered ->
read -> clicked/responded, or failed; a few platform profile edits; about 2% duplicates and 3%
late arrivals; the templates upserted first), signs each batch of up to 1,000 events with the
app's webhook secret and posts them over a few concurrent connections, then measures:

- throughput: events posted / seconds from the first request until the last event posted to
  every partition of the notifications topic shows in GET /api/v1/messages/{id}. The projector
  takes a partition in order, so when its last event shows, every event before it does. In the
  embedded mode a 202 means the batch is already projected; the same check confirms it;
- the floor (distributed): the same canonical events produced to a fresh topic and read back by a
  bare aiokafka consumer that bulk-indexes minimal documents into a fresh index with plain
  `_bulk`; our rate over the floor's says what the product's own work costs;
- freshness: at a moderate steady load, probe events (a new message's `sent`, later its `read`)
  are timed from their batch's 202 to GET /api/v1/messages/{id} showing them (polled every 20 ms);
- correctness: sampled messages must show the status the stream implies.

`--projectors N` runs N projector processes in one consumer group (the topics have 6
partitions), and the CPU figures give each its own line, with the CPU the rest of the machine
took meanwhile ("other processes"): what ran out of cores. On the three-node cluster of
`deploy/local/services.py cluster`, export its variables (`cluster env`) with POSTGRES_DSN: the
topics and indices then have its copies (the floor's too), and its nodes' CPU is apart from the
single nodes' ("kafka cluster", "opensearch cluster").

Distributed mode starts the five `insights serve` processes on the running Kafka, OpenSearch and
PostgreSQL (KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL, POSTGRES_DSN) with fresh topic and index
prefixes, PostgreSQL schema and consumer group, and removes all of them afterwards. Every figure is
wall-clock on whatever else the machine is doing: rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from insights_common.auth import sign
from insights_common.clock import rfc3339, utc_now
from insights_common.http.guard import HttpSettings
from insights_common.settings import OpenSearchSettings
from insights_query.adapters.opensearch.mappings import refresh_interval

ROOT = Path(__file__).resolve().parents[1]

APP_ID = "bench"
BATCH = 1000
PARTITIONS = 6
INSIGHTS = [sys.executable, "-m", "insights"]
SERVICES = ("import", "ingest", "query", "projector")

CHANNELS = ("push", "push", "push", "in_app", "in_app", "sms", "alimtalk", "whatsapp", "email")
FIRST_NAMES = ("Alex", "Minji", "Jisoo", "Sofia", "Lukas", "Yuki", "Ana", "Priya", "Omar", "Lea")
TEMPLATES = (
    ("order_shipped", "Order shipped", "Your order {{order}} shipped", "It arrives {{eta}}."),
    ("password_reset", "Password reset", "Reset your password", "Use code {{code}} in 10 min."),
    ("cart_reminder", "Cart reminder", "Still thinking?", "{{item}} is waiting in your cart."),
    ("weekly_digest", "Weekly digest", "Your week", "{{count}} things happened this week."),
    ("payment_failed", "Payment failed", "Payment declined", "Update the card ending {{last4}}."),
    ("delivery_survey", "Delivery survey", "How was it?", "Rate your delivery of {{order}}."),
    ("flash_sale", "Flash sale", "{{percent}}% off today", "Only until midnight."),
    ("appointment", "Appointment", "See you {{day}}", "Your appointment is at {{time}}."),
)
FAILURES = (
    ("invalid_token", "The push token is no longer registered"),
    ("undeliverable", "The carrier rejected the number"),
    ("rate_limited", "Provider rate limit exceeded"),
)


# -- the event stream ------------------------------------------------------------------------


def _at(moment: datetime) -> str:
    return rfc3339(moment, precision="microseconds")


@dataclass
class Expected:
    user_id: str
    status: str
    events: int


@dataclass
class Stream:
    """What the platform sends: templates first, then `arrivals` in the order they are posted."""

    templates: list[dict[str, Any]]
    arrivals: list[dict[str, Any]]
    messages: dict[str, Expected]
    users: int
    duplicates: int
    late: int


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def event(self) -> str:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex


def build_stream(*, events: int, seed: int, tag: str, start: datetime) -> Stream:
    """About `events` events; message and user ids carry `tag` so streams never collide."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    per_message = 2.65  # the mean of the outcome mix below
    messages = max(1, int(events * 0.97 / per_message))
    users = max(10, messages // 3)
    user_ids = [f"{tag}u{n:06d}" for n in range(users)]
    # Simulated at 20 sends per second: a delivery follows its send within a batch or two, a
    # read comes minutes (thousands of events) later, as from a real campaign.
    span = messages / 20.0
    timed: list[tuple[datetime, dict[str, Any]]] = []
    expected: dict[str, Expected] = {}

    def envelope(kind: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": ids.event(),
            "event_type": kind,
            "schema_version": 1,
            "app_id": APP_ID,
            "occurred_at": _at(at),
        }

    for n in range(messages):
        # A fifth of the messages go to 2% of the users, as with real audiences.
        heavy = rng.random() < 0.2
        user = user_ids[rng.randrange(max(1, users // 50) if heavy else users)]
        message_id = f"{tag}m{n:07d}"
        key, name, title, body = rng.choice(TEMPLATES)
        sent_at = start + timedelta(seconds=rng.uniform(0, span))
        base = {"message_id": message_id, "user_id": user}
        order = f"A-{rng.randrange(10**6):06d}"
        sent = envelope("notification.sent", sent_at) | base
        sent |= {
            "channel": rng.choice(CHANNELS),
            "template": {
                "key": key,
                "name": name,
                "version": rng.choice((2, 3, 3, 3)),
                "variables": {"order": order, "eta": "tomorrow"},
            },
            "content": {
                "title": title.replace("{{order}}", order),
                "body": body.replace("{{order}}", order),
                "buttons": [{"id": "open", "label": "Open", "url": f"https://example.com/{n}"}],
            },
        }
        chain: list[dict[str, Any]] = [sent]
        status = "sent"
        roll = rng.random()
        if roll < 0.05:
            code, reason = rng.choice(FAILURES)
            at = sent_at + timedelta(seconds=rng.expovariate(1 / 3))
            chain.append(
                envelope("notification.failed", at) | base | {"code": code, "reason": reason}
            )
            status = "failed"
        elif roll < 0.97:
            delivered_at = sent_at + timedelta(seconds=rng.expovariate(1 / 2))
            chain.append(envelope("notification.delivered", delivered_at) | base)
            status = "delivered"
            if rng.random() < 0.55:
                read_at = delivered_at + timedelta(seconds=rng.expovariate(1 / 300))
                chain.append(envelope("notification.read", read_at) | base)
                status = "read"
                if rng.random() < 0.3:
                    at = read_at + timedelta(seconds=rng.expovariate(1 / 20))
                    click = {"button_id": "open", "url": f"https://example.com/{n}"}
                    chain.append(envelope("notification.clicked", at) | base | click)
                    status = "clicked"
                if rng.random() < 0.05:
                    at = read_at + timedelta(seconds=rng.expovariate(1 / 60))
                    answer = {"type": "button", "value": "yes", "label": "Yes"}
                    chain.append(
                        envelope("notification.responded", at) | base | {"response": answer}
                    )
        expected[message_id] = Expected(user, status, len(chain))
        timed += [(datetime.fromisoformat(e["occurred_at"]), e) for e in chain]

    for _ in range(max(1, events // 100)):
        user = rng.choice(user_ids)
        at = start + timedelta(seconds=rng.uniform(0, span))
        nickname = f"{rng.choice(FIRST_NAMES)} {rng.randrange(100)}"
        edit = envelope("user.upserted", at) | {"user_id": user, "nickname": nickname}
        timed.append((at, edit | {"source": "platform"}))

    # Arrival order is occurred_at order, except that 3% arrive late (up to 2,000 events later:
    # a delivery may then come before its send) and 2% are sent twice.
    timed.sort(key=lambda pair: pair[0])
    arrivals = [event for _, event in timed]
    late = 0
    for index in rng.sample(range(len(arrivals)), k=len(arrivals) * 3 // 100):
        shifted = min(len(arrivals) - 1, index + rng.randrange(50, 2000))
        arrivals.insert(shifted, arrivals.pop(index))
        late += 1
    duplicates = len(arrivals) * 2 // 100
    for index in sorted(rng.sample(range(len(arrivals)), k=duplicates), reverse=True):
        again = min(len(arrivals), index + rng.randrange(1, 3000))
        arrivals.insert(again, dict(arrivals[index]))

    templates = [
        envelope("template.upserted", start - timedelta(days=30 - version))
        | {
            "template": {
                "key": key,
                "name": name,
                "version": version,
                "channels": {
                    "push": {"title": title, "body": body},
                    "email": {"title": title, "body": body},
                },
                "variable_schema": [{"key": "order", "type": "string", "name": "Order"}],
            }
        }
        for key, name, title, body in TEMPLATES
        for version in (1, 2, 3)
    ]
    return Stream(templates, arrivals, expected, users, duplicates, late)


def batches(events: list[dict[str, Any]], size: int = BATCH) -> list[bytes]:
    return [orjson.dumps(events[i : i + size]) for i in range(0, len(events), size)]


def partition_of(user_id: str, partitions: int, *, app: str = APP_ID) -> int:
    """The partition KafkaBus gives `app:user` (murmur2, as the Java client)."""
    from aiokafka.partitioner import murmur2  # noqa: PLC0415

    return (murmur2(f"{app}:{user_id}".encode()) & 0x7FFFFFFF) % partitions


# -- talking to a deployment -----------------------------------------------------------------


@dataclass
class Target:
    """Where to post events and read messages, with the app's secret and API key."""

    url: str
    secret: str
    key: str
    how: str
    pids: dict[str, list[int]] = field(default_factory=dict)
    app: str = APP_ID


class Api:
    def __init__(self, target: Target, *, connections: int) -> None:
        self.target = target
        self.client = httpx.AsyncClient(
            base_url=target.url,
            timeout=120,
            limits=httpx.Limits(
                max_connections=connections + 8,
                # Let go before the server's keep-alive closes it: a connection taken up again
                # just as the server (or the edge) closes it ends its request unanswered.
                keepalive_expiry=HttpSettings().keep_alive_seconds / 2,
            ),
            headers={"Authorization": f"Bearer {target.key}"},
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def post(self, body: bytes) -> dict[str, Any]:
        answer = await self.client.post(
            "/api/v1/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Insights-App": self.target.app,
                "X-Insights-Signature": sign(self.target.secret, body),
            },
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST /events answered {answer.status_code}: {answer.text[:500]}")
        result: dict[str, Any] = answer.json()
        if result["rejected"]:
            raise RuntimeError(f"events were rejected: {result['rejected'][:3]}")
        return result

    async def message(self, message_id: str) -> dict[str, Any] | None:
        answer = await self.client.get(f"/api/v1/messages/{message_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found


def _shows(message: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    """Whether a message as the API shows it includes `event`."""
    if message is None:
        return False
    status = event["event_type"].removeprefix("notification.")
    at = datetime.fromisoformat(event["occurred_at"])
    return any(
        entry["status"] == status and datetime.fromisoformat(entry["at"]) == at
        for entry in message["timeline"]
    )


# -- throughput ------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system, from /proc) each process group spent between two readings.

    The backing servers are found by their command lines; they may also be serving other work
    on a shared machine, so their figures are upper bounds.
    """

    def __init__(self, own: dict[str, list[int]]) -> None:
        self.groups = {**own, "bench": [os.getpid()], **_backing_pids()}
        self._start = self._read()
        self._machine = _machine_busy()

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: _cpu(pid) for pid in pids} for name, pids in self.groups.items()}

    def peak_rss(self, names: list[str]) -> dict[str, float]:
        """The most memory (MiB) each of these processes has held so far."""
        return {name: sum(_peak_rss(pid) for pid in self.groups[name]) for name in names}

    def spent(self) -> dict[str, float]:
        self.groups |= {k: v for k, v in _backing_pids().items() if k == "postgres"}
        now = self._read()
        spent = {
            name: sum(now[name][pid] - self._start.get(name, {}).get(pid, 0.0) for pid in now[name])
            for name in now
        }
        # What the rest of the machine took meanwhile: on a shared machine, the cores the
        # deployment did not get.
        spent["other processes"] = max(0.0, _machine_busy() - self._machine - sum(spent.values()))
        return spent


class CpuTimeline:
    """Where the cores went, step by step: each process group's CPU over each `step` seconds,
    read from /proc by a thread beside the measured run, with the moments the run marks.

    It shows what the totals of `CpuMeter` cannot: the stretches where a core stood idle
    because the next stage of a pipeline waited for the one before.
    """

    def __init__(self, own: dict[str, list[int]], *, step: float = 0.25) -> None:
        self.groups = {**own, "bench": [os.getpid()], **_backing_pids()}
        self.step = step
        self.rows: list[tuple[float, dict[str, float], float]] = []
        self.marks: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu timeline", daemon=True)
        self._started = time.perf_counter()

    def __enter__(self) -> CpuTimeline:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self, label: str) -> None:
        self.marks.append((time.perf_counter() - self._started, label))

    def _read(self) -> dict[str, float]:
        # PostgreSQL starts a backend per connection: its processes are looked up each step.
        self.groups["postgres"] = _backing_pids().get("postgres", [])
        return {name: sum(_cpu(pid) for pid in pids) for name, pids in self.groups.items()}

    def _sample(self) -> None:
        before, machine = self._read(), _machine_busy()
        while not self._stop.wait(self.step):
            now, busy = self._read(), _machine_busy()
            at = time.perf_counter() - self._started
            spent = {name: max(0.0, now[name] - before.get(name, now[name])) for name in now}
            self.rows.append((at, spent, busy - machine))
            before, machine = now, busy

    def table(self) -> str:
        """One line a step: the time, each group's share of one core, the machine's, the marks."""
        names = sorted(
            {n for _, spent, _ in self.rows for n, s in spent.items() if s > 0},
            key=lambda n: -sum(spent.get(n, 0.0) for _, spent, _ in self.rows),
        )
        lines = ["    t  " + " ".join(f"{n[:10]:>10}" for n in names) + "    machine"]
        previous = 0.0
        for at, spent, busy in self.rows:
            width = at - previous
            here = [label for t, label in self.marks if previous < t <= at]
            cells = " ".join(f"{100 * spent.get(n, 0.0) / width:>9.0f}%" for n in names)
            lines.append(
                f"{at:>5.2f}  {cells}  {100 * busy / width:>8.0f}%  {', '.join(here)}".rstrip()
            )
            previous = at
        return "\n".join(lines)


def _machine_busy() -> float:
    """CPU seconds every core of the machine has been busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), 0)
    return int(kib) / 1024


def _backing_pids() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"kafka": [], "opensearch": [], "postgres": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The three-node cluster of `services.py cluster` apart from the single nodes.
        of = " cluster" if any(b"/cluster/" in part for part in command) else ""
        if b"kafka.Kafka" in command:
            found.setdefault(f"kafka{of}", []).append(int(entry.name))
        elif b"org.opensearch.bootstrap.OpenSearch" in command:
            found.setdefault(f"opensearch{of}", []).append(int(entry.name))
        elif command[0].startswith(b"postgres") or command[0].endswith(b"/bin/postgres"):
            found["postgres"].append(int(entry.name))
    return {name: pids for name, pids in found.items() if pids}


@dataclass
class Throughput:
    events: int
    accepted: int
    duplicates: int
    batches: int
    connections: int
    webhook_seconds: float
    webhook_rate: float
    visible_seconds: float
    visible_rate: float
    batch_p50_ms: float
    batch_p99_ms: float
    checked_messages: int
    wrong_messages: list[str]
    cpu_seconds: dict[str, float]
    peak_rss_mib: dict[str, float]


async def run_throughput(api: Api, stream: Stream, *, connections: int) -> Throughput:
    for body in batches(stream.templates):
        await api.post(body)
    bodies = batches(stream.arrivals)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    totals = {"accepted": 0, "duplicates": 0}

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            result = await api.post(body)
            latencies.append(time.perf_counter() - started)
            totals["accepted"] += result["accepted"]
            totals["duplicates"] += result["duplicates"]

    sentinels = _sentinels(stream)
    meter = CpuMeter(api.target.pids)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    accepted_at = time.perf_counter()
    await _until_visible(api, sentinels, limit=600)
    visible_at = time.perf_counter()
    cpu = meter.spent()
    rss = meter.peak_rss(list(api.target.pids))
    wrong, checked = await _check_sample(api, stream, sample=300)
    latencies.sort()
    count = len(stream.arrivals)
    return Throughput(
        events=count,
        accepted=totals["accepted"],
        duplicates=totals["duplicates"],
        batches=len(bodies),
        connections=connections,
        webhook_seconds=accepted_at - started,
        webhook_rate=count / (accepted_at - started),
        visible_seconds=visible_at - started,
        visible_rate=count / (visible_at - started),
        batch_p50_ms=1000 * quantile(latencies, 0.5),
        batch_p99_ms=1000 * quantile(latencies, 0.99),
        checked_messages=checked,
        wrong_messages=wrong,
        cpu_seconds=cpu,
        peak_rss_mib=rss,
    )


def _sentinels(stream: Stream) -> list[dict[str, Any]]:
    """The last notification event posted to each partition."""
    last: dict[int, dict[str, Any]] = {}
    for event in stream.arrivals:
        if event["event_type"].startswith("notification."):
            last[partition_of(event["user_id"], PARTITIONS)] = event
    return list(last.values())


async def _until_visible(api: Api, events: list[dict[str, Any]], *, limit: float) -> None:
    """Poll one event at a time (each poll costs the edge and the query API CPU too)."""
    deadline = time.perf_counter() + limit
    waiting = list(events)
    while waiting:
        if _shows(await api.message(waiting[0]["message_id"]), waiting[0]):
            waiting.pop(0)
            continue
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{len(waiting)} events still not visible after {limit} s")
        await asyncio.sleep(0.05)


async def _check_sample(api: Api, stream: Stream, *, sample: int) -> tuple[list[str], int]:
    """Messages (a random sample) whose status or timeline length differs from the stream's."""
    rng = random.Random(1)
    chosen = rng.sample(sorted(stream.messages), k=min(sample, len(stream.messages)))
    wrong: list[str] = []
    for start in range(0, len(chosen), 20):
        part = chosen[start : start + 20]
        shown = await asyncio.gather(*(api.message(m) for m in part))
        for message_id, message in zip(part, shown, strict=True):
            want = stream.messages[message_id]
            if (
                message is None
                or message["status"] != want.status
                or len(message["timeline"]) != want.events
            ):
                got = None if message is None else (message["status"], len(message["timeline"]))
                wrong.append(f"{message_id}: want {(want.status, want.events)}, got {got}")
    return wrong, len(chosen)


def quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- freshness -------------------------------------------------------------------------------


@dataclass
class Freshness:
    rate: int
    seconds: float
    probes: int
    missed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    how: str = "202 of the probe's batch -> GET /api/v1/messages/{id} shows it (20 ms polls)"


async def run_freshness(api: Api, *, rate: int, seconds: float, seed: int) -> Freshness:
    """A steady `rate` of events in batches every 0.1 s, each carrying one timed probe event."""
    interval = 0.1
    per_batch = max(1, round(rate * interval))
    ticks = int(seconds / interval)
    stream = build_stream(
        events=per_batch * ticks, seed=seed, tag="f", start=utc_now() - timedelta(hours=2)
    )
    ids = _Ids(random.Random(seed + 1))
    load = stream.arrivals
    latencies: list[float] = []
    missed = 0
    waiting_read: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    limit = asyncio.Semaphore(4)

    def probe(tick: int) -> dict[str, Any]:
        now = utc_now()
        base = {"schema_version": 1, "app_id": APP_ID, "event_id": ids.event()}
        if tick % 2 and waiting_read:
            sent = waiting_read.pop(0)
            ids_ = {"message_id": sent["message_id"], "user_id": sent["user_id"]}
            return base | ids_ | {"event_type": "notification.read", "occurred_at": _at(now)}
        return base | {
            "event_type": "notification.sent",
            "occurred_at": _at(now),
            "message_id": f"probe{tick:06d}",
            "user_id": f"probe{tick % 50:03d}",
            "channel": "push",
            "template": {"key": "order_shipped", "name": "Order shipped", "version": 3},
            "content": {"title": "Probe", "body": "Timed from 202 to visible"},
        }

    async def send(tick: int, events: list[dict[str, Any]], timed: dict[str, Any]) -> None:
        nonlocal missed
        body = orjson.dumps(events)
        async with limit:
            await api.post(body)
        accepted = time.perf_counter()
        deadline = accepted + 30
        while True:
            if _shows(await api.message(timed["message_id"]), timed):
                latencies.append(time.perf_counter() - accepted)
                if timed["event_type"] == "notification.sent":
                    waiting_read.append(timed)
                return
            if time.perf_counter() > deadline:
                missed += 1
                return
            await asyncio.sleep(0.02)

    for body in batches(stream.templates):
        await api.post(body)
    started = time.perf_counter()
    for tick in range(ticks):
        await asyncio.sleep(max(0.0, started + tick * interval - time.perf_counter()))
        timed = probe(tick)
        events = [*load[tick * per_batch : (tick + 1) * per_batch], timed]
        tasks.append(asyncio.create_task(send(tick, events, timed)))
    await asyncio.gather(*tasks)
    latencies.sort()
    return Freshness(
        rate=rate,
        seconds=seconds,
        probes=len(latencies) + missed,
        missed=missed,
        p50_ms=1000 * quantile(latencies, 0.5),
        p90_ms=1000 * quantile(latencies, 0.9),
        p99_ms=1000 * quantile(latencies, 0.99),
        max_ms=1000 * (latencies[-1] if latencies else math.nan),
    )


# -- the floor -------------------------------------------------------------------------------


@dataclass
class Floor:
    events: int
    seconds: float
    rate: float
    cpu_seconds: dict[str, float]
    how: str = "bare aiokafka consumer (getmany 2,000) -> minimal docs -> plain _bulk, 1 index"


def canonical(stream: Stream) -> list[tuple[bytes, bytes]]:
    """(key, value) of the Kafka records the webhook makes of the stream (duplicates dropped)."""
    from insights_contracts import parse_event  # noqa: PLC0415
    from insights_contracts.topics import key_for  # noqa: PLC0415

    seen: set[str] = set()
    records = []
    for raw in [*stream.templates, *stream.arrivals]:
        if raw["event_id"] in seen:
            continue
        seen.add(raw["event_id"])
        event = parse_event(raw)
        records.append((key_for(event).encode(), event.model_dump_json().encode()))
    return records


async def run_floor(
    records: list[tuple[bytes, bytes]], *, kafka: str, opensearch: str, prefix: str
) -> Floor:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: PLC0415
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from opensearchpy import AsyncOpenSearch  # noqa: PLC0415

    topic = f"{prefix}floor"
    index = f"{prefix.replace('.', '-')}floor"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.split(","))
    await admin.start()
    try:
        # The same copies as the product's topics and indices (a cluster's settings).
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, _env_int("KAFKA_REPLICATION_FACTOR", 1))]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.split(","), acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        sends = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    client = AsyncOpenSearch(hosts=opensearch.split(","), timeout=60, http_compress=True)
    replicas = _env_int("OPENSEARCH_REPLICAS", 0)
    await client.indices.create(
        index=index,
        body={
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": replicas,
                # As the product's indices refresh (OPENSEARCH_REFRESH_SECONDS), so OpenSearch's
                # CPU compares; the floor itself never waits for a refresh.
                "refresh_interval": refresh_interval(OpenSearchSettings().refresh_seconds),
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    name: {"type": "keyword"}
                    for name in ("app_id", "event_type", "message_id", "user_id", "occurred_at")
                },
            },
        },
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.split(","),
        group_id=f"{prefix}floor",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        done = 0
        meter = CpuMeter({})
        started = time.perf_counter()
        while done < len(records):
            fetched = await consumer.getmany(timeout_ms=100, max_records=2000)
            body = bytearray()
            for batch in fetched.values():
                for record in batch:
                    event = orjson.loads(record.value)
                    body += orjson.dumps({"index": {"_id": event["event_id"]}}) + b"\n"
                    doc = {
                        "app_id": event["app_id"],
                        "event_type": event["event_type"],
                        "message_id": event.get("message_id"),
                        "user_id": event.get("user_id"),
                        "occurred_at": event["occurred_at"],
                    }
                    body += orjson.dumps(doc) + b"\n"
                    done += 1
            if body:
                answer = await client.bulk(body=bytes(body), index=index)
                if answer["errors"]:
                    raise RuntimeError("the floor's bulk write failed")
                await consumer.commit()
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await client.close()
    cpu = {name: spent for name, spent in meter.spent().items() if name != "postgres"}
    return Floor(len(records), seconds, len(records) / seconds, cpu)


# -- deployments -----------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def insights(name: str, work: Path, profile: frozenset[str]) -> list[str]:
    """The `insights` command for a process; under cProfile when its name is in `profile`."""
    if name not in profile:
        return INSIGHTS
    return [sys.executable, "-m", "cProfile", "-o", str(work / f"{name}.prof"), "-m", "insights"]


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own command
        [*INSIGHTS, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"insights {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, *, limit: float = 120
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{log.stem} not ready in {limit} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        # SIGINT rather than SIGTERM: uvicorn re-raises the signal after its shutdown, and only
        # KeyboardInterrupt lets cProfile write its profile on the way out.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def embedded(work: Path, *, profile: frozenset[str]) -> Iterator[Target]:
    data_dir = work / "data"
    port = free_port()
    env = {**os.environ, "COLUMNS": "200"}
    log = work / "dev.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [
                *insights("dev", work, profile),
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        where = ("--app", APP_ID, "--data-dir", str(data_dir))
        secret = cli("webhooks", "secret", *where, env=env)
        key = cli("keys", "create", *where, env=env)
        how = "insights dev (one process, SQLite in a temp dir)"
        yield Target(url, secret, key, how, {"dev": [process.pid]})
    finally:
        stop(process)


@dataclass
class Names:
    """This run's own topics, indices, schema and consumer group."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def topics(self) -> str:
        return f"bench.{self.run}."

    @property
    def indices(self) -> str:
        return f"bench-{self.run}"

    @property
    def schema(self) -> str:
        return f"bench_{self.run}"


@contextlib.contextmanager
def distributed(
    work: Path,
    names: Names,
    *,
    projectors: int,
    profile: frozenset[str],
    keep: bool = False,
    query_replicas: int = 1,
) -> Iterator[Target]:
    """The four processes on this run's names behind the edge (nginx), `query_replicas` of the
    query service as one upstream; with `keep`, left running after a body that raised nothing
    (their pids are in the Target; stopping them is then the caller's)."""
    ports = {name: free_port() for name in (*SERVICES, "edge")}
    query_ports = [ports["query"], *(free_port() for _ in range(query_replicas - 1))]
    env = {
        # The benchmark's clients share one API key: what they measure is the service, not the
        # key's rate limit (1,000 requests a second by default), unless the environment sets it.
        "INSIGHTS_RATE_LIMIT_KEY_PER_SECOND": "1000000",
        "INSIGHTS_RATE_LIMIT_KEY_BURST": "1000000",
        **os.environ,
        "COLUMNS": "200",
        "KAFKA_TOPIC_PREFIX": names.topics,
        "KAFKA_PARTITIONS": str(PARTITIONS),
        "OPENSEARCH_INDEX_PREFIX": names.indices,
        "POSTGRES_SCHEMA": names.schema,
        "KAFKA_PROJECTOR_GROUP": f"bench-{names.run}-projector",
        "INSIGHTS_MASTER_KEY": cli("keys", "master-key", env=dict(os.environ)),
        "IMPORT_DATA_DIR": str(work / "import"),
        "IMPORT_PORT": str(ports["import"]),
        "INGEST_PORT": str(ports["ingest"]),
        "QUERY_PORT": str(ports["query"]),
        "QUERY_IMPORT_URL": f"http://127.0.0.1:{ports['import']}",
        "QUERY_INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['edge']}",
    }
    edge = local_edge().Edge(
        f"127.0.0.1:{ports['import']}",
        f"127.0.0.1:{ports['ingest']}",
        ",".join(f"127.0.0.1:{port}" for port in query_ports),
        ports["edge"],
        workers=os.cpu_count() or 1,
        work_dir=work / "edge",
    )
    plan = [(name, ports[name]) for name in SERVICES if name not in ("query", "projector")]
    plan += [("query", port) for port in query_ports]
    plan += [("projector", free_port() if n else ports["projector"]) for n in range(projectors)]
    processes: list[tuple[str, int, subprocess.Popen[bytes], Path]] = []
    try:
        edge.start()
        for number, (name, port) in enumerate(plan):
            log = work / f"{name}-{number}.log"
            with log.open("ab") as sink:
                process = subprocess.Popen(  # noqa: S603 - our own command
                    [*insights(name, work, profile), "serve", name, "--port", str(port)],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            processes.append((name, port, process, log))
        for _, port, process, log in processes:
            wait_ready(f"http://127.0.0.1:{port}", process, log)
        where = ("--app", APP_ID, "--distributed")
        secret = cli("webhooks", "secret", *where, env=env)
        key = cli("keys", "create", *where, env=env)
        how = (
            f"`insights serve` processes ({projectors} projector(s), {query_replicas} query"
            f" replica(s)), {PARTITIONS} partitions, through nginx ({edge.workers} workers)"
        )
        pids: dict[str, list[int]] = {"edge": edge.pids()}
        for name, _, process, _ in processes:
            # Each projector on its own: which one, if any, runs out of CPU. Query replicas
            # share a name, as they share the edge's upstream.
            shown = name
            if projectors > 1 and name == "projector":
                shown = f"projector-{sum(k.startswith('projector') for k in pids) + 1}"
            pids.setdefault(shown, []).append(process.pid)
        yield Target(edge.url, secret, key, how, pids)
    except BaseException:
        keep = False
        raise
    finally:
        if not keep:
            for _, _, process, _ in reversed(processes):
                stop(process)
            edge.stop()


def local_edge() -> Any:
    """deploy/local/edge.py, nginx in front of the services (a standard-library script)."""
    name = "insights_local_edge"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "deploy/local/edge.py")
        if spec is None or spec.loader is None:
            raise SystemExit("deploy/local/edge.py is missing")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


async def clean_up(names: Names, *, kafka: str, opensearch: str, postgres: str) -> None:
    """Drop this run's topics, indices, index templates and schema."""
    import asyncpg  # noqa: PLC0415
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from opensearchpy import AsyncOpenSearch  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.split(","))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(names.topics)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    client = AsyncOpenSearch(hosts=opensearch.split(","))
    try:
        await client.indices.delete(index=f"{names.indices}*", ignore_unavailable=True)
        templates = await client.indices.get_index_template(name=f"{names.indices}*", ignore=[404])
        for template in templates.get("index_templates", []):
            await client.indices.delete_index_template(name=template["name"])
    finally:
        await client.close()
    conn = await asyncpg.connect(postgres)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{names.schema}" CASCADE')
    finally:
        await conn.close()


# -- running ---------------------------------------------------------------------------------


@dataclass
class Report:
    mode: str
    deployment: str
    stream: dict[str, int]
    throughput: Throughput
    freshness: Freshness | None = None
    floor: Floor | None = None
    target_rate: int = 0

    @property
    def ratio(self) -> float | None:
        return self.throughput.visible_rate / self.floor.rate if self.floor else None


async def measure(target: Target, stream: Stream, args: argparse.Namespace) -> Report:
    api = Api(target, connections=args.connections)
    try:
        throughput = await run_throughput(api, stream, connections=args.connections)
        freshness = None
        if args.fresh_seconds > 0:
            freshness = await run_freshness(
                api, rate=args.fresh_rate, seconds=args.fresh_seconds, seed=args.seed + 7
            )
    finally:
        await api.close()
    shape = {
        "events": len(stream.arrivals),
        "messages": len(stream.messages),
        "users": stream.users,
        "duplicates": stream.duplicates,
        "late": stream.late,
        "templates": len(stream.templates),
    }
    return Report("", target.how, shape, throughput, freshness)


def run_mode(mode: str, args: argparse.Namespace) -> Report:
    stream = build_stream(
        events=args.events,
        seed=args.seed,
        tag="t",
        start=utc_now() - timedelta(days=1),
    )
    work = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{mode}-"))
    profile = frozenset(filter(None, args.profile.split(",")))
    try:
        if mode == "embedded":
            with embedded(work, profile=profile) as target:
                report = asyncio.run(measure(target, stream, args))
            report.target_rate = 20_000
        else:
            kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            opensearch = os.environ["OPENSEARCH_URL"]
            postgres = os.environ["POSTGRES_DSN"]
            names = Names()
            try:
                with distributed(
                    work, names, projectors=args.projectors, profile=profile
                ) as target:
                    report = asyncio.run(measure(target, stream, args))
                report.floor = asyncio.run(
                    run_floor(
                        canonical(stream), kafka=kafka, opensearch=opensearch, prefix=names.topics
                    )
                )
            finally:
                asyncio.run(clean_up(names, kafka=kafka, opensearch=opensearch, postgres=postgres))
            report.target_rate = 10_000
        report.mode = mode
        if profile:
            print(f"profiles of {', '.join(sorted(profile))} in {work}/*.prof", file=sys.stderr)
        elif not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
        return report
    except BaseException:
        print(f"logs kept in {work}", file=sys.stderr)
        raise


def show(report: Report) -> None:
    t = report.throughput
    s = report.stream
    print(f"== {report.mode}: {report.deployment}")
    print(
        f"stream   {s['events']:,} events ({s['messages']:,} messages, {s['users']:,} users,"
        f" {s['duplicates']:,} duplicates, {s['late']:,} late) in {t.batches} signed batches"
        f" of <= {BATCH:,}, {t.connections} connections; {s['templates']} templates first"
    )
    print(
        f"webhook  {t.accepted:,} accepted + {t.duplicates:,} duplicates in"
        f" {t.webhook_seconds:.2f} s = {t.webhook_rate:,.0f} events/s"
        f" (batch p50 {t.batch_p50_ms:.0f} ms, p99 {t.batch_p99_ms:.0f} ms)"
    )
    verdict = "ok" if t.visible_rate >= report.target_rate else "BELOW TARGET"
    print(
        f"visible  all in {t.visible_seconds:.2f} s = {t.visible_rate:,.0f} events/s"
        f" [target >= {report.target_rate:,}: {verdict}]"
    )
    print(
        "         (the last event posted to each of the notifications topic's partitions shows"
        " in GET /api/v1/messages/{id}; partitions are projected in order)"
    )
    if report.floor is not None:
        f = report.floor
        ratio = report.ratio or 0.0
        print(
            f"floor    {f.events:,} events in {f.seconds:.2f} s = {f.rate:,.0f} events/s ({f.how});"
            f" cpu: {_per_event(f.cpu_seconds, f.events)}"
        )
        print(
            f"ratio    ours / floor = {ratio:.2f}"
            f" [target >= 0.7: {'ok' if ratio >= 0.7 else 'BELOW TARGET'}]"
        )
    if report.freshness is not None:
        r = report.freshness
        verdict = "ok" if r.p99_ms <= 2000 and not r.missed else "BELOW TARGET"
        print(
            f"fresh    {r.probes} probes at {r.rate:,} events/s for {r.seconds:.0f} s:"
            f" p50 {r.p50_ms:.0f} ms, p90 {r.p90_ms:.0f} ms, p99 {r.p99_ms:.0f} ms,"
            f" max {r.max_ms:.0f} ms,"
            f" {r.missed} missed [target p99 <= 2 s: {verdict}]"
        )
        print(f"         ({r.how})")
    cpu = _per_event(t.cpu_seconds, t.events)
    cores = os.cpu_count() or 1
    print(
        f"cpu      until visible ({cores * t.visible_seconds:.1f} core-s on {cores} cores): {cpu}"
    )
    rss = ", ".join(f"{name} {mib:.0f}" for name, mib in t.peak_rss_mib.items())
    print(f"memory   peak RSS in MiB: {rss}")
    wrong = t.wrong_messages
    print(
        f"check    {t.checked_messages} sampled messages:"
        f" {'all as expected' if not wrong else f'{len(wrong)} WRONG, e.g. {wrong[:3]}'}"
    )


def _per_event(cpu: dict[str, float], events: int) -> str:
    return ", ".join(
        f"{name} {seconds:.1f} s ({1e6 * seconds / events:.0f} us/event)"
        for name, seconds in sorted(cpu.items(), key=lambda item: -item[1])
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mode", choices=("embedded", "distributed", "all"), default="all")
    parser.add_argument("--events", type=int, default=100_000, help="events in the stream")
    parser.add_argument("--connections", type=int, default=4, help="concurrent webhook clients")
    parser.add_argument("--projectors", type=int, default=1, help="projector processes")
    parser.add_argument("--fresh-rate", type=int, default=2000, help="events/s while probing")
    parser.add_argument(
        "--fresh-seconds", type=float, default=20, help="probe for this long (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated processes to run under cProfile (dev, ingest, projector, ...)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--json", action="store_true", help="print one JSON object per mode")
    args = parser.parse_args()
    modes = ("embedded", "distributed") if args.mode == "all" else (args.mode,)
    for mode in modes:
        report = run_mode(mode, args)
        if args.json:
            print(json.dumps(asdict(report) | {"ratio": report.ratio}, default=str))
        else:
            show(report)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
