"""How much an upload raises the import server's memory: a 1 GiB upload and the largest file taken.

    uv run python -m bench.upload_memory [--gib 1] [--json]

Starts `insights dev` on a new data dir and samples its resident memory (VmRSS) every 20 ms while
it receives, from a client that generates the bytes as it sends them:
- a 1 GiB CSV sent chunked, with no Content-Length, so the server must read it to learn its size;
- the same with its Content-Length declared, which the server can refuse before reading it;
- the largest file the import takes: 100,000 rows padded to just under the byte limit by an
  ignored column, which is validated as it arrives and imported.
It prints the answer, the time and the peak memory above the server's idle memory for each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from import_svc.domain.validation import MAX_BYTES, MAX_ROWS

INSIGHTS = [sys.executable, "-m", "insights"]
BOUNDARY = "bench-boundary"
CHUNK = 256 * 1024


@dataclass
class Figure:
    case: str
    sent_bytes: int
    status: int | str
    seconds: float
    idle_rss_mib: float
    peak_rss_mib: float

    @property
    def raised_mib(self) -> float:
        return self.peak_rss_mib - self.idle_rss_mib


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Sampler:
    """The peak resident memory of a process, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self._pid))


def rows(count: int, *, width: int) -> Iterator[bytes]:
    """CSV lines of `width` bytes each (a padded ignored column), generated as they are sent."""
    yield HEADER_LINE
    for n in range(count):
        head = f"mem{n:07d},+8210{n % 100_000_000:08d},Mem {n},"
        yield (head + "x" * max(width - len(head) - 1, 0) + "\n").encode()


HEADER_LINE = b"user_id,phone_number,nickname,notes\n"
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
    "Content-Type: text/csv\r\n\r\n"
).encode()
PART_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


def body_length(count: int, *, width: int) -> int:
    return len(PART_HEAD) + len(HEADER_LINE) + count * width + len(PART_TAIL)


def multipart(lines: Iterator[bytes], sent: list[int]) -> Iterator[bytes]:
    yield PART_HEAD
    buffer = bytearray()
    for line in lines:
        buffer += line
        if len(buffer) >= CHUNK:
            sent[0] += len(buffer)
            yield bytes(buffer)
            buffer.clear()
    sent[0] += len(buffer)
    yield bytes(buffer)
    yield PART_TAIL


def upload(
    server: subprocess.Popen[bytes],
    url: str,
    key: str,
    *,
    case: str,
    lines: Iterator[bytes],
    declared: int | None,
) -> Figure:
    idle = rss_mib(server.pid)
    sent = [0]
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    if declared is not None:
        headers["Content-Length"] = str(declared)
    started = time.perf_counter()
    with Sampler(server.pid) as sampler:
        try:
            answer = httpx.post(
                f"{url}/api/v1/imports",
                headers=headers,
                content=multipart(lines, sent),
                timeout=600,
            )
            status: int | str = answer.status_code
            if answer.status_code == 202:
                import_id = answer.json()["id"]
                while answer.json()["status"] not in ("completed", "rejected", "failed"):
                    time.sleep(0.1)
                    answer = httpx.get(
                        f"{url}/api/v1/imports/{import_id}",
                        headers={"Authorization": f"Bearer {key}"},
                    )
                status = f"202, then {answer.json()['status']}"
            else:
                status = f"{answer.status_code} {answer.json().get('code')}"
        except httpx.HTTPError as error:
            # The server answered and closed the connection before the client finished sending.
            status = f"connection closed by the server ({type(error).__name__})"
        seconds = time.perf_counter() - started
    return Figure(case, sent[0], status, round(seconds, 2), round(idle, 1), round(sampler.peak, 1))


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    key = subprocess.run(  # noqa: S603 - our own command
        [*INSIGHTS, "keys", "create", "--app", "bench", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = 18765
    log = (data_dir / "server.log").open("ab")
    server = subprocess.Popen(  # noqa: S603 - our own command
        [*INSIGHTS, "dev", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url, key
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("insights dev did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the large upload")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    big = int(args.gib * (1 << 30))
    big_width = 200
    largest_width = (MAX_BYTES - 64) // MAX_ROWS

    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        server, url, key = start_server(Path(tmp))
        try:
            figures = [
                upload(
                    server,
                    url,
                    key,
                    case=f"{args.gib:g} GiB, chunked (no Content-Length)",
                    lines=rows(big // big_width, width=big_width),
                    declared=None,
                ),
                upload(
                    server,
                    url,
                    key,
                    case=f"{args.gib:g} GiB, Content-Length declared",
                    lines=rows(big // big_width, width=big_width),
                    declared=body_length(big // big_width, width=big_width),
                ),
                upload(
                    server,
                    url,
                    key,
                    case=f"largest file taken: {MAX_ROWS:,} rows of {largest_width} bytes",
                    lines=rows(MAX_ROWS, width=largest_width),
                    declared=None,
                ),
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)

    if args.json:
        print(json.dumps([{**asdict(f), "raised_mib": round(f.raised_mib, 1)} for f in figures]))
        return
    print(f"byte limit {MAX_BYTES:,} bytes, row limit {MAX_ROWS:,}")
    for f in figures:
        print(
            f"{f.case}: sent {f.sent_bytes / (1 << 20):,.0f} MiB in {f.seconds:.2f} s"
            f" -> {f.status}; server RSS {f.idle_rss_mib:.0f} MiB idle,"
            f" peak {f.peak_rss_mib:.0f} MiB (+{f.raised_mib:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
