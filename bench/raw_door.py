"""The raw-topic door's throughput: records on `platform.events.raw` to canonical events on Kafka.

    uv run --no-sync python -m bench.raw_door [--records 200] [--per-record 100] [--poison 0.01]

Wires notification-ingest as `insights serve ingest` does (its raw consumer, its dedup in
PostgreSQL) on the running Kafka and PostgreSQL (KAFKA_BOOTSTRAP_SERVERS, POSTGRES_DSN), with a
fresh topic prefix and schema it removes afterwards. It produces the records (each an array of
delivered events; a share of them invalid), then times from the first record produced until every
valid event is on the notifications topic and every invalid one on the raw dead-letter topic.
Wall-clock on whatever else the machine is doing: rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.fernet import Fernet

from insights.composition.distributed import kafka_ingest
from insights_common.auth import SecretBox
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.keys import PostgresKeyStore
from insights_contracts.topics import NOTIFICATIONS, PLATFORM_RAW, dlq
from notification_ingest.settings import IngestSettings


def delivered(n: int, *, valid: bool) -> dict[str, object]:
    return {
        "event_id": f"d-{n}",
        "event_type": "notification.delivered",
        "schema_version": 1,
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00Z" if valid else "yesterday",
        "message_id": f"m{n}",
        "user_id": f"u{n % 500}",
    }


async def count(bootstrap: str, topic: str, wanted: int) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        while seen < wanted:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            seen += sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()


async def run(records: int, per_record: int, poison: float) -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    dsn = os.environ["POSTGRES_DSN"]
    prefix = f"bench.{uuid.uuid4().hex[:8]}."
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin_conn = await asyncpg.connect(dsn)
    await admin_conn.execute(f'CREATE SCHEMA "{schema}"')
    db = await PostgresDatabase.connect(dsn, schema=schema, max_size=4)
    bus = KafkaBus(KafkaOptions(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=3))
    try:
        keys = PostgresKeyStore(db, SecretBox(Fernet.generate_key()))
        await keys.migrate()
        await kafka_ingest(db, bus, keys, IngestSettings())
        await bus.start()
        rng = random.Random(7)
        bodies: list[bytes] = []
        invalid = 0
        for r in range(records):
            batch = []
            for i in range(per_record):
                valid = rng.random() >= poison
                invalid += not valid
                batch.append(delivered(r * per_record + i, valid=valid))
            bodies.append(orjson.dumps(batch))
        valid_events = records * per_record - invalid
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        started = time.perf_counter()
        try:
            sends = [
                await producer.send(bus.topic(PLATFORM_RAW), body, key=str(n % 16).encode())
                for n, body in enumerate(bodies)
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        await asyncio.gather(
            count(bootstrap, bus.topic(NOTIFICATIONS), valid_events),
            count(bootstrap, dlq(bus.topic(PLATFORM_RAW)), invalid),
        )
        seconds = time.perf_counter() - started
        total = records * per_record
        print(  # noqa: T201
            f"{records} records x {per_record} events ({invalid} invalid): {seconds:.2f} s, "
            f"{total / seconds:,.0f} events/s through the raw door"
        )
    finally:
        await bus.stop()
        await db.close()
        await admin_conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin_conn.close()
        kafka_admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await kafka_admin.start()
        try:
            mine = [t for t in await kafka_admin.list_topics() if t.startswith(prefix)]
            await kafka_admin.delete_topics(mine)
        finally:
            await kafka_admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--per-record", type=int, default=100)
    parser.add_argument("--poison", type=float, default=0.01)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.per_record, args.poison))


if __name__ == "__main__":
    main()
