"""`insights keys` and `insights webhooks`: API keys and the platform's webhook secrets."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from cryptography.fernet import Fernet
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
from insights.cli_people import check_app_id, record_change
from insights.composition.distributed import app_keys
from insights.composition.embedded import running
from insights.embedded import DataDirBusy, hold_data_dir
from insights_common.access import UnknownScope, check_scopes
from insights_common.auth import (
    ApiKeyInfo,
    KeyStore,
    MissingMasterKey,
    SecretBox,
    UnreadableSecrets,
    key_id_of,
    master_keys,
    write_master_keys,
)
from insights_common.clock import utc_now

keys_app = typer.Typer(help="API keys for programs and the dashboard.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook secrets of the messaging platform.", no_args_is_help=True)


@asynccontextmanager
async def _key_store(data_dir: Path | None, distributed: bool) -> AsyncIterator[KeyStore]:
    if not distributed:
        async with running(embedded_settings(data_dir)) as embedded:
            yield embedded.keys
        return
    async with app_keys(master_key(), startup_limit=10) as keys:
        yield keys


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
    check_app_id(app_id)
    try:
        scopes = check_scopes(tuple(scope or ("admin",)))
    except UnknownScope as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    expires = utc_now() + timedelta(days=expires_in_days) if expires_in_days is not None else None

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
    check_app_id(app_id)

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
    check_app_id(app_id)

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


@keys_app.command("reseal")
def keys_reseal(data_dir: DataDir = None, distributed: Distributed = False) -> None:
    """Encrypt every stored secret again with the first key of the master key.

    To change the master key: put a new key first in INSIGHTS_MASTER_KEY, a comma, then the
    old one; restart every process; run this; then remove the old key and restart again.
    Secrets stay readable all along. The embedded mode's own key file: rotate-master-key.
    """
    try:
        counts = asyncio.run(_reseal(data_dir, distributed))
    except UnreadableSecrets as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    _resealed(counts, data_dir=data_dir, distributed=distributed)


@keys_app.command("rotate-master-key")
def keys_rotate_master_key(data_dir: DataDir = None) -> None:
    """Give the embedded mode a new master key, and encrypt every stored secret with it.

    Stop `insights dev` first (a running one knows only the old key: this refuses to run
    beside it) and start it again after.
    The new key goes first into the data dir's key file beside the old one, the secrets are
    sealed again, and only then is the old key removed, so an interrupted run loses nothing.
    """
    if os.environ.get(SecretBox.ENV, "").strip():
        err.print(
            f"[red]error:[/] the master key comes from {SecretBox.ENV}, not the data dir: put a"
            " new key (insights keys master-key) first in it, then a comma and the old one, and"
            " run `insights keys reseal`; then remove the old key"
        )
        raise typer.Exit(2)
    directory = embedded_settings(data_dir).data_dir
    path = directory / SecretBox.FILE
    if not path.exists():
        err.print(f"[red]error:[/] {path} does not exist: the embedded mode makes it at start")
        raise typer.Exit(2)
    try:
        old = master_keys(path.read_text(), source=str(path))
        held = hold_data_dir(directory)
    except MissingMasterKey as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    except DataDirBusy as error:
        err.print(f"[red]error:[/] {error}; stop `insights dev` first: it knows the old key only")
        raise typer.Exit(2) from None
    try:
        new = Fernet.generate_key()
        write_master_keys(path, [new, *old])
        try:
            counts = asyncio.run(_reseal(data_dir, distributed=False))
        except UnreadableSecrets as error:
            err.print(f"[red]error:[/] {error}; {path} keeps the new key first and the old ones")
            raise typer.Exit(1) from None
        write_master_keys(path, [new])
    finally:
        os.close(held)
    _resealed(counts, data_dir=data_dir, distributed=False)
    out.print(f"{path} holds the new key alone; start `insights dev` again")


async def _reseal(data_dir: Path | None, distributed: bool) -> dict[str, int]:
    async with _key_store(data_dir, distributed) as keys:
        return await keys.reseal_secrets()


def _resealed(counts: dict[str, int], *, data_dir: Path | None, distributed: bool) -> None:
    for app_id, count in counts.items():
        record_change(
            data_dir=data_dir,
            distributed=distributed,
            app_id=app_id,
            action="secrets.reseal",
            detail=f"{count} secret(s)",
        )
    out.print(
        f"sealed {sum(counts.values())} secret(s) of {len(counts)} app(s) again"
        " with the master key's first key"
    )


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
    check_app_id(app_id)

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
        until = (utc_now() + overlap).isoformat(timespec="seconds")
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
    check_app_id(app_id)

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
