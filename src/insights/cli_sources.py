"""`insights sources ...`: the messaging platforms whose own callbacks an app takes, set up
through the same use case as the dashboard's Sources page (`insights_common.sources`)."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    master_key,
    out,
)
from insights.cli_people import check_app_id
from insights.composition.distributed import app_sources
from insights.composition.embedded import running
from insights_common.sources import (
    BY_NAME,
    PLATFORMS,
    Actor,
    Added,
    SourceError,
    Sources,
    SourceState,
    callback_url,
)

sources_app = typer.Typer(
    help="Messaging platforms whose own callbacks the app takes (docs/sources.md).",
    no_args_is_help=True,
)

SourcePlatform = StrEnum(  # type: ignore[misc]  # the platforms of insights_common.sources
    "SourcePlatform", {platform.name: platform.name for platform in PLATFORMS}
)


@asynccontextmanager
async def _sources(data_dir: Path | None, distributed: bool) -> AsyncIterator[Sources]:
    if not distributed:
        async with running(embedded_settings(data_dir)) as embedded:
            yield Sources(embedded.keys, embedded.audit)
        return
    async with app_sources(master_key(), startup_limit=10) as (keys, audit):
        yield Sources(keys, audit)


def _actor() -> Actor:
    return Actor(f"cli:{getpass.getuser()}")


def _fail(error: SourceError) -> typer.Exit:
    err.print(f"[red]error:[/] {error}")
    return typer.Exit(2)


@sources_app.command("add")
def sources_add(
    platform: Annotated[SourcePlatform, typer.Argument(help="The platform sending callbacks.")],
    app_id: AppOption,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            "--auth-token",
            help="What the platform signs with: "
            + "; ".join(f"{p.name}: {p.asks}" for p in PLATFORMS)
            + ". Asked for, unechoed, when omitted.",
            show_default=False,
        ),
    ] = None,
    user_field: Annotated[
        str | None,
        typer.Option(
            "--user-field",
            metavar="PATH",
            help="Which field of the callbacks carries the user id, over the platform's default"
            " fields when present: a dotted path into the JSON (e.g. data.identifiers.id,"
            " user.user_alias.alias_name); for Twilio a parameter name of the form or of the"
            " StatusCallback URL's query. Omitted: the default fields.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Take the platform's callbacks for the app at /api/v1/sources/PLATFORM/APP (or replace
    its secret and user field); the secret is kept encrypted like webhook secrets."""
    check_app_id(app_id)
    chosen = BY_NAME[platform.value]
    if not secret and not chosen.token_made_here:
        secret = typer.prompt(f"{chosen.name}: {chosen.asks}", hide_input=True)

    async def add() -> Added:
        async with _sources(data_dir, distributed) as sources:
            return await sources.add(
                app_id,
                chosen.name,
                secret=secret or None,
                user_field_text=user_field,
                actor=_actor(),
            )

    try:
        added = asyncio.run(add())
    except SourceError as error:
        raise _fail(error) from None
    if added.made_token:
        out.print(added.made_token, highlight=False, soft_wrap=True)
        err.print("give this bearer token to the Braze Current (Current Details)")
    err.print(
        f"app '{app_id}' takes {chosen.name} callbacks at"
        f" <public URL>{callback_url(chosen.name, app_id, None)}, the user read from"
        f" {added.user_field or chosen.user_field_default}"
    )


@sources_app.command("list")
def sources_list(
    app_id: AppOption, data_dir: DataDir = None, distributed: Distributed = False
) -> None:
    """List the platforms the app takes callbacks from (their secrets are not shown)."""
    check_app_id(app_id)

    async def select() -> list[SourceState]:
        async with _sources(data_dir, distributed) as sources:
            return await sources.list(app_id)

    configured = [state for state in asyncio.run(select()) if state.configured_at]
    if not configured:
        err.print(
            f"app '{app_id}' takes no platform's callbacks; add one with 'insights sources add'"
        )
        return
    table = Table("platform", "path", "user field", "secret set at", header_style="bold")
    for state in configured:
        table.add_row(
            state.platform.name,
            callback_url(state.platform.name, app_id, None),
            state.user_field or f"(default: {state.platform.user_field_default})",
            state.configured_at,
        )
    out.print(table)


@sources_app.command("remove")
def sources_remove(
    platform: Annotated[SourcePlatform, typer.Argument(help="The platform.")],
    app_id: AppOption,
    data_dir: DataDir = None,
    distributed: Distributed = False,
) -> None:
    """Stop taking the platform's callbacks for the app: they are refused (401) from now on."""
    check_app_id(app_id)

    async def remove() -> None:
        async with _sources(data_dir, distributed) as sources:
            await sources.remove(app_id, platform.value, actor=_actor())

    try:
        asyncio.run(remove())
    except SourceError as error:
        raise _fail(error) from None
    out.print(f"app '{app_id}' no longer takes {platform.value} callbacks")
