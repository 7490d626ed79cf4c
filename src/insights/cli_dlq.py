"""`insights dlq`: list and replay the dead letters a consumer could not take."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from insights.cli_options import DataDir, embedded_settings, err, out
from insights.composition.distributed import dead_letters
from insights.composition.embedded import build_embedded
from insights_common.auth import MissingMasterKey
from insights_common.dead_letters import (
    DLQ_SOURCES,
    KEPT_CALLBACKS,
    CombinedDeadLetters,
    DeadLetter,
    DeadLetterBox,
    Listing,
    Replay,
    preview,
    source_topic,
)

dlq_app = typer.Typer(
    help="Dead letters: events a consumer could not take, kept with why, for replay.",
    no_args_is_help=True,
)

T = TypeVar("T")


DlqDistributed = Annotated[
    bool,
    typer.Option(
        "--distributed",
        help="Use the distributed mode's Kafka (KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX) "
        "instead of the data dir.",
    ),
]
DlqTopic = Annotated[
    str | None,
    typer.Option(
        "--topic",
        help=f"Only the dead letters of this topic: {', '.join(DLQ_SOURCES)} "
        f"(its .dlq name works too), or '{KEPT_CALLBACKS}' for the platforms' callbacks kept "
        "until a user with their phone number is imported.",
        show_default=False,
    ),
]


@asynccontextmanager
async def _dead_letters(
    data_dir: Path | None, distributed: bool, topic: str | None
) -> AsyncIterator[DeadLetterBox]:
    """The topics' dead letters and the platforms' kept callbacks. In the distributed mode the
    kept callbacks are in PostgreSQL, which is asked only when they are wanted (no `--topic`, or
    `--topic sources`)."""
    if not distributed:
        # Wired but not started: a replay needs the projector, not the services' start hooks.
        embedded = build_embedded(embedded_settings(data_dir))
        try:
            yield CombinedDeadLetters(embedded.dead_letters, embedded.kept_callbacks)
        finally:
            await embedded.stop()
        return
    async with dead_letters(kept=topic in (None, KEPT_CALLBACKS)) as box:
        yield box


def _dlq_source(topic: str | None) -> str | None:
    if topic is None:
        return None
    try:
        return source_topic(topic)
    except ValueError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


def _run_dlq(work: Coroutine[Any, Any, T]) -> T:
    """Run a dead-letter operation; a server that does not answer is a clear error, exit 1."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from insights_common.kafka.dead_letters import DeadLetterError  # noqa: PLC0415

    try:
        return asyncio.run(work)
    except MissingMasterKey as error:
        err.print(
            f"[red]error:[/] {error} (the kept callbacks are read with the master key;"
            " '--topic TOPIC' lists a topic's dead letters without it)"
        )
        raise typer.Exit(2) from None
    except (KafkaError, DeadLetterError, OSError) as error:
        err.print(f"[red]error:[/] {error or type(error).__name__}")
        raise typer.Exit(1) from None


def _letter_json(letter: DeadLetter) -> dict[str, object]:
    try:
        text: str | None = letter.value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "id": letter.id,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "source_index": letter.source_index,
        "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        "failed_at": letter.failed_at,
        "consumer": letter.consumer,
        "error": letter.error,
        "replayed": letter.replayed,
        "value": text,
        "value_base64": base64.b64encode(letter.value).decode(),
    }


def _where(letter: DeadLetter) -> str:
    if letter.source_partition is None or letter.source_offset is None:
        return f"row {letter.id}" if letter.partition is None else "?"
    index = "" if letter.source_index is None else f" #{letter.source_index}"
    return f"{letter.source_partition}:{letter.source_offset}{index}"


@dlq_app.command("list")
def dlq_list(
    topic: DlqTopic = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="Show the latest N.")
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON with the bytes in full instead of a table.")
    ] = False,
    data_dir: DataDir = None,
    distributed: DlqDistributed = False,
) -> None:
    """List the dead letters, oldest first: events a consumer could not take, and why."""
    source = _dlq_source(topic)

    async def select() -> Listing:
        async with _dead_letters(data_dir, distributed, source) as box:
            return await box.listing(topic=source, limit=limit)

    listing = _run_dlq(select())
    if as_json:
        payload = {
            "total": listing.total,
            "pending": listing.pending,
            "items": [_letter_json(letter) for letter in listing.letters],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not listing.letters:
        out.print(f"no dead letters{f' from {source}' if source else ''}")
        return
    table = Table(header_style="bold")
    for column in ("id", "topic", "from", "failed at", "consumer", "error", "bytes", "state"):
        table.add_column(column, overflow="fold")
    for letter in listing.letters:
        state = "[dim]replayed[/]" if letter.replayed else "[yellow]pending[/]"
        table.add_row(
            letter.id,
            letter.topic,
            _where(letter),
            letter.failed_at,
            letter.consumer,
            letter.error,
            preview(letter.value),
            state,
        )
    out.print(table)
    out.print(
        f"{len(listing.letters)} of {listing.total} dead letters shown; "
        f"{listing.pending} pending replay ('insights dlq replay --all' sends them back)"
    )


@dlq_app.command("replay")
def dlq_replay(
    topic: DlqTopic = None,
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="A dead letter's id as listed; repeat for several."),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every pending dead letter (of --topic).")
    ] = False,
    data_dir: DataDir = None,
    distributed: DlqDistributed = False,
) -> None:
    """Send dead letters back to their source topic, so the normal path takes them again.

    Replay once the cause is fixed. Event ids make a second replay harmless. Exit code 0: all
    were replayed; 1: an id is unknown, or (embedded) some failed again and are dead letters anew.
    """
    if bool(ids) == replay_all:
        err.print("[red]error:[/] give the dead letters to replay: --id ID (repeatable) or --all")
        raise typer.Exit(2)
    source = _dlq_source(topic)

    async def replay() -> Replay:
        async with _dead_letters(data_dir, distributed, source) as box:
            return await box.replay(topic=source, ids=ids if ids else None)

    result = _run_dlq(replay())
    by_topic: dict[str, int] = {}
    for letter in result.replayed:
        by_topic[letter.topic] = by_topic.get(letter.topic, 0) + 1
    if by_topic:
        where = ", ".join(f"{count} to {name}" for name, count in sorted(by_topic.items()))
        out.print(f"replayed {len(result.replayed)} dead letters: {where}")
    elif not result.unknown and not result.still_kept:
        out.print("nothing to replay: no pending dead letters")
    if result.still_kept:
        out.print(
            f"{result.still_kept} kept callbacks still name a number no user has: they stay "
            "kept and are taken when a user with that number is imported"
        )
    failed = False
    if result.failed_again:
        err.print(
            f"[yellow]{result.failed_again} failed again and are dead letters anew;[/] "
            "'insights dlq list' shows why"
        )
        failed = True
    if result.unknown:
        err.print(
            f"[red]error:[/] no dead letter {', '.join(result.unknown)}"
            f"{f' from {source}' if source else ''}; 'insights dlq list' shows the ids"
        )
        failed = True
    if failed:
        raise typer.Exit(1)
