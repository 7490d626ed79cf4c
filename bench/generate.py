"""Load an app's users, templates and messages into the distributed deployment by its own doors.

    uv run --no-sync python -m bench.generate --users N --messages M [--seed S] [--keep] [--json]
    uv run --no-sync python -m bench.generate --down      # stop what --keep left running

Users come from bench.people (phones from about 60 regions; nicknames in Latin, accented Latin,
Hangul, Japanese, Cyrillic and Arabic, or none) and are imported as CSV files of up to 100,000
rows by POST /api/v1/imports, one after the other, each waited for. Templates and messages come
from bench.traffic (Zipf-distributed over the users, the demo catalog's templates and funnels,
spread over 90 days) as records of up to 1,000 events on `platform.events.raw`, or with
`--door webhook` in signed batches of 1,000 over several connections. The raw topic is the
default because it is the faster door on one machine: it skips the edge's and the ingest's
HTTP handling and the signatures, which take CPU from the projector, the bottleneck either way
(150,000 messages: about 20,000 events/s taken and 12,500/s visible, against 14,400 and 11,400
by the webhook). Nothing is held whole: each CSV file and each batch is generated, sent, dropped.

By default it starts the five `insights serve` processes on the running Kafka, OpenSearch and
PostgreSQL (KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL, POSTGRES_DSN) with fresh topic and index
prefixes and schema, and removes them all at the end, on an error or Ctrl-C too; `--keep` leaves
a loaded deployment running for bench.query. `--url/--key/--webhook-secret/--app` load a
deployment that is already running instead. Either way it writes a manifest (the seed, the
sizes, a sample of user ids, nickname prefixes, phones and message ids, and how to reach the
deployment) for bench.query. Figures are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson

from bench.doors import Holdback, Posted, Progress, by_raw_topic, by_webhook
from bench.ingest import (
    APP_ID,
    PARTITIONS,
    Api,
    CpuMeter,
    Names,
    Target,
    _until_visible,
    clean_up,
    distributed,
    partition_of,
    wait_ready,
)
from bench.manifest import DEFAULT_PATH, Deployment, Manifest, Sampler
from bench.people import Person, csv_file, person, user_rows
from bench.traffic import STAGES, Sent, Traffic
from insights.demo_data import rfc3339
from insights_common.clock import utc_now
from insights_contracts.topics import PLATFORM_RAW
from notification_ingest.settings import IngestSettings

USERS_PER_FILE = 100_000
POLL = 0.25


@dataclass
class UserFigures:
    users: int
    files: int
    seconds: float  # first upload -> the last file's users visible
    rate: float
    server_seconds: list[float]  # each import's created_at -> finished_at


@dataclass
class MessageFigures:
    messages: int
    events: int
    templates: int
    door: str
    requests: int  # webhook requests or raw records
    taken_seconds: float  # first event sent -> the last one taken (202, or committed)
    visible_seconds: float  # first event sent -> every event visible
    rate: float  # events/s until visible
    message_rate: float
    duplicates: int
    dead_letters: int
    statuses: dict[str, int]
    channels: dict[str, int]
    responded: int


@dataclass
class Report:
    seed: int
    deployment: str
    users: UserFigures
    messages: MessageFigures
    skew: dict[str, float]
    elapsed_seconds: float
    peak_rss_mib: dict[str, float]  # this process's and the deployment's processes'
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    manifest: str = ""


# -- users -----------------------------------------------------------------------------------


async def import_users(
    client: httpx.AsyncClient,
    *,
    seed: int,
    users: int,
    partitions: int,
    app: str,
    sampler: Sampler,
    first: int = 0,
) -> UserFigures:
    """Users first..first+users by CSV import; the next file is built in a thread meanwhile."""
    end = first + users
    spans = [(n, min(end, n + USERS_PER_FILE)) for n in range(first, end, USERS_PER_FILE)]

    def build(start: int, stop: int) -> tuple[bytes, list[str]]:
        last: dict[int, str] = {}

        def rows() -> Iterator[tuple[Person, str]]:
            for who, number in user_rows(seed, start, stop):
                sampler.user(who, number)
                last[partition_of(who.user_id, partitions, app=app)] = who.user_id
                yield who, number

        return csv_file(rows()), sorted(last.values())

    pending = asyncio.create_task(asyncio.to_thread(build, *spans[0]))
    await asyncio.wait([pending])
    started = time.perf_counter()
    server: list[float] = []
    sentinels: list[str] = []
    for number, (start, stop) in enumerate(spans, 1):
        body, sentinels = await pending
        if number < len(spans):
            pending = asyncio.create_task(asyncio.to_thread(build, *spans[number]))
        answer = await client.post(
            "/api/v1/imports", files={"file": (f"users-{number:03d}.csv", body, "text/csv")}
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST /imports answered {answer.status_code}: {answer.text[:500]}")
        record = await _until_imported(client, answer.json()["id"])
        taken = record["created"] + record["updated"] + record["unchanged"]
        if taken != stop - start:
            raise RuntimeError(f"import {number} took {taken} of {stop - start} rows: {record}")
        created = datetime.fromisoformat(record["created_at"])
        server.append((datetime.fromisoformat(record["finished_at"]) - created).total_seconds())
    for user_id in sentinels:
        await _until_found(client, f"/api/v1/users/{user_id}")
    seconds = time.perf_counter() - started
    return UserFigures(users, len(spans), seconds, users / seconds, server)


async def _until_found(client: httpx.AsyncClient, path: str, *, limit: float = 600) -> None:
    deadline = time.perf_counter() + limit
    while (await client.get(path)).status_code != 200:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"GET {path} still not found after {limit:.0f} s")
        await asyncio.sleep(POLL)


async def _until_imported(client: httpx.AsyncClient, import_id: str) -> dict[str, Any]:
    while True:
        record: dict[str, Any] = (await client.get(f"/api/v1/imports/{import_id}")).json()
        if record["status"] == "completed":
            return record
        if record["status"] in ("rejected", "failed"):
            raise RuntimeError(f"import {import_id} ended {record['status']}: {record['errors']}")
        await asyncio.sleep(POLL)


# -- templates and messages ------------------------------------------------------------------


async def send_messages(
    target: Target,
    deployment: Deployment,
    traffic: Traffic,
    sampler: Sampler,
    args: argparse.Namespace,
) -> MessageFigures:
    statuses: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    responded = 0
    progress = Progress(f"{args.door} door", traffic.messages)

    def heard(sent: Sent) -> None:
        nonlocal responded
        sampler.message(sent)
        statuses[sent.status] += 1
        channels[sent.channel] += 1
        responded += sent.responded
        progress.messages += 1

    templates = traffic.template_events()
    events = _chain(templates, traffic, heard)
    holdback = Holdback(partitions=deployment.partitions, app=deployment.app)
    api = Api(target, connections=args.connections)
    started = time.perf_counter()
    try:
        with progress:
            if args.door == "webhook":
                posted = await by_webhook(
                    api, events, holdback, connections=args.connections, progress=progress
                )
            else:
                posted = await _by_raw(events, holdback, deployment, progress)
        await _until_visible(api, posted.sentinels, limit=600 + progress.events / 1000)
        visible = time.perf_counter() - started
    finally:
        await api.close()
    return MessageFigures(
        messages=traffic.messages,
        events=progress.events,
        templates=len(templates),
        door=args.door,
        requests=posted.requests,
        taken_seconds=posted.seconds,
        visible_seconds=visible,
        rate=progress.events / visible,
        message_rate=traffic.messages / visible,
        duplicates=posted.duplicates,
        dead_letters=posted.dead_letters,
        statuses=dict(statuses),
        channels=dict(channels),
        responded=responded,
    )


def _chain(
    templates: list[dict[str, Any]], traffic: Traffic, heard: Callable[[Sent], None]
) -> Iterator[dict[str, Any]]:
    yield from templates
    yield from traffic.events(heard)


async def _by_raw(
    events: Iterator[dict[str, Any]], holdback: Holdback, deployment: Deployment, progress: Progress
) -> Posted:
    prefix = deployment.topic_prefix
    return await by_raw_topic(
        events,
        holdback,
        kafka=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        topic=f"{prefix}{PLATFORM_RAW}",
        group=f"{prefix}{IngestSettings().raw_group}",
        progress=progress,
    )


# -- a run -----------------------------------------------------------------------------------


async def load(
    target: Target,
    deployment: Deployment,
    args: argparse.Namespace,
    now: datetime,
    sampler: Sampler | None = None,
) -> tuple[Report, Manifest]:
    """Import users args.first_user.. (+args.users), then send args.messages to them.

    A cohort after the first (`first_user` > 0) has its own message stream. The manifest's users
    are all those up to the cohort's last, its messages and events the cohort's; `sampler` may
    carry on from earlier cohorts, so that its samples cover them all.
    """
    began = time.perf_counter()
    meter = CpuMeter(target.pids)
    sampler = sampler or Sampler(args.seed)
    first = args.first_user
    traffic = Traffic(
        app_id=deployment.app,
        seed=args.seed,
        users=args.users,
        messages=args.messages,
        now=now,
        days=args.days,
        zipf=args.zipf,
        stream=first,
        first_user=first,
    )
    headers = {"Authorization": f"Bearer {target.key}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=600) as client:
        print(f"importing {args.users:,} users ...", file=sys.stderr, flush=True)
        users = await import_users(
            client,
            seed=args.seed,
            users=args.users,
            partitions=deployment.partitions,
            app=deployment.app,
            sampler=sampler,
            first=first,
        )
    print(f"sending {args.messages:,} messages ...", file=sys.stderr, flush=True)
    messages = await send_messages(target, deployment, traffic, sampler, args)
    audience = traffic.audience
    heavy = [person(args.seed, first + audience.index_of(rank)).user_id for rank in range(10)]
    top = max(1, args.users // 100)
    skew = {
        "top_user_messages": args.messages * audience.share(0),
        "top_1pct_share": sum(audience.share(r) for r in range(top)),
        "median_user_messages": args.messages * audience.share(args.users // 2),
    }
    report = Report(
        seed=args.seed,
        deployment=deployment.how,
        users=users,
        messages=messages,
        skew=skew,
        elapsed_seconds=time.perf_counter() - began,
        peak_rss_mib={
            "bench": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **meter.peak_rss(list(target.pids)),
        },
        cpu_seconds=meter.spent(),
        manifest=str(args.manifest),
    )
    manifest = Manifest(
        seed=args.seed,
        users=first + args.users,
        messages=args.messages,
        events=messages.events,
        days=args.days,
        zipf=args.zipf,
        now=rfc3339(now),
        start=rfc3339(traffic.start),
        templates=[t.key for t in traffic.templates],
        sample=sampler.result(heavy),
        figures=asdict(report),
        deployment=deployment,
    )
    return report, manifest


@contextlib.contextmanager
def own_deployment(
    *, keep: bool, query_replicas: int = 1
) -> Iterator[tuple[Target, Deployment, Names]]:
    """The processes (the edge, `query_replicas` query services behind it) on fresh topics,
    indices and schema, removed at the end with all they made, unless `keep` and the body raised
    nothing (their logs are kept when it raised)."""
    servers = {
        "kafka": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "opensearch": os.environ["OPENSEARCH_URL"],
        "postgres": os.environ["POSTGRES_DSN"],
    }
    names = Names()
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    kept = False
    try:
        with distributed(
            work,
            names,
            projectors=1,
            profile=frozenset(),
            keep=keep,
            query_replicas=query_replicas,
        ) as target:
            yield (
                target,
                Deployment(
                    url=target.url,
                    key=target.key,
                    secret=target.secret,
                    app=target.app,
                    opensearch_url=servers["opensearch"],
                    index_prefix=names.indices,
                    topic_prefix=names.topics,
                    partitions=PARTITIONS,
                    how=target.how,
                    run=names.run,
                    work=str(work),
                    pids=target.pids,
                    kept=keep,
                ),
                names,
            )
        kept = keep
    except BaseException:
        print(f"logs kept in {work}", file=sys.stderr)
        raise
    finally:
        if not kept:
            asyncio.run(clean_up(names, **servers))
    if not kept:
        shutil.rmtree(work, ignore_errors=True)


def run_own(args: argparse.Namespace, now: datetime) -> Report:
    """Start a deployment, load it, and remove it unless --keep (and nothing went wrong)."""
    with own_deployment(keep=args.keep, query_replicas=args.query_replicas) as (
        target,
        deployment,
        _,
    ):
        report, manifest = asyncio.run(load(target, deployment, args, now))
        if not args.keep:
            manifest.deployment = None
        manifest.save(args.manifest)
    return report


def run_external(args: argparse.Namespace, now: datetime) -> Report:
    target = Target(args.url, args.webhook_secret, args.key, f"the deployment at {args.url}")
    target.app = args.app
    deployment = Deployment(
        url=args.url,
        key=args.key,
        secret=args.webhook_secret,
        app=args.app,
        opensearch_url=os.environ.get("OPENSEARCH_URL", ""),
        index_prefix=args.index_prefix,
        topic_prefix=args.topic_prefix,
        partitions=args.partitions,
        how=target.how,
    )
    report, manifest = asyncio.run(load(target, deployment, args, now))
    manifest.save(args.manifest)
    return report


def tear_down(path: Path) -> None:
    """Stop the processes a --keep run left, and drop its topics, indices and schema."""
    manifest = Manifest.load(path)
    deployment = manifest.deployment
    if deployment is None or not deployment.kept or deployment.run is None:
        raise SystemExit(f"{path} names no deployment that bench.generate --keep left running")
    pids = [pid for group in deployment.pids.values() for pid in group]
    mine = [pid for pid in pids if _is_insights(pid)]
    for pid in mine:
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while any(_is_insights(pid) for pid in mine) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in mine:
        if _is_insights(pid):
            os.kill(pid, signal.SIGKILL)
    asyncio.run(
        clean_up(
            Names(run=deployment.run),
            kafka=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            opensearch=os.environ["OPENSEARCH_URL"],
            postgres=os.environ["POSTGRES_DSN"],
        )
    )
    if deployment.work:
        shutil.rmtree(deployment.work, ignore_errors=True)
    manifest.deployment = None
    manifest.save(path)
    print(
        f"stopped {len(mine)} processes; dropped the topics {deployment.topic_prefix}*, the"
        f" indices {deployment.index_prefix}* and the schema of run {deployment.run}"
    )


def restart(path: Path, names: list[str]) -> None:
    """Restart the named processes of a deployment --keep left, with the command line and the
    environment each was started with: the code as it is now, on the data already loaded."""
    manifest = Manifest.load(path)
    deployment = manifest.deployment
    if deployment is None or not deployment.kept or not deployment.work:
        raise SystemExit(f"{path} names no deployment that bench.generate --keep left running")
    unknown = sorted(set(names) - set(deployment.pids))
    if unknown:
        raise SystemExit(f"--restart: no {', '.join(unknown)}; it has {', '.join(deployment.pids)}")
    for name in names:
        started = []
        for number, pid in enumerate(deployment.pids[name]):
            if not _is_insights(pid):
                raise SystemExit(f"{name} (pid {pid}) is not running")
            proc = Path(f"/proc/{pid}")
            command = [a.decode() for a in proc.joinpath("cmdline").read_bytes().split(b"\0") if a]
            pairs = proc.joinpath("environ").read_bytes().split(b"\0")
            env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
            port = command[command.index("--port") + 1]
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while _is_insights(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _is_insights(pid):
                os.kill(pid, signal.SIGKILL)
            log = Path(deployment.work) / f"{name}-restarted-{number}.log"
            with log.open("ab") as sink:
                process = subprocess.Popen(  # noqa: S603 - the command it was started with
                    command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            wait_ready(f"http://127.0.0.1:{port}", process, log)
            started.append(process.pid)
            print(f"restarted {name} on port {port}: pid {pid} -> {process.pid}")
        deployment.pids[name] = started
    manifest.save(path)


def _is_insights(pid: int) -> bool:
    """An `insights serve` process, or the nginx master of a deployment's edge (which names its
    config under the run's work directory, insights-edge or bench-*)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"insights" in command and b"serve" in command:
        return True
    line = b" ".join(command)
    return line.startswith(b"nginx: master process") and b"/edge/nginx.conf" in line


# -- output ----------------------------------------------------------------------------------


def show(report: Report, manifest: Manifest | None) -> None:
    u, m = report.users, report.messages
    print(f"== generate (seed {report.seed}): {report.deployment}")
    server = sum(u.server_seconds)
    print(
        f"users     {u.users:,} in {u.files} CSV import(s) of <= {USERS_PER_FILE:,} rows:"
        f" {u.seconds:.1f} s from the first upload until visible = {u.rate:,.0f} users/s"
        f" (imports' own time {server:.1f} s)"
    )
    door = "signed webhook batches" if m.door == "webhook" else "records on platform.events.raw"
    print(
        f"messages  {m.messages:,} messages = {m.events:,} events ({m.templates} template versions"
        f" first) as {m.requests:,} {door} of <= 1,000"
    )
    print(
        f"          taken in {m.taken_seconds:.1f} s ({m.events / m.taken_seconds:,.0f} events/s);"
        f" all visible in {m.visible_seconds:.1f} s = {m.rate:,.0f} events/s"
        f" ({m.message_rate:,.0f} messages/s)"
    )
    if m.duplicates or m.dead_letters:
        print(f"          {m.duplicates:,} duplicates, {m.dead_letters:,} dead-lettered records")
    total = max(1, sum(m.statuses.values()))
    funnel = ", ".join(
        f"{name} {100 * m.statuses.get(name, 0) / total:.1f}%" for name in (*STAGES, "failed")
    )
    print(f"status    {funnel}; responded {100 * m.responded / total:.1f}%")
    print(f"channels  {', '.join(f'{k} {v:,}' for k, v in sorted(m.channels.items()))}")
    s = report.skew
    print(
        f"skew      Zipf: the top user gets ~{s['top_user_messages']:,.0f} messages, the top 1% of"
        f" users {100 * s['top_1pct_share']:.0f}% of them, the median user"
        f" ~{s['median_user_messages']:.1f}"
    )
    cpu = ", ".join(
        f"{name} {seconds:.0f} s"
        for name, seconds in sorted(report.cpu_seconds.items(), key=lambda item: -item[1])
        if seconds >= 0.5
    )
    print(f"cpu       {cpu}")
    rss = ", ".join(f"{name} {mib:.0f}" for name, mib in report.peak_rss_mib.items())
    print(f"memory    peak RSS in MiB: {rss}")
    print(f"elapsed   {report.elapsed_seconds:.1f} s")
    print(f"manifest  {report.manifest}")
    deployment = manifest.deployment if manifest else None
    if deployment is not None and deployment.kept:
        print(
            f"kept      {deployment.url} (app {deployment.app})\n"
            f"          API key         {deployment.key}\n"
            f"          webhook secret  {deployment.secret}\n"
            f"          OpenSearch      {deployment.opensearch_url} {deployment.index_prefix}-*\n"
            f"          logs            {deployment.work}\n"
            f"          measure it:  uv run --no-sync python -m bench.query"
            f" --manifest {report.manifest}\n"
            f"          remove it:   uv run --no-sync python -m bench.generate --down"
            f" --manifest {report.manifest}"
        )


def interrupt(signum: int, frame: FrameType | None) -> None:
    """The first Ctrl-C or SIGTERM stops the run; later ones must not cut its clean-up short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stopping: removing what this run started ...", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--first-user",
        type=int,
        default=0,
        help="the index of the first user: with --url, a later cohort of users and messages",
    )
    parser.add_argument("--days", type=float, default=90, help="messages over this many days")
    parser.add_argument("--zipf", type=float, default=0.8, help="exponent of the user skew")
    parser.add_argument(
        "--now", help="the end of the span (RFC 3339); the same seed and --now, the same data"
    )
    parser.add_argument(
        "--door",
        choices=("webhook", "raw"),
        help="how templates and messages go in: raw (the default; needs KAFKA_BOOTSTRAP_SERVERS)"
        " or webhook (the default with --url)",
    )
    parser.add_argument("--connections", type=int, default=4, help="concurrent webhook posts")
    parser.add_argument("--keep", action="store_true", help="leave the deployment running")
    parser.add_argument(
        "--query-replicas",
        type=int,
        default=1,
        help="query processes behind the edge, which sends them requests in turn",
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--down", action="store_true", help="remove a deployment --keep left")
    parser.add_argument(
        "--restart",
        metavar="NAMES",
        help="restart these processes (e.g. query,ingest) of a deployment --keep left, to measure"
        " changed code on the data already loaded",
    )
    parser.add_argument("--url", help="load this running deployment instead of starting one")
    parser.add_argument("--key", help="its API key (with --url)")
    parser.add_argument("--webhook-secret", help="the app's webhook secret (with --url)")
    parser.add_argument("--app", default=APP_ID, help="the app of --key (with --url)")
    parser.add_argument("--index-prefix", default="insights", help="its OpenSearch prefix")
    parser.add_argument("--topic-prefix", default="", help="its Kafka topic prefix")
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="its partitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.down:
        tear_down(args.manifest)
        return
    if args.restart:
        restart(args.manifest, args.restart.split(","))
        return
    if args.users < 1 or args.messages < 1:
        parser.error("--users and --messages must be at least 1")
    if args.first_user < 0:
        parser.error("--first-user must not be negative")
    if args.query_replicas < 1:
        parser.error("--query-replicas must be at least 1")
    if args.url and args.query_replicas != 1:
        parser.error("--query-replicas starts a deployment: it does not go with --url")
    if args.url and not (args.key and args.webhook_secret):
        parser.error("--url needs --key and --webhook-secret")
    args.door = args.door or ("webhook" if args.url else "raw")
    now = datetime.fromisoformat(args.now) if args.now else utc_now().replace(microsecond=0)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        report = run_external(args, now) if args.url else run_own(args, now)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    manifest = Manifest.load(args.manifest)
    if args.json:
        print(orjson.dumps(asdict(report)).decode())
    else:
        show(report, manifest)


if __name__ == "__main__":
    main()
