"""`insights import`: import a CSV file of users from the terminal and report rejected rows."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
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
from insights.cli_options import AppOption, DataDir, embedded_settings, err, out
from insights.cli_people import check_app_id
from insights.composition.distributed import importer
from insights.composition.embedded import running


@asynccontextmanager
async def _importer(
    data_dir: Path | None, distributed: bool, owner: str
) -> AsyncIterator[ImportService]:
    if not distributed:
        async with running(embedded_settings(data_dir), import_owner=owner) as embedded:
            yield embedded.imports
        return
    async with importer(owner=owner) as imports:
        yield imports


_CHUNK = 1 << 20
_ERRORS_SHOWN = 50


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
    check_app_id(app_id)
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
