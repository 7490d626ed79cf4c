"""The query benchmark: the API's latency per kind of request against its OpenSearch floor.

    uv run --no-sync python -m bench.query [--clients 20] [--seconds 60] [--under-ingest [RATE]]
        [--manifest PATH] [--json]

Against a deployment bench.generate loaded (read from its manifest), `--clients` concurrent
clients (one kept connection each, on uvloop, through the HTTP client the product speaks to
OpenSearch with, so that the load generator takes little of the machine it measures) run a
support console's mix (bench.query_mix: user search by exact id, nickname prefix and phone
digits; user details with stats, with and without a window; a user's message list, filtered or
not, and its second page by cursor; message details), each sending its next request when the
last one is answered.

The floor: the same OpenSearch requests the API sends, sent directly. They are recorded, not
rebuilt: before measuring, this process answers every request of the pools with the query API's
own QueryService over its OpenSearchInsightsStore, with a client (create_client, as the query
process makes it) whose transport notes each request; the floor's clients (one AsyncOpenSearch
each, from create_client too) replay a request's OpenSearch requests one after the other, as the
store sends them. So API p99 / raw p99 is what the edge (nginx), the query process (auth, parsing,
building and encoding the answer) and the HTTP hops add.

The API and the floor run in alternating slices of 5 s (the same clients, the same sequence of
requests), so a change in the machine's other load hits both alike. `--under-ingest RATE` then
runs it all again while another process posts webhook events at RATE events/s (default 5,000),
and shows how far each percentile moved. Wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import random
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import uvloop
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import TransportError

from bench.feed import Feed, FeedFigures
from bench.ingest import CpuMeter, quantile
from bench.manifest import DEFAULT_PATH, Deployment, Manifest
from bench.query_mix import BY_NAME, KINDS, Pools, Spec
from insights_common.http.conventions import DEFAULT_LIMIT, decode_cursor
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.opensearch.connection import LeanConnection
from insights_query.service import QueryService
from insights_query.settings import QuerySettings

SLICE = 5.0
WARM_UP = 2.0
RATIO_TARGET = 1.5
_ANY_STATUS = range(100, 600)  # counted, not raised: a 429 or 503 is an error of the run

Call = tuple[str, str, Any, Any, dict[str, Any]]  # method, url, params, body, other arguments
_recording: contextvars.ContextVar[list[Call]] = contextvars.ContextVar("recording")


# -- preparing: second-page cursors and the floor's recorded requests ------------------------


def _client(deployment: Deployment) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=deployment.url,
        headers={"Authorization": f"Bearer {deployment.key}"},
        timeout=30,
    )


async def _bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int = 8) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with slots:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def second_pages(deployment: Deployment, pools: Pools) -> list[Spec]:
    """First pages through the API; the pool is those that have a next_cursor."""
    candidates = pools.first_pages(3 * pools.size)
    async with _client(deployment) as client:

        async def first(spec: Spec) -> Spec | None:
            answer = await client.get(spec.path, params=spec.params)
            answer.raise_for_status()
            cursor = answer.json()["next_cursor"]
            return (
                Spec(spec.kind, spec.subject, spec.path, spec.params | {"cursor": cursor})
                if cursor
                else None
            )

        found = await _bounded([functools.partial(first, spec) for spec in candidates])
    return [spec for spec in found if spec is not None][: pools.size]


async def owners(deployment: Deployment, messages: list[Spec]) -> dict[str, str]:
    """The user of each message of the pool, read through the API."""
    async with _client(deployment) as client:

        async def owner(spec: Spec) -> tuple[str, str]:
            answer = await client.get(spec.path)
            answer.raise_for_status()
            return spec.subject, str(answer.json()["user_id"])

        return dict(await _bounded([functools.partial(owner, spec) for spec in messages]))


def _recording_client(url: str) -> AsyncOpenSearch:
    """create_client's client, its transport noting each request in the current recording."""
    client = create_client(url)
    send = client.transport.perform_request

    async def perform_request(
        method: str, url: str, params: Any = None, body: Any = None, **other: Any
    ) -> Any:
        _recording.get().append((method, url, params, body, other))
        return await send(method, url, params=params, body=body, **other)

    client.transport.perform_request = perform_request  # type: ignore[method-assign, assignment]
    return client


async def record(
    deployment: Deployment, specs: list[Spec]
) -> tuple[dict[Spec, list[Call]], dict[Spec, int]]:
    """The OpenSearch requests QueryService sends to answer each spec, in order; and how many
    items each answer had (users or messages found; 1 for a user or a message)."""
    client = _recording_client(deployment.opensearch_url)
    service = QueryService(
        OpenSearchInsightsStore(client, prefix=deployment.index_prefix), settings=QuerySettings()
    )
    app = deployment.app

    async def answer(spec: Spec) -> tuple[list[Call], int]:
        calls: list[Call] = []
        _recording.set(calls)
        p = spec.params
        found = 1
        if spec.kind.startswith("search"):
            users = await service.search_users(app, q=p["q"], limit=DEFAULT_LIMIT, after=None)
            found = len(users.items)
        elif spec.kind.startswith("user"):
            await service.get_user(app, spec.subject, since=p.get("since"), until=p.get("until"))
        elif spec.kind.startswith("messages"):
            filters = {k: p.get(k) for k in ("status", "channel", "template", "since", "until")}
            after = decode_cursor(p.get("cursor"))
            listed = await service.list_messages(
                app, spec.subject, **filters, limit=DEFAULT_LIMIT, after=after
            )
            found = len(listed.items)
        else:
            await service.get_message(app, spec.subject)
        return calls, found

    try:
        # Each job runs in its own task, so each has its own recording.
        answers = await _bounded([functools.partial(answer, spec) for spec in specs])
    finally:
        await client.close()
    calls = {spec: calls for spec, (calls, _) in zip(specs, answers, strict=True)}
    found = {spec: found for spec, (_, found) in zip(specs, answers, strict=True)}
    return calls, found


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Latencies:
    """Seconds per kind, and failed requests per kind."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    busy: float = 0.0  # seconds the clients ran
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # seconds


Send = Callable[[int, Spec], Awaitable[bool]]


async def run_slice(
    send: Send,
    clients: int,
    pools: dict[str, list[Spec]],
    *,
    seconds: float,
    seed: int,
    into: Latencies | None,
    pids: dict[str, list[int]] | None = None,
) -> None:
    """Every client sends its next request when its last one is answered, for `seconds`."""
    names = list(pools)
    weights = [BY_NAME[name].weight for name in names]
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while time.perf_counter() < deadline:
            kind = rng.choices(names, weights)[0]
            spec = rng.choice(pools[kind])
            began = time.perf_counter()
            ok = await send(number, spec)
            if into is None:
                continue
            if ok:
                into.seconds[kind].append(time.perf_counter() - began)
            else:
                into.errors[kind] += 1

    meter = CpuMeter(pids or {})
    began = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    if into is not None:
        into.busy += time.perf_counter() - began
        for name, spent in meter.spent().items():
            into.cpu[name] += spent


class Runner:
    """The API's clients and the floor's, kept open across slices."""

    def __init__(
        self,
        deployment: Deployment,
        pools: dict[str, list[Spec]],
        calls: dict[Spec, list[Call]],
        clients: int,
    ) -> None:
        """The API's clients speak HTTP as the product's OpenSearch client does (one kept
        connection each, `LeanConnection`): the lightest client here (bench.opensearch_http),
        as the floor's clients are, so the load generator takes as little of the machine it
        measures on either side."""
        self.pools = pools
        self.calls = calls
        self.clients = clients
        self.pids = deployment.pids
        edge = urlsplit(deployment.url)
        self.http = [
            LeanConnection(
                host=edge.hostname or "127.0.0.1",
                port=edge.port or 80,
                url_prefix=edge.path,
                timeout=30,
                maxsize=1,
                headers={"authorization": f"Bearer {deployment.key}"},
            )
            for _ in range(clients)
        ]
        self.opensearch = [create_client(deployment.opensearch_url) for _ in range(clients)]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.http), *(c.close() for c in self.opensearch))

    async def api(self, number: int, spec: Spec) -> bool:
        """One request, its body read whole; False for an error or an answer other than 200."""
        try:
            status, _, _ = await self.http[number].perform_request(
                "GET", spec.path, params=spec.params, ignore=_ANY_STATUS
            )
        except TransportError:  # no connection, no answer in time
            return False
        return status == 200

    async def raw(self, number: int, spec: Spec) -> bool:
        transport = self.opensearch[number].transport
        try:
            for method, url, params, body, other in self.calls[spec]:
                await transport.perform_request(method, url, params=params, body=body, **other)
        except Exception:  # noqa: BLE001 - any failure of the floor counts as an error
            return False
        return True

    async def measure(self, seconds: float, *, seed: int) -> tuple[Latencies, Latencies]:
        """The API and the floor in alternating slices; the same requests for both."""
        api, raw = Latencies(), Latencies()
        rounds = max(1, round(seconds / SLICE))
        for number in range(rounds):
            for send, into in ((self.api, api), (self.raw, raw)):
                await run_slice(
                    send,
                    self.clients,
                    self.pools,
                    seconds=seconds / rounds,
                    seed=seed + number,
                    into=into,
                    pids=self.pids,
                )
        return api, raw

    async def warm_up(self) -> None:
        for send in (self.api, self.raw):
            await run_slice(send, self.clients, self.pools, seconds=WARM_UP, seed=0, into=None)


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Figure:
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def figures(latencies: Latencies) -> dict[str, Figure]:
    out = {}
    for kind in KINDS:
        found = sorted(latencies.seconds.get(kind.name, []))
        out[kind.name] = Figure(
            requests=len(found),
            errors=latencies.errors.get(kind.name, 0),
            **{f"p{q}_ms": 1000 * quantile(found, q / 100) for q in (50, 95, 99)},
        )
    return out


@dataclass
class Phase:
    api: dict[str, Figure]
    raw: dict[str, Figure]
    api_rate: float  # requests/s
    raw_rate: float
    seconds: float
    api_cpu_ms: dict[str, float]  # CPU per request, by process (backing servers: upper bounds)
    raw_cpu_ms: dict[str, float]


def _per_request(cpu: dict[str, float], count: int) -> dict[str, float]:
    return {
        name: 1000 * seconds / max(1, count)
        for name, seconds in sorted(cpu.items(), key=lambda item: -item[1])
    }


def phase(api: Latencies, raw: Latencies) -> Phase:
    count = sum(len(v) for v in api.seconds.values())
    raw_count = sum(len(v) for v in raw.seconds.values())
    return Phase(
        figures(api),
        figures(raw),
        count / api.busy,
        raw_count / raw.busy,
        api.busy,
        _per_request(api.cpu, count),
        _per_request(raw.cpu, raw_count),
    )


@dataclass
class Report:
    clients: int
    seconds: float
    deployment: str
    data: dict[str, Any]
    pools: dict[str, int]
    answered: dict[str, float]  # share of a pool's requests whose answer had items
    prepare_seconds: float
    quiet: Phase
    loaded: Phase | None = None
    feed: FeedFigures | None = None
    # per kind, loaded - quiet in ms: p50_ms, p95_ms, p99_ms of the API, raw_p99_ms
    moved: dict[str, dict[str, float]] | None = None
    elapsed_seconds: float = 0.0


MOVED = ("p50_ms", "p95_ms", "p99_ms")


def moved(quiet: Phase, loaded: Phase) -> dict[str, dict[str, float]]:
    out = {}
    for kind in KINDS:
        q, l_ = quiet.api[kind.name], loaded.api[kind.name]
        if q.requests and l_.requests:
            out[kind.name] = {name: getattr(l_, name) - getattr(q, name) for name in MOVED}
            out[kind.name]["raw_p99_ms"] = (
                loaded.raw[kind.name].p99_ms - quiet.raw[kind.name].p99_ms
            )
    return out


# -- running ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, manifest: Manifest, deployment: Deployment) -> Report:
    began = time.perf_counter()
    mix = Pools(manifest, seed=args.seed, size=args.pool)
    pools = mix.build()
    if "messages_page2" in args.kinds:
        pages = await second_pages(deployment, mix)
        if pages:
            pools["messages_page2"] = pages
    if "message_of_user" in args.kinds and pools.get("message"):
        theirs = mix.of_their_users(pools["message"], await owners(deployment, pools["message"]))
        if theirs:
            pools["message_of_user"] = theirs
    pools = {kind: specs for kind, specs in pools.items() if kind in args.kinds}
    calls, found = await record(deployment, [spec for specs in pools.values() for spec in specs])
    prepared = time.perf_counter() - began
    print(f"prepared {len(calls):,} requests in {prepared:.1f} s", file=sys.stderr, flush=True)
    runner = Runner(deployment, pools, calls, args.clients)
    try:
        await runner.warm_up()
        quiet = phase(*await runner.measure(args.seconds, seed=args.seed))
        loaded, fed = None, None
        if args.under_ingest:
            print(f"feeding {args.under_ingest:,} events/s ...", file=sys.stderr, flush=True)
            config = {
                "url": deployment.url,
                "key": deployment.key,
                "secret": deployment.secret,
                "app": deployment.app,
                "rate": args.under_ingest,
                "seed": manifest.seed,
                "users": manifest.users,
                "zipf": manifest.zipf,
            }
            with Feed(config) as feed:
                await asyncio.sleep(3)  # the feeding process starts and reaches its rate
                loaded = phase(*await runner.measure(args.seconds, seed=args.seed))
            fed = feed.figures
    finally:
        await runner.close()
    return Report(
        clients=args.clients,
        seconds=args.seconds,
        deployment=deployment.how,
        data={"users": manifest.users, "messages": manifest.messages, "seed": manifest.seed},
        pools={kind: len(specs) for kind, specs in pools.items()},
        answered={
            kind: sum(found[s] > 0 for s in specs) / len(specs) for kind, specs in pools.items()
        },
        prepare_seconds=prepared,
        quiet=quiet,
        loaded=loaded,
        feed=fed,
        moved=moved(quiet, loaded) if loaded else None,
        elapsed_seconds=time.perf_counter() - began,
    )


def _verdict(ok: bool) -> str:
    return "ok" if ok else "ABOVE"


def ratio(api: Figure, raw: Figure) -> float:
    return api.p99_ms / raw.p99_ms if raw.p99_ms > 0 else float("nan")


def show_phase(title: str, p: Phase) -> None:
    print(title)
    print(
        f"{'kind':<31}{'requests':>9} {'p50':>7}{'p95':>7}{'p99':>7} |{'raw p50':>8}{'p95':>7}"
        f"{'p99':>7} | {'p99 API/raw':<13}| target p99"
    )
    for kind in KINDS:
        a, r = p.api[kind.name], p.raw[kind.name]
        if not a.requests:
            continue
        over = ratio(a, r)
        errors = f" ({a.errors} errors)" if a.errors else ""
        print(
            f"{kind.label:<31}{a.requests:>9,} {a.p50_ms:>7.1f}{a.p95_ms:>7.1f}{a.p99_ms:>7.1f} |"
            f"{r.p50_ms:>8.1f}{r.p95_ms:>7.1f}{r.p99_ms:>7.1f} |"
            f" {over:>5.2f} {_verdict(over <= RATIO_TARGET):<7}|"
            f" {kind.target_ms:>4.0f} ms {_verdict(a.p99_ms <= kind.target_ms)}{errors}"
        )
    print(
        f"throughput  API {p.api_rate:,.0f} requests/s; floor {p.raw_rate:,.0f} requests/s"
        f" (the same requests' OpenSearch requests)"
    )
    for label, cpu in (("API", p.api_cpu_ms), ("floor", p.raw_cpu_ms)):
        shown = ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items() if ms >= 0.05)
        print(f"cpu ms per request ({label}): {shown}")


def show(report: Report) -> None:
    d = report.data
    print(
        f"== query: {report.clients} clients, {report.seconds:.0f} s on the API and"
        f" {report.seconds:.0f} s on its floor in alternating {SLICE:.0f} s slices"
    )
    print(
        f"   {d['users']:,} users, {d['messages']:,} messages (seed {d['seed']});"
        f" {report.deployment}"
    )
    print(f"   latencies in ms; targets: p99 as listed, API/raw p99 <= {RATIO_TARGET:g}")
    answered = ", ".join(
        f"{BY_NAME[kind].label} {100 * share:.0f}%" for kind, share in report.answered.items()
    )
    print(f"   answers with items (pools of {max(report.pools.values())}): {answered}")
    show_phase("-- quiet", report.quiet)
    if report.loaded is not None:
        f = report.feed
        fed = (
            f"{f.achieved:,.0f} events/s posted (batch 202 p50 {f.batch_p50_ms:.0f} ms,"
            f" p99 {f.batch_p99_ms:.0f} ms, {f.failures} failed)"
            if f
            else "no figures from the feeding process"
        )
        show_phase(f"-- under ingest: {fed}", report.loaded)
        print("-- moved under ingest (loaded - quiet, ms, and loaded / quiet)")
        print(f"{'kind':<31}{'p50':>16}{'p95':>16}{'p99':>16} | {'raw p99':>16}")
        for name, deltas in (report.moved or {}).items():
            quiet = asdict(report.quiet.api[name]) | {"raw_p99_ms": report.quiet.raw[name].p99_ms}
            cells = [
                f"{deltas[n]:+7.1f} ({(quiet[n] + deltas[n]) / quiet[n]:.1f}x)"
                for n in (*MOVED, "raw_p99_ms")
            ]
            api = "".join(f"{cell:>16}" for cell in cells[:3])
            print(f"{BY_NAME[name].label:<31}{api} | {cells[3]:>16}")
    print(f"elapsed {report.elapsed_seconds:.0f} s (preparing {report.prepare_seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.query", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="on the API, and on the floor")
    parser.add_argument(
        "--under-ingest",
        type=int,
        nargs="?",
        const=5000,
        default=0,
        metavar="RATE",
        help="measure again while webhook events come in at RATE events/s (default 5,000)",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(kind.name for kind in KINDS),
        help="only these kinds of request, by name, comma-separated (default: the whole mix)",
    )
    parser.add_argument("--pool", type=int, default=100, help="requests drawn per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.pool < 1:
        parser.error("--clients, --seconds and --pool must be positive")
    args.kinds = args.kinds.split(",")
    unknown = sorted(set(args.kinds) - set(BY_NAME))
    if unknown or not args.kinds:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; the kinds are {', '.join(BY_NAME)}")
    manifest = Manifest.load(args.manifest)
    if manifest.deployment is None:
        raise SystemExit(
            f"{args.manifest} names no running deployment: load one with"
            " `python -m bench.generate --keep` (or --url ... to load a running one)"
        )
    report = uvloop.run(run(args, manifest, manifest.deployment))
    if args.json:
        print(orjson.dumps(asdict(report)).decode())
    else:
        show(report)


if __name__ == "__main__":
    main()
