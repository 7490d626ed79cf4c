"""The `insights` command."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography.fernet import Fernet
from rich.console import Console
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
from insights.embedded import EmbeddedSettings, create_app, running, wire
from insights_common.auth import ApiKeyInfo, KeyStore, MissingMasterKey, SecretBox, key_id_of
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
app.add_typer(webhooks_app, name="webhooks")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the embedded mode keeps its data [env INSIGHTS_DATA_DIR; default ./.insights]",
        show_default=False,
    ),
]
AppOption = Annotated[str, typer.Option("--app", help="The app (tenant) id.")]
Distributed = Annotated[
    bool,
    typer.Option(
        "--distributed",
        help="Use the distributed mode's PostgreSQL (POSTGRES_DSN, POSTGRES_SCHEMA) and "
        "INSIGHTS_MASTER_KEY instead of the data dir.",
    ),
]


class Service(StrEnum):
    import_ = "import"
    ingest = "ingest"
    query = "query"
    projector = "projector"
    gateway = "gateway"


@asynccontextmanager
async def _key_store(data_dir: Path | None, distributed: bool) -> AsyncIterator[KeyStore]:
    if not distributed:
        async with running(_settings(data_dir)) as embedded:
            yield embedded.keys
        return
    from insights_common.pg_auth import PostgresKeyStore  # noqa: PLC0415
    from insights_common.postgres import PostgresDatabase  # noqa: PLC0415
    from insights_common.settings import PostgresSettings  # noqa: PLC0415

    try:
        box = SecretBox.from_env()
    except MissingMasterKey as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    pg = PostgresSettings()
    db = await PostgresDatabase.connect(pg.dsn.get_secret_value(), schema=pg.db_schema, max_size=2)
    try:
        keys = PostgresKeyStore(db, box)
        await keys.migrate()
        yield keys
    finally:
        await db.close()


def _settings(data_dir: Path | None, **overrides: object) -> EmbeddedSettings:
    settings = EmbeddedSettings()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return settings.model_copy(update=changes)


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

    settings = _settings(data_dir, port=port, host=host)
    _check_port_free(settings.host, settings.port)
    embedded = wire(settings)

    async def announce(ready: object) -> None:
        base = f"http://{settings.host}:{settings.port}"
        if demo:
            key = await load_demo(embedded, data_dir=settings.data_dir)
            out.print("\n[bold green]Demo app 'demo' is ready.[/] API key (shown once):")
            out.print(key, soft_wrap=True, highlight=False)
            out.print("\nTry:", soft_wrap=True)
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

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(embedded, after_start=announce),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    )
    server.run()


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
    OpenSearch (it serves only /healthz, /readyz and /metrics); gateway gives the dashboard and
    the API one origin. Kafka, OpenSearch and PostgreSQL come from KAFKA_BOOTSTRAP_SERVERS,
    OPENSEARCH_URL and POSTGRES_DSN; every process needs the same INSIGHTS_MASTER_KEY.
    """
    import logging  # noqa: PLC0415

    from insights.distributed import serve as serve_process  # noqa: PLC0415
    from insights_common.auth import MissingMasterKey  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # opensearch-py logs every request at INFO, the readiness probes included.
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    try:
        asyncio.run(
            serve_process(service.value, host=host, port=port, startup_limit=startup_timeout)
        )
    except MissingMasterKey as error:
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
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """Print a new API key for the app. It is stored hashed and shown only this once."""
    _check_app_id(app_id)

    async def create() -> str:
        async with _key_store(data_dir, distributed) as keys:
            return await keys.create_api_key(app_id)

    out.print(asyncio.run(create()), highlight=False, soft_wrap=True)


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
    table = Table("key", "created at", header_style="bold")
    for info in keys:
        table.add_row(f"{info.key_id}…", info.created_at)
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
    out.print(f"revoked {key_id_of(key_id)}…")


@keys_app.command("master-key")
def keys_master_key() -> None:
    """Print a new master key for INSIGHTS_MASTER_KEY (encrypts webhook secrets at rest)."""
    out.print(Fernet.generate_key().decode(), highlight=False, soft_wrap=True)


@webhooks_app.command("secret")
def webhooks_secret(
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace the secret; the old one stops working.")
    ] = False,
) -> None:
    """Print the app's webhook signing secret, creating it the first time (or --rotate it)."""
    _check_app_id(app_id)

    async def secret() -> str:
        async with _key_store(data_dir, distributed) as keys:
            current = None if rotate else await keys.webhook_secret(app_id)
            return current or await keys.rotate_webhook_secret(app_id)

    out.print(asyncio.run(secret()), highlight=False, soft_wrap=True)


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
) -> None:
    """Import users from a CSV file, with the same rules and report as the API.

    Exit code 0: every row was taken; 1: some rows were rejected; 2: the file was rejected.
    """
    _check_app_id(app_id)
    if not file.is_file():
        err.print(f"[red]error:[/] {file} is not a file")
        raise typer.Exit(2)
    size = file.stat().st_size

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

            async with running(_settings(data_dir)) as embedded:
                record = await embedded.imports.run_import(
                    app_id=app_id,
                    filename=file.name,
                    chunks=chunks(),
                    options=options,
                    on_progress=show,
                    size_hint=size,
                )
                page = await embedded.imports.row_errors(
                    app_id, record.id, after=0, limit=_ERRORS_SHOWN
                )
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


def main() -> None:
    app()
