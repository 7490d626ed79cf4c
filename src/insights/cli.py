"""The `insights` command."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.fernet import Fernet
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from import_svc.domain.model import (
    ImportMode,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    OnError,
    RowError,
)
from import_svc.service import ImportService
from insights.cli_apps import apps_app
from insights.cli_options import (
    AppOption,
    DataDir,
    Distributed,
    embedded_settings,
    err,
    master_key,
    out,
)
from insights.cli_people import audit_app, members_app, record_change
from insights.cli_sources import sources_app
from insights.cli_users import users_app
from insights.composition.embedded import build_embedded, running
from insights.embedded import create_app
from insights_common.access import UnknownScope, check_scopes
from insights_common.auth import (
    ApiKeyInfo,
    KeyStore,
    MissingMasterKey,
    key_id_of,
)
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
from insights_contracts.types import APP_ID_PATTERN

app = typer.Typer(
    name="insights",
    help="User Insights: see every notification a messaging user received and how they responded.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys for programs and the dashboard.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook secrets of the messaging platform.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
dlq_app = typer.Typer(
    help="Dead letters: events a consumer could not take, kept with why, for replay.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(sources_app, name="sources")
app.add_typer(dlq_app, name="dlq")
app.add_typer(members_app, name="members")
app.add_typer(audit_app, name="audit")
app.add_typer(apps_app, name="apps")
app.add_typer(users_app, name="users")

T = TypeVar("T")


class Service(StrEnum):
    import_ = "import"
    ingest = "ingest"
    query = "query"
    projector = "projector"


@asynccontextmanager
async def _key_store(data_dir: Path | None, distributed: bool) -> AsyncIterator[KeyStore]:
    if not distributed:
        async with running(embedded_settings(data_dir)) as embedded:
            yield embedded.keys
        return
    from insights_common.pg_auth import PostgresKeyStore  # noqa: PLC0415
    from insights_common.postgres import PostgresDatabase  # noqa: PLC0415
    from insights_common.settings import PostgresSettings  # noqa: PLC0415

    box = master_key()
    pg = PostgresSettings()
    db = await PostgresDatabase.connect(pg.dsn.get_secret_value(), schema=pg.db_schema, max_size=2)
    try:
        keys = PostgresKeyStore(db, box)
        await keys.migrate()
        yield keys
    finally:
        await db.close()


@asynccontextmanager
async def _importer(
    data_dir: Path | None, distributed: bool, owner: str
) -> AsyncIterator[ImportService]:
    if not distributed:
        async with running(embedded_settings(data_dir), import_owner=owner) as embedded:
            yield embedded.imports
        return
    from insights.composition.distributed import importer  # noqa: PLC0415 - only this path

    async with importer(owner=owner) as imports:
        yield imports


def _check_app_id(app_id: str) -> str:
    if not re.fullmatch(APP_ID_PATTERN, app_id):
        err.print(
            f"[red]error:[/] app id '{app_id}' may only hold letters, digits, '_', '-' and '.' "
            "(1-64 characters)"
        )
        raise typer.Exit(2)
    return app_id


@app.command()
def dev(
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8000]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface [default 127.0.0.1]")] = None,
    data_dir: DataDir = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load a demo app with users and messages.")
    ] = False,
) -> None:
    """Run the whole product in one process on embedded storage: the API and the dashboard."""
    import uvicorn

    from insights.demo import load_demo
    from insights.tuning import freeze_startup_objects, server_config, tune_garbage_collector
    from insights_common.http_guard import HttpSettings
    from insights_common.tracing import start_tracing

    tune_garbage_collector()
    settings = embedded_settings(data_dir, port=port, host=host)
    _check_port_free(settings.host, settings.port)
    try:
        tracer_provider = start_tracing("embedded")
    except ValueError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    embedded = build_embedded(settings, tracer_provider=tracer_provider)

    async def announce(ready: object) -> None:
        base = f"http://{settings.host}:{settings.port}"
        if demo:
            access = await load_demo(embedded, data_dir=settings.data_dir)
            key = access.key
            out.print(
                f"\n[bold green]Demo app 'demo' is ready.[/] Open the dashboard at {base} and "
                f"sign in to app 'demo' as {access.email} with the password (shown once):",
                soft_wrap=True,
            )
            out.print(access.password, soft_wrap=True, highlight=False)
            out.print("\nPrograms call the API with this key (shown once):", soft_wrap=True)
            out.print(key, soft_wrap=True, highlight=False)
            for path in ("users?q=alex", "users/alex", "users/alex/messages"):
                out.print(
                    f'  curl -H "Authorization: Bearer {key}" "{base}/api/v1/{path}"',
                    soft_wrap=True,
                    highlight=False,
                )
        out.print(
            f"\nUser Insights is serving {base} (data in {settings.data_dir.resolve()})",
            soft_wrap=True,
        )
        freeze_startup_objects()

    try:
        http = HttpSettings()
    except ValidationError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    # Absolute URLs name this address unless PUBLIC_BASE_URL gives the one users reach.
    listening = f"[{settings.host}]" if ":" in settings.host else settings.host
    origin = f"http://{listening}:{settings.port}"
    app = create_app(
        embedded, after_start=announce, http=http, origin=origin, tracer_provider=tracer_provider
    )
    server = uvicorn.Server(
        server_config(app, http, host=settings.host, port=settings.port, log_level="warning")
    )
    try:
        server.run()
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()  # sends the spans still queued


@app.command()
def serve(
    service: Annotated[Service, typer.Argument(help="Which service this process runs.")],
    port: Annotated[int | None, typer.Option(help="HTTP port [default from its settings]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface [default from its settings]")] = None,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for Kafka, OpenSearch and PostgreSQL.")
    ] = 60.0,
) -> None:
    """Run one service of the distributed mode, configured from the environment.

    import, ingest and query serve their part of the API; projector writes the events into
    OpenSearch (it serves only /healthz, /readyz and /metrics). nginx in front (deploy/nginx)
    gives the dashboard and the API one origin. Kafka, OpenSearch and PostgreSQL come from
    KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL and POSTGRES_DSN; every process needs the same
    INSIGHTS_MASTER_KEY.
    """

    from insights import logs  # noqa: PLC0415
    from insights.distributed import serve as serve_process  # noqa: PLC0415
    from insights.tuning import run  # noqa: PLC0415
    from insights_common.auth import MissingMasterKey  # noqa: PLC0415

    try:
        logs.configure(service.value, chosen=logs.log_format())
    except ValueError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    try:
        run(serve_process(service.value, host=host, port=port, startup_limit=startup_timeout))
    except (MissingMasterKey, ValidationError) as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    except RuntimeError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


def _check_port_free(host: str, port: int) -> None:
    """Fail before loading anything when the port is taken, with the way out."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            err.print(
                f"[red]error:[/] cannot listen on {host}:{port} ({exc.strerror}); "
                "stop what uses it or choose another port with --port"
            )
            raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="read, import or admin; repeat for several [default: admin]",
            show_default=False,
        ),
    ] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option("--expires-in-days", min=1, help="Refuse the key after this many days."),
    ] = None,
) -> None:
    """Print a new API key for the app. It is stored hashed and shown only this once."""
    _check_app_id(app_id)
    try:
        scopes = check_scopes(tuple(scope or ("admin",)))
    except UnknownScope as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    expires = (
        datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days is not None else None
    )

    async def create() -> str:
        async with _key_store(data_dir, distributed) as keys:
            return await keys.create_api_key(app_id, scopes=scopes, expires_at=expires)

    key = asyncio.run(create())
    record_change(
        data_dir=data_dir,
        distributed=distributed,
        app_id=app_id,
        action="key.create",
        detail=f"{key_id_of(key)} scopes {' '.join(scopes)}"
        + (f" until {expires.isoformat(timespec='seconds')}" if expires else ""),
    )
    out.print(key, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """List the app's API keys by their first characters (the keys themselves are not stored)."""
    _check_app_id(app_id)

    async def select() -> list[ApiKeyInfo]:
        async with _key_store(data_dir, distributed) as keys:
            return await keys.list_api_keys(app_id)

    keys = asyncio.run(select())
    if not keys:
        err.print(f"app '{app_id}' has no API keys; create one with 'insights keys create'")
        return
    table = Table("key", "scopes", "created at", "expires at", header_style="bold")
    for info in keys:
        expires = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
        table.add_row(f"{info.key_id}…", " ".join(info.scopes), info.created_at, expires)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key, or its first characters as listed.")],
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Revoke an API key: calls with it are refused from now on."""
    _check_app_id(app_id)

    async def revoke() -> bool:
        async with _key_store(data_dir, distributed) as keys:
            return await keys.revoke_api_key(app_id, key_id_of(key_id.rstrip("…")))

    if not asyncio.run(revoke()):
        err.print(f"[red]error:[/] app '{app_id}' has no key starting with '{key_id}'")
        raise typer.Exit(2)
    record_change(
        data_dir=data_dir,
        distributed=distributed,
        app_id=app_id,
        action="key.revoke",
        detail=key_id_of(key_id.rstrip("…")),
    )
    out.print(f"revoked {key_id_of(key_id)}…")


@keys_app.command("master-key")
def keys_master_key() -> None:
    """Print a new master key for INSIGHTS_MASTER_KEY (encrypts webhook secrets at rest)."""
    out.print(Fernet.generate_key().decode(), highlight=False, soft_wrap=True)


_DURATION = re.compile(r"^([0-9]{1,4})([mhd])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_OVERLAP = timedelta(days=7)


def _overlap(text: str) -> timedelta:
    """'30m', '2h', '24h', '7d', or '0' for none."""
    match = _DURATION.match(text.strip())
    if text.strip() == "0":
        return timedelta(0)
    if match is None:
        raise typer.BadParameter(f"'{text}' is not a duration; use e.g. 30m, 2h, 24h, 7d or 0.")
    overlap = timedelta(**{_DURATION_UNITS[match[2]]: int(match[1])})
    if overlap > MAX_OVERLAP:
        raise typer.BadParameter(f"'{text}' is longer than the longest overlap, 7d.")
    return overlap


@webhooks_app.command("secret")
def webhooks_secret(
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate", help="Replace the secret; the old one keeps signing for --overlap."
        ),
    ] = False,
    overlap: Annotated[
        timedelta,
        typer.Option(
            "--overlap",
            parser=_overlap,
            metavar="DURATION",
            help="With --rotate: how long the old secret still signs (30m, 2h, 24h, 7d, 0).",
        ),
    ] = "24h",  # type: ignore[assignment]  # typer parses the default with `parser`
) -> None:
    """Print the app's webhook signing secret, creating it the first time (or --rotate it)."""
    _check_app_id(app_id)

    async def secret() -> tuple[str, bool, bool]:
        """The secret, whether it replaced one, and whether it is new."""
        async with _key_store(data_dir, distributed) as keys:
            current = await keys.webhook_secret(app_id)
            if current is not None and not rotate:
                return current, False, False
            made = await keys.rotate_webhook_secret(app_id, overlap=overlap)
            return made, current is not None, True

    new, replaced, made = asyncio.run(secret())
    if made:
        record_change(
            data_dir=data_dir,
            distributed=distributed,
            app_id=app_id,
            action="webhook_secret.rotate" if replaced else "webhook_secret.create",
            detail=f"overlap {overlap}" if replaced else "",
        )
    out.print(new, highlight=False, soft_wrap=True)
    if replaced:
        until = (datetime.now(UTC) + overlap).isoformat(timespec="seconds")
        err.print(
            f"the previous secret still signs until {until}"
            if overlap
            else "the previous secret no longer signs"
        )


@webhooks_app.command("require-timestamp")
def webhooks_require_timestamp(
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
    off: Annotated[
        bool, typer.Option("--off", help="Take the older sha256= form from the app again.")
    ] = False,
) -> None:
    """Take only timestamped signatures (t=...,v1=...) from the app's webhooks (or --off)."""
    _check_app_id(app_id)

    async def switch() -> bool:
        async with _key_store(data_dir, distributed) as keys:
            return await keys.require_webhook_timestamp(app_id, required=not off)

    if not asyncio.run(switch()):
        err.print(
            f"[red]error:[/] app '{app_id}' has no webhook secret; create one with "
            f"'insights webhooks secret --app {app_id}'"
        )
        raise typer.Exit(2)
    record_change(
        data_dir=data_dir,
        distributed=distributed,
        app_id=app_id,
        action="webhook_secret.require_timestamp",
        detail="off" if off else "on",
    )
    if off:
        out.print(f"app '{app_id}' takes both signature forms: t=...,v1=... and sha256=...")
    else:
        out.print(f"app '{app_id}' takes only timestamped signatures: t=...,v1=...")


_CHUNK = 1 << 20
_ERRORS_SHOWN = 50


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="The CSV file: user_id, phone_number[, nickname]")],
    app_id: AppOption,
    mode: Annotated[ImportMode, typer.Option(help="What to do with known users.")] = (
        ImportMode.UPSERT
    ),
    on_error: Annotated[
        OnError, typer.Option(help="skip_rows keeps the good rows; reject_file takes none.")
    ] = OnError.SKIP_ROWS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count; change nothing.")
    ] = False,
    data_dir: DataDir = None,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Import into the distributed deployment (POSTGRES_*, KAFKA_* settings) instead "
            "of the data dir.",
        ),
    ] = False,
) -> None:
    """Import users from a CSV file, with the same rules and report as the API.

    Exit code 0: every row was taken; 1: some rows were rejected; 2: the file was rejected.
    """
    _check_app_id(app_id)
    if not file.is_file():
        err.print(f"[red]error:[/] {file} is not a file")
        raise typer.Exit(2)
    size = file.stat().st_size
    from insights.tuning import tune_garbage_collector  # noqa: PLC0415

    tune_garbage_collector()  # an import builds an event per row

    def chunks() -> Iterator[bytes]:
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    async def run() -> tuple[ImportRecord, list[RowError]]:
        options = ImportOptions(mode=mode, on_error=on_error, dry_run=dry_run)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task(f"Importing {file.name}", total=1.0)

            def show(record: ImportRecord) -> None:
                progress.update(
                    task, completed=record.progress, description=f"{record.status} {file.name}"
                )

            # An owner of its own: a server on the same data dir must not resume this import.
            owner = f"{socket.gethostname()}-cli-{os.getpid()}"
            async with _importer(data_dir, distributed, owner) as imports:
                record = await imports.run_import(
                    app_id=app_id,
                    filename=file.name,
                    chunks=chunks(),
                    options=options,
                    on_progress=show,
                    size_hint=size,
                )
                page = await imports.row_errors(app_id, record.id, after=0, limit=_ERRORS_SHOWN)
        return record, page[0] if page else []

    record, errors = asyncio.run(run())
    _print_import_report(record, errors)
    if record.status in (ImportStatus.REJECTED, ImportStatus.FAILED):
        raise typer.Exit(2)
    if record.counts.rejected:
        raise typer.Exit(1)


def _print_import_report(record: ImportRecord, errors: list[RowError]) -> None:
    counts = record.counts
    colour = {"completed": "green", "rejected": "red", "failed": "red"}.get(record.status, "yellow")
    dry = " (dry run: nothing was changed)" if record.options.dry_run else ""
    status = f"[{colour}]{record.status}[/]"
    out.print(f"Import [bold]{record.id}[/] of {record.filename}: {status}{dry}")
    summary = Table(show_header=True, header_style="bold")
    for column in ("rows", "created", "updated", "unchanged", "rejected"):
        summary.add_column(column, justify="right")
    summary.add_row(
        *map(
            str,
            (counts.total_rows, counts.created, counts.updated, counts.unchanged, counts.rejected),
        )
    )
    out.print(summary)
    for issue in record.errors:
        where = f"line {issue.line}: " if issue.line else ""
        out.print(f"[red]file rejected:[/] {where}{issue.message}")
    for issue in record.warnings:
        out.print(f"[yellow]warning:[/] {issue.message}")
    if errors:
        table = Table(title="Rejected rows", show_header=True, header_style="bold")
        for column in ("line", "user_id", "column", "problem"):
            table.add_column(column)
        for error in errors:
            table.add_row(str(error.line), error.user_id or "", error.column or "", error.message)
        out.print(table)
        if counts.rejected > len(errors):
            out.print(
                f"... and {counts.rejected - len(errors)} more: "
                f"GET /api/v1/imports/{record.id}/errors?format=csv"
            )


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
    from insights_common.kafka_dlq import KafkaDeadLetters  # noqa: PLC0415
    from insights_common.settings import KafkaSettings  # noqa: PLC0415

    kafka = KafkaSettings()
    letters = KafkaDeadLetters(
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=kafka.topic_prefix,
        client_id="insights-cli",
    )
    if topic not in (None, KEPT_CALLBACKS):
        yield letters
        return
    from insights.composition.distributed import kept_callbacks  # noqa: PLC0415 - only this path

    async with kept_callbacks() as kept:
        yield CombinedDeadLetters(letters, kept)


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

    from insights_common.kafka_dlq import DeadLetterError  # noqa: PLC0415

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


def main() -> None:
    app()
