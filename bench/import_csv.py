"""The import benchmark: a 100,000-row CSV from upload until its users show, against its floor.

    uv run --no-sync python -m bench.import_csv --mode embedded|distributed|all [--rows N] [--json]

It generates a realistic users file (unique user_ids; valid E.164 mobile numbers from about 60
countries, most from a dozen; nicknames in Latin, accented and Hangul letters or none; about 1%
bad rows of every kind the import reports), then measures:

- (a) the floor: a bare loop in this process over the same bytes, the csv module plus
  phonenumbers.parse + is_valid_number for each row. Timed with phonenumbers as installed and
  again with its own pattern cache on (numbers from many countries overflow Python's 512-entry
  re cache); the faster of the two is the floor;
- (b) the import end to end: from the start of POST /api/v1/imports until the last valid user
  of the file (in distributed mode: the last of each partition of the users topic, which the
  projector takes in order) is returned by GET /api/v1/users/{id}; with its phases upload ->
  202 accepted -> import completed -> users visible, and the server's own created_at ->
  finished_at;
- the validation alone in this process: the csv loop with check_e164 (the fast validator), and
  import_svc's FileValidator over the file, which is what the import runs per row.

Targets: embedded (b)/(a) <= 1.5; distributed (b)/(a) <= 4 and (b) <= 10 s.

Distributed mode starts the five `insights serve` processes on the running Kafka, OpenSearch and
PostgreSQL (KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL, POSTGRES_DSN) with fresh topic and index
prefixes and PostgreSQL schema, and drops them afterwards (the process handling is bench.ingest's).
Every figure is wall-clock on whatever else the machine is doing: rerun on a quiet machine to
compare. `--profile import` (or dev, projector, ...) runs those processes under cProfile and
prints their top functions by own time. cProfile sees the event-loop thread only: the work an
import hands to asyncio.to_thread (in embedded mode its validation and SQLite writes) shows with
`py-spy record --threads -p PID` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from bench.ingest import (
    PARTITIONS,
    CpuMeter,
    CpuTimeline,
    Names,
    Target,
    clean_up,
    distributed,
    embedded,
    partition_of,
)
from insights_contracts.phone import PhoneError, check_e164

TARGET_EMBEDDED = 1.5
TARGET_DISTRIBUTED = 4.0
TARGET_DISTRIBUTED_SECONDS = 10.0
POLL = 0.05  # seconds between polls of the import and of the users
LIMIT = 600.0  # give up on an import that takes longer than this

# Where the users of a typical consumer app live: a dozen countries carry most rows, a long tail
# of others the rest (each tail region gets TAIL_WEIGHT).
REGION_WEIGHTS = {
    "KR": 30,
    "US": 18,
    "JP": 8,
    "BR": 6,
    "IN": 6,
    "DE": 4,
    "GB": 4,
    "FR": 3,
    "VN": 3,
    "ID": 3,
    "MX": 2,
    "CA": 2,
}
TAIL = (
    "AR AU AT BE CH CL CN CO CZ DK EG ES FI GR HK HU IE IL IT KZ MA MY NG NL NO NZ PE PH PK PL PT "
    "RO RU SA SE SG TH TR TW UA AE ZA KE GH LK BD NP QA KW UY GT"
).split()
TAIL_WEIGHT = 0.3

FIRST = ("alex", "minji", "jisoo", "sofia", "lukas", "yuki", "ana", "priya", "omar", "lea", "noah")
LAST = ("kim", "lee", "park", "silva", "muller", "tanaka", "garcia", "sharma", "haddad", "martin")
NICKNAMES = (
    "Alex Kim",
    "김민지",
    "박지수",
    "이서연",
    "Zoë",
    "José Álvarez",
    "Léa Martin",
    "Jürgen",
    "Søren",
    "Ana",
    "Priya S.",
    "田中 ゆき",
    "Ömer",
    "minji 🌸",
)


@dataclass
class Dataset:
    body: bytes
    rows: int
    bad_rows: int
    valid_users: list[str]
    regions: int

    @property
    def valid(self) -> int:
        return len(self.valid_users)


def mobile_number(rng: random.Random, region: str) -> str:
    """A valid number of `region`: its example mobile with the last digits drawn at random."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = phonenumbers.national_significant_number(example)
    keep = max(2, len(national) - 6)
    for _ in range(200):
        candidate = national[:keep] + "".join(
            rng.choice("0123456789") for _ in range(len(national) - keep)
        )
        number = f"+{example.country_code}{candidate}"
        if check_e164(number) == number:
            return number
    return f"+{example.country_code}{national}"


def _bad_row(rng: random.Random, index: int, user_id: str, phone: str, taken: list[str]) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # a national notation: rejected with an E.164 hint
        national = phonenumbers.format_number(
            phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL
        )
        return f"{user_id},{national},"
    if kind == 1:  # too short or too long for its country
        for wrong in (phone[:-3], phone[:-2], phone + "12", phone + "1234567"):
            if isinstance(check_e164(wrong), PhoneError):
                return f"{user_id},{wrong},"
    if kind == 2:  # a space in the user_id
        return f"bad id {index},{phone},"
    if kind == 3:  # the same user_id as an earlier row
        return f"{rng.choice(taken)},{phone},"
    if kind == 4:  # a nickname over 80 characters
        return f"{user_id},{phone},{'가' * 90}"
    return f"{user_id},,"  # no phone number


def build_csv(rows: int, *, seed: int, bad_share: float = 0.01) -> Dataset:
    rng = random.Random(seed)
    regions = list(REGION_WEIGHTS) + TAIL
    weights = list(REGION_WEIGHTS.values()) + [TAIL_WEIGHT] * len(TAIL)
    lines = ["user_id,phone_number,nickname"]
    valid: list[str] = []
    bad = 0
    for index in range(rows):
        user_id = f"{rng.choice(FIRST)}.{rng.choice(LAST)}.{index:06d}"
        phone = mobile_number(rng, rng.choices(regions, weights)[0])
        # The last row stays valid: its user is the one the benchmark waits for.
        if valid and index < rows - 1 and rng.random() < bad_share:
            lines.append(_bad_row(rng, index, user_id, phone, valid))
            bad += 1
            continue
        roll = rng.random()
        nickname = "" if roll < 0.3 else rng.choice(NICKNAMES)
        if "," in nickname or '"' in nickname:
            nickname = '"' + nickname.replace('"', '""') + '"'
        lines.append(f"{user_id},{phone},{nickname}")
        valid.append(user_id)
    body = ("\n".join(lines) + "\n").encode()
    return Dataset(body, rows, bad, valid, len(regions))


# -- in-process figures ----------------------------------------------------------------------


def _csv_rows(body: bytes) -> tuple[int, Iterator[list[str]]]:
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    header = [name.strip().lower() for name in next(reader)]
    return header.index("phone_number"), reader


def bare_loop(body: bytes) -> tuple[float, int]:
    """Seconds for csv + phonenumbers.parse + is_valid_number over every row; valid count."""
    started = time.perf_counter()
    column, reader = _csv_rows(body)
    valid = 0
    for row in reader:
        try:
            number = phonenumbers.parse(row[column], None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            valid += 1
    return time.perf_counter() - started, valid


def check_loop(body: bytes) -> tuple[float, int]:
    """The same loop with check_e164, whose '+digits' path is the fast validator."""
    started = time.perf_counter()
    column, reader = _csv_rows(body)
    valid = 0
    for row in reader:
        if isinstance(check_e164(row[column]), str):
            valid += 1
    return time.perf_counter() - started, valid


def file_validator(body: bytes) -> tuple[float, int]:
    """import_svc's own validation of the file, fed in 1 MiB chunks as an upload arrives."""
    from import_svc.domain.validation import FileValidator  # noqa: PLC0415

    started = time.perf_counter()
    validator = FileValidator()
    for offset in range(0, len(body), 1 << 20):
        validator.feed(body[offset : offset + (1 << 20)])
    result = validator.finish()
    return time.perf_counter() - started, len(result.rows)


def best_of(runs: int, measure: Callable[[bytes], tuple[float, int]], body: bytes) -> float:
    return min(measure(body)[0] for _ in range(runs))


@dataclass
class Floor:
    seconds: float  # the faster of the two below
    default_seconds: float
    pattern_cache_seconds: float
    check_e164_seconds: float
    file_validator_seconds: float
    phonenumbers_us: float  # per row, at the floor
    check_e164_us: float


def measure_floor(data: Dataset, *, runs: int) -> Floor:
    warm = data.body[: data.body.index(b"\n", 200_000) + 1] if len(data.body) > 200_000 else b""
    if warm:
        bare_loop(warm)
        check_loop(warm)
    default = best_of(runs, bare_loop, data.body)
    # Irreversible for this process: measured after the default loop.
    phonenumbers.enable_pattern_cache()
    cached = best_of(runs, bare_loop, data.body)
    fast = best_of(runs, check_loop, data.body)
    whole = best_of(runs, file_validator, data.body)
    floor = min(default, cached)
    return Floor(
        seconds=floor,
        default_seconds=default,
        pattern_cache_seconds=cached,
        check_e164_seconds=fast,
        file_validator_seconds=whole,
        phonenumbers_us=1e6 * floor / data.rows,
        check_e164_us=1e6 * fast / data.rows,
    )


# -- the import end to end -------------------------------------------------------------------


@dataclass
class EndToEnd:
    seconds: float
    accepted_seconds: float  # upload start -> 202
    completed_seconds: float  # upload start -> GET /imports/{id} says completed
    visible_seconds: float  # upload start -> the sentinel users are returned
    server_seconds: float | None  # the record's created_at -> finished_at
    record: dict[str, Any]
    sentinels: int
    checked_users: int
    missing_users: list[str]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    timeline: str | None = None


def _sentinels(data: Dataset, partitions: int) -> list[str]:
    last: dict[int, str] = {}
    for user_id in data.valid_users:
        last[partition_of(user_id, partitions)] = user_id
    return sorted(set(last.values()) | {data.valid_users[-1]})


def _seconds_between(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_import(
    target: Target,
    data: Dataset,
    *,
    partitions: int,
    seed: int,
    timeline: CpuTimeline | None = None,
) -> EndToEnd:
    sentinels = _sentinels(data, partitions)
    headers = {"Authorization": f"Bearer {target.key}"}
    with (
        httpx.Client(base_url=target.url, headers=headers, timeout=LIMIT) as client,
        timeline or contextlib.nullcontext(),
    ):
        meter = CpuMeter(target.pids)
        mark = timeline.mark if timeline is not None else (lambda label: None)
        started = time.perf_counter()
        answer = client.post(
            "/api/v1/imports", files={"file": ("users.csv", data.body, "text/csv")}
        )
        accepted = time.perf_counter()
        mark("202")
        if answer.status_code != 202:
            raise RuntimeError(f"POST /imports answered {answer.status_code}: {answer.text[:500]}")
        import_id = answer.json()["id"]
        while True:
            record: dict[str, Any] = client.get(f"/api/v1/imports/{import_id}").json()
            if record["status"] == "completed":
                break
            if record["status"] in ("rejected", "failed"):
                raise RuntimeError(f"the import ended {record['status']}: {record['errors']}")
            if time.perf_counter() - started > LIMIT:
                raise RuntimeError(f"the import is still {record['status']} after {LIMIT} s")
            time.sleep(POLL)
        completed = time.perf_counter()
        mark("completed")
        if record.get("published_at"):
            published = _seconds_between(record["created_at"], record["published_at"])
            mark(f"published (by the record, {published:.2f} s after created)")
        # One request per poll (the sentinels one after the other) so that polling takes
        # little of the CPU the deployment is using.
        for user_id in sentinels:
            while client.get(f"/api/v1/users/{user_id}").status_code != 200:
                if time.perf_counter() - started > LIMIT:
                    raise RuntimeError(f"user {user_id} not visible after {LIMIT} s")
                time.sleep(POLL)
        visible = time.perf_counter()
        mark("visible")
        cpu = meter.spent()
        sample = random.Random(seed).sample(data.valid_users, min(50, data.valid))
        missing = [u for u in sample if client.get(f"/api/v1/users/{u}").status_code != 200]
    return EndToEnd(
        seconds=visible - started,
        accepted_seconds=accepted - started,
        completed_seconds=completed - started,
        visible_seconds=visible - started,
        server_seconds=_seconds_between(record["created_at"], record.get("finished_at")),
        record=record,
        sentinels=len(sentinels),
        checked_users=len(sample),
        missing_users=missing,
        cpu_seconds=cpu,
        timeline=timeline.table() if timeline is not None else None,
    )


# -- running ---------------------------------------------------------------------------------


@dataclass
class Report:
    mode: str
    deployment: str
    rows: int
    valid_rows: int
    bad_rows: int
    regions: int
    file_bytes: int
    floor: Floor
    end_to_end: EndToEnd
    ratio: float
    target_ratio: float
    target_seconds: float | None
    meets_target: bool
    profiles: dict[str, str] = field(default_factory=dict)


def _top_functions(path: Path, count: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(count)
    return out.getvalue()


def _timeline(args: argparse.Namespace, target: Target) -> CpuTimeline | None:
    return CpuTimeline(target.pids, step=args.timeline) if args.timeline else None


def run_mode(mode: str, data: Dataset, floor: Floor, args: argparse.Namespace) -> Report:
    work = Path(tempfile.mkdtemp(prefix=f"bench-import-{mode}-"))
    profile = frozenset(filter(None, args.profile.split(",")))
    try:
        if mode == "embedded":
            with embedded(work, profile=profile) as target:
                result = run_import(
                    target, data, partitions=1, seed=args.seed, timeline=_timeline(args, target)
                )
            target_ratio, target_seconds = TARGET_EMBEDDED, None
        else:
            kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            opensearch = os.environ["OPENSEARCH_URL"]
            postgres = os.environ["POSTGRES_DSN"]
            names = Names()
            try:
                with distributed(work, names, projectors=1, profile=profile) as target:
                    result = run_import(
                        target,
                        data,
                        partitions=PARTITIONS,
                        seed=args.seed,
                        timeline=_timeline(args, target),
                    )
            finally:
                asyncio.run(clean_up(names, kafka=kafka, opensearch=opensearch, postgres=postgres))
            target_ratio, target_seconds = TARGET_DISTRIBUTED, TARGET_DISTRIBUTED_SECONDS
        ratio = result.seconds / floor.seconds
        fast_enough = target_seconds is None or result.seconds <= target_seconds
        meets = ratio <= target_ratio and fast_enough
        profiles = {path.stem: _top_functions(path) for path in sorted(work.glob("*.prof"))}
        if not profile and not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
        elif profile:
            print(f"profiles in {work}/*.prof", file=sys.stderr)
        return Report(
            mode=mode,
            deployment=target.how,
            rows=data.rows,
            valid_rows=data.valid,
            bad_rows=data.bad_rows,
            regions=data.regions,
            file_bytes=len(data.body),
            floor=floor,
            end_to_end=result,
            ratio=ratio,
            target_ratio=target_ratio,
            target_seconds=target_seconds,
            meets_target=meets,
            profiles=profiles,
        )
    except BaseException:
        print(f"logs kept in {work}", file=sys.stderr)
        raise


def show(report: Report) -> None:
    f, e = report.floor, report.end_to_end
    print(f"== {report.mode}: {report.deployment}")
    print(
        f"file     {report.rows:,} rows ({report.valid_rows:,} valid, {report.bad_rows:,} bad),"
        f" numbers from {report.regions} countries, {report.file_bytes / 1e6:.1f} MB"
    )
    print(
        f"(a)      bare loop csv + phonenumbers.parse + is_valid_number: {f.seconds:.2f} s"
        f" ({f.phonenumbers_us:.1f} us/row; as installed {f.default_seconds:.2f} s, with its"
        f" pattern cache {f.pattern_cache_seconds:.2f} s)"
    )
    print(
        f"valid.   csv + check_e164 (fast validator) {f.check_e164_seconds:.2f} s"
        f" ({f.check_e164_us:.1f} us/row);"
        f" import_svc FileValidator {f.file_validator_seconds:.2f} s"
    )
    limit = f" and (b) <= {report.target_seconds:.0f} s" if report.target_seconds else ""
    print(f"(b)      import end to end: {e.seconds:.2f} s")
    server = f"{e.server_seconds:.2f} s" if e.server_seconds is not None else "n/a"
    print(
        f"phases   upload -> 202 {e.accepted_seconds:.2f} s -> completed"
        f" {e.completed_seconds:.2f} s -> {e.sentinels} sentinel users visible"
        f" {e.visible_seconds:.2f} s (server created_at -> finished_at {server};"
        f" polled every {POLL * 1000:.0f} ms)"
    )
    verdict = "ok" if report.meets_target else "BELOW TARGET"
    print(f"(b)/(a)  {report.ratio:.2f} [target <= {report.target_ratio}{limit}: {verdict}]")
    r = e.record
    print(
        f"record   created {r.get('created')}, updated {r.get('updated')}, unchanged"
        f" {r.get('unchanged')}, rejected {r.get('rejected')} of {r.get('total_rows')} rows"
    )
    cpu = ", ".join(
        f"{name} {seconds:.1f} s"
        for name, seconds in sorted(e.cpu_seconds.items(), key=lambda item: -item[1])
        if seconds >= 0.05
    )
    print(f"cpu      upload -> visible: {cpu}")
    missing = e.missing_users
    print(
        f"check    {e.checked_users} sampled valid users:"
        f" {'all returned' if not missing else f'{len(missing)} MISSING, e.g. {missing[:3]}'}"
    )
    if e.timeline:
        print("--- CPU of each process, % of one core, every step (2 cores = 200%) ---")
        print(e.timeline)
    for name, text in report.profiles.items():
        print(f"--- cProfile of {name} (own time, event-loop thread) ---\n{text}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.import_csv", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mode", choices=("embedded", "distributed", "all"), default="all")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="in-process loops: best of N")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated processes to run under cProfile (dev, import, projector, ...)",
    )
    parser.add_argument(
        "--timeline",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="print each process's CPU every SECONDS from upload to visible (e.g. 0.25)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--json", action="store_true", help="print one JSON object per mode")
    args = parser.parse_args()
    data = build_csv(args.rows, seed=args.seed)
    floor = measure_floor(data, runs=args.runs)
    modes = ("embedded", "distributed") if args.mode == "all" else (args.mode,)
    for mode in modes:
        report = run_mode(mode, data, floor, args)
        if args.json:
            print(json.dumps(asdict(report), default=str))
        else:
            show(report)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
