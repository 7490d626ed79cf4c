"""The upload door against hostile files: the CSV reader's time against size, and the server's.

    uv run python -m bench.upload_doors [--sizes 4,8,16,32] [--limits default|off|both]
        [--shapes 'one long line,normal rows'] [--server] [--reader]

- reader: files of each shape at each size (MiB), fed in 64 KiB chunks as the HTTP door feeds
  them: one long line, blank lines, cells full of doubled quotes, a quote opened on the second
  line and never closed, and normal rows. With `--limits default` they go through import_svc's
  FileValidator with the service's limits, which stops at the first file problem; with
  `--limits off` through the CSV reader alone (CsvStream) with its record limit raised past the
  file, so it reads every byte, which shows whether its own cost grows linearly. It prints the
  seconds, MiB/s and the outcome (rows, records, or the problem code).
- server: starts `insights dev` on a new data dir and uploads a 30 MiB file of one line and a
  50 MiB file of blank lines, printing the answer, the client's wall time and the server's own
  time (the import's created_at to finished_at).

Figures are wall-clock on whatever else the machine is doing; rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import embedded
from import_svc.domain.csv_stream import CsvStream
from import_svc.domain.model import FileRejected
from import_svc.domain.validation import FileValidator

MIB = 1 << 20
CHUNK = 64 * 1024
HEADER = b"user_id,phone_number,nickname\n"
BOUNDARY = "bench-upload-doors"


def one_long_line(size: int) -> bytes:
    return b"x" * size


def blank_lines(size: int) -> bytes:
    return HEADER + b"\n" * (size - len(HEADER))


def quotes(size: int) -> bytes:
    row = b'u1,+14155550171,"' + b'""' * 40 + b'"\n'
    return HEADER + row * ((size - len(HEADER)) // len(row))


def open_quote(size: int) -> bytes:
    row = b"u2,+14155550172,Alex\n"
    return HEADER + b'u1,+14155550171,"never closed\n' + row * ((size - len(HEADER)) // len(row))


def normal_rows(size: int) -> bytes:
    lines = [HEADER]
    total = len(HEADER)
    n = 0
    while total < size:
        line = f"user{n},+1415555{n % 10000:04d},Nick {n}\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


SHAPES: dict[str, Callable[[int], bytes]] = {
    "one long line": one_long_line,
    "blank lines": blank_lines,
    "many quotes": quotes,
    "open quote": open_quote,
    "normal rows": normal_rows,
}


def read_records(data: bytes) -> tuple[float, str]:
    stream = CsvStream(max_record_bytes=len(data) * 2 + 1)
    started = time.perf_counter()
    view = memoryview(data)
    count = 0
    try:
        for offset in range(0, len(data), CHUNK):
            count += len(stream.feed(bytes(view[offset : offset + CHUNK])))
        count += len(stream.close())
        outcome = f"{count:,} records"
    except FileRejected as exc:
        outcome = f"{exc.issue.code} (line {exc.issue.line})"
    return time.perf_counter() - started, outcome


def read(data: bytes) -> tuple[float, str]:
    validator = FileValidator()
    started = time.perf_counter()
    view = memoryview(data)
    for offset in range(0, len(data), CHUNK):
        validator.feed(bytes(view[offset : offset + CHUNK]))
        if validator.stopped:
            break
    result = validator.finish()
    seconds = time.perf_counter() - started
    if result.file_error is not None:
        outcome = f"{result.file_error.code} (line {result.file_error.line})"
    else:
        outcome = f"{result.total_rows:,} rows, {result.rejected:,} rejected"
    return seconds, outcome


def reader(sizes: list[int], modes: list[str], shapes: list[str]) -> None:
    for mode in modes:
        print(f"limits {mode}: {'CsvStream alone' if mode == 'off' else 'FileValidator'}")
        for shape in shapes:
            make = SHAPES[shape]
            for mib in sizes:
                data = make(mib * MIB)
                seconds, outcome = read_records(data) if mode == "off" else read(data)
                rate = mib / seconds if seconds else float("inf")
                print(f"  {shape:14} {mib:3d} MiB {seconds:8.3f} s {rate:9.1f} MiB/s  -> {outcome}")


def multipart(data: bytes) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="hostile.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    for offset in range(0, len(data), 256 * 1024):
        yield data[offset : offset + 256 * 1024]
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(url: str, key: str, name: str, data: bytes) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        answer = httpx.post(
            f"{url}/api/v1/imports",
            headers={**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            content=multipart(data),
            timeout=600,
        )
    except httpx.HTTPError as error:
        print(f"  {name}: connection closed ({type(error).__name__})")
        return
    wall = time.perf_counter() - started
    body: dict[str, Any] = answer.json()
    import_id = body.get("import_id") or body.get("id")
    record: dict[str, Any] = {}
    while import_id:
        record = httpx.get(f"{url}/api/v1/imports/{import_id}", headers=auth).json()
        if record["status"] in ("completed", "rejected", "failed"):
            break
        time.sleep(0.1)
    server = ""
    if record.get("finished_at"):
        spent = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(
            record["created_at"]
        )
        server = f", server {spent.total_seconds():.2f} s (created_at -> finished_at)"
    code = body.get("code") or record.get("status")
    errors = record.get("errors") or [{}]
    print(
        f"  {name}: {len(data) / MIB:.0f} MiB -> {answer.status_code} {code}"
        f" (line {errors[0].get('line')}) in {wall:.2f} s client{server}"
    )
    if body.get("detail"):
        print(f"    {body['detail'][:200]}")


def server() -> None:
    print("server (insights dev):")
    with tempfile.TemporaryDirectory(prefix="bench-doors-") as tmp:
        with embedded(Path(tmp), profile=frozenset()) as target:
            upload(target.url, target.key, "one line", one_long_line(30 * MIB))
            upload(target.url, target.key, "blank lines", blank_lines(50 * MIB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="4,8,16,32", help="file sizes in MiB, comma-separated")
    parser.add_argument("--limits", choices=("default", "off", "both"), default="both")
    parser.add_argument(
        "--shapes", default=",".join(SHAPES), help=f"comma-separated, of: {', '.join(SHAPES)}"
    )
    parser.add_argument("--reader", action="store_true", help="only the reader")
    parser.add_argument("--server", action="store_true", help="only the server")
    args = parser.parse_args()
    both = not args.reader and not args.server
    if args.reader or both:
        modes = ["default", "off"] if args.limits == "both" else [args.limits]
        reader([int(s) for s in args.sizes.split(",")], modes, args.shapes.split(","))
    if args.server or both:
        server()


if __name__ == "__main__":
    main()
