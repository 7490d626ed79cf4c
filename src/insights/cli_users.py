"""`insights users erase`: erase a user of an app everywhere, from the terminal."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from insights.cli_options import AppOption, DataDir, Distributed, embedded_settings, err, out
from insights.cli_people import check_app_id, cli_entry
from insights.composition.distributed import user_eraser
from insights.composition.embedded import running
from insights_common.audit import AuditLog
from insights_contracts.types import USER_ID_PATTERN
from insights_query.erasure import ERASE_ACTION, Erased, UserEraser

users_app = typer.Typer(help="Erase a user of an app everywhere.", no_args_is_help=True)

UserIdOption = Annotated[str, typer.Option("--user-id", help="The user to erase.")]


@dataclass
class Erasing:
    eraser: UserEraser
    audit: AuditLog


@asynccontextmanager
async def _erasing(data_dir: Path | None, distributed: bool) -> AsyncIterator[Erasing]:
    if not distributed:
        # An owner of its own: the server's unfinished imports are not this process's to resume.
        owner = f"cli-erase-{os.getpid()}"
        async with running(embedded_settings(data_dir), import_owner=owner) as embedded:
            yield Erasing(embedded.eraser, embedded.audit)
        return
    async with user_eraser(startup_limit=10) as (eraser, audit):
        yield Erasing(eraser, audit)


@users_app.command("erase")
def erase(
    app_id: AppOption,
    user_id: UserIdOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Erase the user: profile, messages, import reports and registry, kept callbacks. Events
    about them dated before now are dropped; a later import makes them a new user. Recorded in
    the audit trail as `user.erase` (the user_id only)."""
    check_app_id(app_id)
    if not re.fullmatch(USER_ID_PATTERN, user_id):
        err.print(f"[red]error:[/] '{user_id}' is not a user id (1-80 of A-Z a-z 0-9 _ - .)")
        raise typer.Exit(2)

    async def run() -> Erased:
        async with _erasing(data_dir, distributed) as erasing:
            erased = await erasing.eraser.erase(app_id, user_id)
            entry = cli_entry(app_id, ERASE_ACTION, "")._replace(user_id=user_id, detail=None)
            await erasing.audit.append(entry)
            return erased

    erased = asyncio.run(run())
    at = erased.erased_at.isoformat(timespec="seconds")
    if erased.complete:
        out.print(f"erased user '{user_id}' of app '{app_id}' (at {at})")
    else:
        out.print(
            f"erase of user '{user_id}' of app '{app_id}' published (at {at}); the projection "
            "has not taken it yet and will"
        )
