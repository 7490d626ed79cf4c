"""What the OpenSearch client costs its process a request, by the HTTP under it.

    uv run --no-sync python -m bench.opensearch_http [--requests N] [--tries N] [--in-flight N]

Against OPENSEARCH_URL (a scratch index, removed at the end), `create_client`'s client with each
connection class in turn, alternating `--tries` times: `stock` (opensearch-py's own, on aiohttp)
and `lean` (`LeanConnection`, what `create_client` uses). Each sends `--requests` of the store's
request shapes on uvloop, `--in-flight` at a time:
- `details`: a message's details, an `mget` of one id with `_source_includes` (the cheapest read);
- `search`: a page of users, an `msearch` of one query with its aggregations;
- `bulk`: 100 documents written (the projector's shape, per request rather than per document).

Prints the process's CPU per request (user and system, from getrusage: the client's work and the
system calls it makes, not OpenSearch's) and the wall time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
import uvloop
from opensearchpy import AIOHttpConnection, AsyncOpenSearch

from insights_query.adapters.opensearch import create_client
from insights_query.adapters.opensearch.connection import LeanConnection

Shape = Callable[[AsyncOpenSearch, int], Awaitable[object]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client(url: str, connection: type) -> AsyncOpenSearch:
    client = create_client(url, pool=32)
    if connection is not LeanConnection:
        # The same client made with another connection class: the transport builds its
        # connections on first use, from the class it holds.
        client.transport.connection_class = connection
    return client


def shapes(index: str) -> dict[str, Shape]:
    search = [
        {"index": index},
        {
            "query": {"prefix": {"name": "user-1"}},
            "size": 20,
            "aggs": {"by_channel": {"terms": {"field": "channel", "execution_hint": "map"}}},
        },
    ]

    async def details(client: AsyncOpenSearch, n: int) -> object:
        return await client.mget(
            index=index,
            body={"ids": [str(n % 1000)]},
            params={"_source_includes": "name,channel,detail"},
        )

    async def users(client: AsyncOpenSearch, n: int) -> object:
        return await client.msearch(body=search)

    async def bulk(client: AsyncOpenSearch, n: int) -> object:
        lines = b"".join(
            orjson.dumps({"index": {"_index": index, "_id": str(1000 + (n * 100 + i) % 5000)}})
            + b"\n"
            + orjson.dumps({"name": f"user-{i}", "channel": "sms", "detail": "x" * 300})
            + b"\n"
            for i in range(100)
        )
        return await client.bulk(body=lines)

    return {"details": details, "search": users, "bulk": bulk}


async def _run(
    client: AsyncOpenSearch, shape: Shape, requests: int, in_flight: int
) -> tuple[float, float]:
    queue = iter(range(requests))

    async def worker() -> None:
        for n in queue:
            await shape(client, n)

    for n in range(50):
        await shape(client, n)
    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (_cpu() - cpu) / requests, (time.perf_counter() - wall) / requests


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200")
    index = f"bench-http-{uuid.uuid4().hex[:8]}"
    clients = {"stock": _client(url, AIOHttpConnection), "lean": _client(url, LeanConnection)}
    setup = clients["lean"]
    try:
        await setup.indices.create(
            index=index,
            body={
                "mappings": {
                    "properties": {
                        "name": {"type": "keyword"},
                        "channel": {"type": "keyword"},
                        "detail": {"type": "text", "index": False},
                    }
                }
            },
        )
        lines = b"".join(
            orjson.dumps({"index": {"_index": index, "_id": str(n)}})
            + b"\n"
            + orjson.dumps(
                {
                    "name": f"user-{n}",
                    "channel": ("sms", "push", "email")[n % 3],
                    "detail": "x" * 300,
                }
            )
            + b"\n"
            for n in range(1000)
        )
        await setup.bulk(body=lines, params={"refresh": "true"})
        print(f"{args.requests} requests a try, {args.in_flight} in flight, on {url}")
        print(f"{'shape':8s} {'client':6s} {'µs CPU a request':>17s} {'µs wall a request':>18s}")
        for shape_name, shape in shapes(index).items():
            for _ in range(args.tries):
                for name, client in clients.items():
                    cpu, wall = await _run(client, shape, args.requests, args.in_flight)
                    print(f"{shape_name:8s} {name:6s} {cpu * 1e6:17.1f} {wall * 1e6:18.1f}")
    finally:
        await setup.indices.delete(index=index, ignore_unavailable=True)
        for client in clients.values():
            await client.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=1)
    uvloop.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
