"""`insights members ...` and `insights audit ...`: the people of an app and what they did."""

from __future__ import annotations

import asyncio
import getpass
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from insights.cli_options import (
    AppOption,
    DataDir,
    Distributed,
    embedded_settings,
    err,
    out,
)
from insights.composition.distributed import app_members
from insights.composition.embedded import running
from insights_common.accounts import AccountError, Accounts
from insights_common.audit import AuditEntry, AuditLog, Verification, verify
from insights_common.clock import utc_now
from insights_contracts.types import APP_ID_PATTERN

members_app = typer.Typer(
    help="Members of an app (people, by email) and their roles.", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit trail: who viewed whose history.", no_args_is_help=True)


Email = Annotated[str, typer.Option("--email", help="The member's email address.")]


class Role(StrEnum):
    admin = "admin"
    agent = "agent"
    analyst = "analyst"


RoleOption = Annotated[Role, typer.Option("--role", help="admin, agent or analyst.")]


@dataclass
class People:
    accounts: Accounts
    audit: AuditLog


def check_app_id(app_id: str) -> str:
    if not re.fullmatch(APP_ID_PATTERN, app_id):
        err.print(
            f"[red]error:[/] app id '{app_id}' may only hold letters, digits, '_', '-' and '.' "
            "(1-64 characters)"
        )
        raise typer.Exit(2)
    return app_id


@asynccontextmanager
async def _people(data_dir: Path | None, distributed: bool) -> AsyncIterator[People]:
    if not distributed:
        async with running(embedded_settings(data_dir)) as embedded:
            yield People(Accounts(embedded.members), embedded.audit)
        return
    async with app_members(startup_limit=10) as (members, audit):
        yield People(Accounts(members), audit)


def cli_entry(app_id: str, action: str, detail: str) -> AuditEntry:
    """What a command changed, as done by the operating-system user who ran it."""
    return AuditEntry(
        at=utc_now(),
        app_id=app_id,
        actor=f"cli:{getpass.getuser()}",
        action=action,
        detail=detail,
    )


async def _record(people: People, app_id: str, action: str, detail: str) -> None:
    await people.audit.append(cli_entry(app_id, action, detail))


def record_change(
    *, data_dir: Path | None, distributed: bool, app_id: str, action: str, detail: str
) -> None:
    """Record in the app's audit trail a change another command made (keys, secrets)."""

    async def record() -> None:
        async with _people(data_dir, distributed) as people:
            await _record(people, app_id, action, detail)

    asyncio.run(record())


def _fail(error: AccountError) -> typer.Exit:
    err.print(f"[red]error:[/] {error}")
    return typer.Exit(2)


@members_app.command("add")
def members_add(
    app_id: AppOption,
    email: Email,
    role: RoleOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Make a person a member of the app; prints the password of their first sign-in last."""
    check_app_id(app_id)

    async def add() -> str:
        async with _people(data_dir, distributed) as people:
            password = await people.accounts.add(app_id, email, role.value)
            await _record(people, app_id, "member.add", f"{email.lower()} as {role.value}")
            return password

    try:
        password = asyncio.run(add())
    except AccountError as error:
        raise _fail(error) from None
    out.print(
        f"{email.strip().lower()} is now {role.value} of app '{app_id}'; the password of the "
        f"first sign-in is shown only this once: {password}",
        highlight=False,
        soft_wrap=True,
    )


@members_app.command("list")
def members_list(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """List the app's members and their roles."""
    check_app_id(app_id)

    async def select() -> list[tuple[str, str, str]]:
        async with _people(data_dir, distributed) as people:
            return [
                (m.email, m.role, m.created_at.isoformat(timespec="seconds"))
                for m in await people.accounts.list(app_id)
            ]

    rows = asyncio.run(select())
    if not rows:
        err.print(f"app '{app_id}' has no members; add one with 'insights members add'")
        return
    table = Table("email", "role", "member since", header_style="bold")
    for row in rows:
        table.add_row(*row)
    out.print(table)


@members_app.command("remove")
def members_remove(
    app_id: AppOption, email: Email, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """Remove a member from the app; their sessions end at once."""
    check_app_id(app_id)

    async def remove() -> None:
        async with _people(data_dir, distributed) as people:
            await people.accounts.remove(app_id, email)
            await _record(people, app_id, "member.remove", email.lower())

    try:
        asyncio.run(remove())
    except AccountError as error:
        raise _fail(error) from None
    out.print(f"removed {email.lower()} from app '{app_id}'")


@members_app.command("set-role")
def members_set_role(
    app_id: AppOption,
    email: Email,
    role: RoleOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Change a member's role; it applies to their next request."""
    check_app_id(app_id)

    async def change() -> None:
        async with _people(data_dir, distributed) as people:
            await people.accounts.set_role(app_id, email, role.value)
            await _record(people, app_id, "member.set_role", f"{email.lower()} to {role.value}")

    try:
        asyncio.run(change())
    except AccountError as error:
        raise _fail(error) from None
    out.print(f"{email.lower()} is now {role.value} of app '{app_id}'")


@members_app.command("reset-password")
def members_reset_password(
    app_id: AppOption, email: Email, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """Give a member a new password (printed last) and end their sessions."""
    check_app_id(app_id)

    async def reset() -> str:
        async with _people(data_dir, distributed) as people:
            password = await people.accounts.reset_password(app_id, email)
            await _record(people, app_id, "member.reset_password", email.lower())
            return password

    try:
        password = asyncio.run(reset())
    except AccountError as error:
        raise _fail(error) from None
    out.print(f"new password of {email.lower()}: {password}", highlight=False, soft_wrap=True)


@audit_app.command("verify")
def audit_verify(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """Check the app's audit trail: exit 1 when an entry was changed, inserted or removed."""
    check_app_id(app_id)

    async def check() -> Verification:
        async with _people(data_dir, distributed) as people:
            return await verify(people.audit, app_id)

    result = asyncio.run(check())
    if result.intact:
        out.print(f"the audit trail of app '{app_id}' is intact: {result.entries} entries")
        return
    err.print(
        f"[red]the audit trail of app '{app_id}' was tampered with:[/] "
        f"{result.problem}; the {result.entries} entries before it are intact"
    )
    raise typer.Exit(1)


@audit_app.command("ship")
def audit_ship(
    distributed: Distributed = False,
    spool_dir: Annotated[
        Path | None,
        typer.Option(
            "--spool-dir",
            help="The query processes' spool directory [default: AUDIT_SPOOL_DIR, or the one "
            "they use by default on this machine]",
            show_default=False,
        ),
    ] = None,
    parent: Annotated[
        int | None,
        typer.Option(
            "--parent", help="End (after a last pass) when this process ends.", hidden=True
        ),
    ] = None,
) -> None:
    """Take the entries the query processes spooled into the audit trail's store, until stopped.

    Each query process of the distributed mode runs one beside itself; run it yourself to ship a
    spool whose processes are gone. One shipper works on a directory at a time: another waits.
    """
    from insights import logs  # noqa: PLC0415
    from insights.audit_shipper import ship  # noqa: PLC0415

    if not distributed:
        err.print(
            "[red]error:[/] the embedded mode ships its spool in its own process; "
            "`insights audit ship` takes --distributed"
        )
        raise typer.Exit(2)
    logs.configure("audit-shipper", chosen=logs.log_format())
    asyncio.run(ship(spool_dir, parent=parent))
