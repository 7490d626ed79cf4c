"""`insights apps ...`: an app's settings, such as how long it keeps its messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from insights.cli_options import (
    AppOption,
    DataDir,
    Distributed,
    embedded_settings,
    err,
    out,
)
from insights.cli_people import check_app_id, cli_entry
from insights.composition.distributed import retention_passes
from insights.composition.embedded import running
from insights_common.audit import AuditLog
from insights_common.clock import utc_now
from insights_common.retention import MAX_DAYS, MIN_DAYS, InvalidRetention, check_days
from insights_query.domain.retention import PassResult
from insights_query.entrypoints.settings_http import RETENTION_SET, describe
from insights_query.retention import RetentionService

apps_app = typer.Typer(
    help="An app's settings: how long it keeps its messages.", no_args_is_help=True
)

Days = Annotated[
    int | None,
    typer.Option(
        "--days",
        help=f"Remove messages sent more than this many days ago ({MIN_DAYS} to {MAX_DAYS}).",
        show_default=False,
    ),
]
Off = Annotated[bool, typer.Option("--off", help="Keep every message again.")]
NoApply = Annotated[
    bool,
    typer.Option(
        "--no-apply",
        help="Only save the setting; the service's next pass (hourly) removes the messages.",
    ),
]


@dataclass
class Settings:
    retention: RetentionService
    audit: AuditLog


@asynccontextmanager
async def _settings(data_dir: Path | None, distributed: bool) -> AsyncIterator[Settings]:
    if not distributed:
        async with running(embedded_settings(data_dir)) as embedded:
            yield Settings(embedded.retention, embedded.audit)
        return
    async with retention_passes(startup_limit=10) as (passes, audit):
        yield Settings(passes, audit)


def _said(result: PassResult | None, app_id: str) -> str:
    if result is None:
        return (
            f"another process is running a retention pass; app '{app_id}' is in it "
            "(or in the next one)"
        )
    return (
        f"removed {result.messages} message(s) of app '{app_id}' sent before "
        f"{result.before.isoformat(timespec='seconds')} ({result.users} user(s) recounted, "
        f"{result.chunks} chunk(s), {result.seconds:.1f} s)"
    )


@apps_app.command("set-retention")
def set_retention(
    app_id: AppOption,
    days: Days = None,
    off: Off = False,
    no_apply: NoApply = False,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Remove the app's messages sent more than --days ago, now (unless --no-apply) and on
    every pass of the service; --off keeps every message again."""
    check_app_id(app_id)
    if (days is None) == (not off):
        err.print("[red]error:[/] give either --days N or --off")
        raise typer.Exit(2)
    if days is not None:
        try:
            check_days(days)
        except InvalidRetention as error:
            err.print(f"[red]error:[/] {error} (--off)")
            raise typer.Exit(2) from None

    async def change() -> PassResult | None:
        async with _settings(data_dir, distributed) as settings:
            await settings.retention.settings.set(app_id, days, now=utc_now())
            await settings.audit.append(cli_entry(app_id, RETENTION_SET, describe(days)))
            if days is None or no_apply:
                return None
            return await settings.retention.apply(app_id)

    result = asyncio.run(change())
    if days is None:
        out.print(f"app '{app_id}' keeps every message")
        return
    out.print(f"app '{app_id}' keeps messages {days} day(s)")
    if not no_apply:
        out.print(_said(result, app_id))


@apps_app.command("show-retention")
def show_retention(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """How long the app keeps its messages."""
    check_app_id(app_id)

    async def read() -> tuple[int, datetime] | None:
        async with _settings(data_dir, distributed) as settings:
            setting = await settings.retention.settings.get(app_id)
            return (setting.days, setting.updated_at) if setting else None

    found = asyncio.run(read())
    if found is None:
        out.print(f"app '{app_id}' keeps every message (no retention set)")
        return
    days, since = found
    out.print(
        f"app '{app_id}' removes messages sent more than {days} day(s) ago "
        f"(set {since.isoformat(timespec='seconds')})"
    )


@apps_app.command("apply-retention")
def apply_retention(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """Run a retention pass over the app now, in chunks, and say what it removed."""
    check_app_id(app_id)

    async def apply() -> tuple[bool, PassResult | None]:
        async with _settings(data_dir, distributed) as settings:
            if await settings.retention.settings.get(app_id) is None:
                return False, None
            return True, await settings.retention.apply(app_id)

    has_setting, result = asyncio.run(apply())
    if not has_setting:
        err.print(
            f"[red]error:[/] app '{app_id}' keeps every message; set a retention first with "
            f"'insights apps set-retention --app {app_id} --days N'"
        )
        raise typer.Exit(2)
    out.print(_said(result, app_id))
