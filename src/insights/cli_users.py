"""`insights users erase`: erase a user of an app everywhere, from the terminal."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from insights.cli_options import AppOption, DataDir, Distributed, embedded_settings, err, out
from insights.cli_people import check_app_id, cli_entry
from insights.composition.embedded import running
from insights_common.audit import AuditLog
from insights_common.bus import AtOnce
from insights_contracts.types import USER_ID_PATTERN
from insights_query.erasure import ERASE_ACTION, Erased, UserEraser
from insights_query.settings import QuerySettings

users_app = typer.Typer(help="Erase a user of an app everywhere.", no_args_is_help=True)

UserIdOption = Annotated[str, typer.Option("--user-id", help="The user to erase.")]


@dataclass
class Erasing:
    eraser: UserEraser
    audit: AuditLog


@asynccontextmanager
async def _erasing(data_dir: Path | None, distributed: bool) -> AsyncIterator[Erasing]:
    wait = QuerySettings().erase_wait_seconds
    if not distributed:
        # An owner of its own: the server's unfinished imports are not this process's to resume.
        owner = f"cli-erase-{os.getpid()}"
        async with running(embedded_settings(data_dir), import_owner=owner) as embedded:
            # The data dir's bus: its projector, import registry and phone directory all take
            # the erase before publish returns.
            eraser = UserEraser(publisher=embedded.bus, watermark=AtOnce(), wait_seconds=wait)
            yield Erasing(eraser, embedded.audit)
        return
    # Only this path needs Kafka and PostgreSQL.
    from insights.connections import kafka_bus, patiently, postgres  # noqa: PLC0415
    from insights_common.kafka.watermark import KafkaProjectionWatermark  # noqa: PLC0415
    from insights_common.postgres.audit import PostgresAuditLog  # noqa: PLC0415

    query = QuerySettings()
    async with AsyncExitStack() as stack:
        db = await postgres(query.postgres, stack, limit=10)
        audit = PostgresAuditLog(db)
        await audit.migrate()
        bus = kafka_bus(query.kafka, client_id="insights-erase-cli")
        await patiently("Kafka", bus.start, limit=10)
        stack.push_async_callback(bus.stop)
        watermark = KafkaProjectionWatermark(bus, group_id=query.kafka.projector_group)
        stack.push_async_callback(watermark.stop)
        eraser = UserEraser(publisher=bus, watermark=watermark, wait_seconds=wait)
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
            entry = replace(cli_entry(app_id, ERASE_ACTION, ""), user_id=user_id, detail=None)
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
