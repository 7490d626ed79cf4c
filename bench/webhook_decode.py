"""What decoding a webhook body costs, with the check that keeps integers beyond 64 bits exact.

    uv run --no-sync python -m bench.webhook_decode [--events 1000] [--repeat 300]

A body of `--events` contract events (orjson-encoded, as a platform sends it) is decoded
`--repeat` times three ways: orjson alone; `decode_batch` on that body (orjson plus the scan for a
run of 19 digits, which finds none); `decode_batch` on the same body with one 20-digit integer
(the scan finds it and the body is read again by the standard parser, exactly). Prints the best
and the median time of each. Wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from notification_ingest.domain.validation import decode_batch

EVENTS = (
    Path(__file__).resolve().parents[1] / "services/notification-ingest/tests/contract_events.json"
)


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    spent = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - start)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    kinds = json.loads(EVENTS.read_text(encoding="utf-8"))
    batch = [dict(kinds[n % len(kinds)], event_id=f"e{n}") for n in range(args.events)]
    body = orjson.dumps(batch)
    wide = body.replace(b'"A-1001"', b"12345678901234567890", 1)
    cases: dict[str, Callable[[], object]] = {
        "orjson.loads": lambda: orjson.loads(body),
        "decode_batch, no 19-digit run": lambda: decode_batch(body, max_batch=args.events),
        "decode_batch, exact path": lambda: decode_batch(wide, max_batch=args.events),
    }
    print(f"body of {args.events:,} events, {len(body):,} bytes; {args.repeat} runs each")  # noqa: T201
    for name, fn in cases.items():
        spent = timings(fn, args.repeat)
        print(  # noqa: T201
            f"{name:32} best {min(spent) * 1e3:7.3f} ms"
            f"   median {statistics.median(spent) * 1e3:7.3f} ms"
        )


if __name__ == "__main__":
    main()
