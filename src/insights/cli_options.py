"""The options and consoles every `insights` command group shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from insights.embedded import EmbeddedSettings

if TYPE_CHECKING:
    from insights_common.auth import SecretBox

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


def embedded_settings(data_dir: Path | None, **overrides: object) -> EmbeddedSettings:
    """The embedded mode's settings from the environment, with the options given on the line."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return EmbeddedSettings().model_copy(update=changes)


def master_key() -> SecretBox:
    """The distributed mode's master key (INSIGHTS_MASTER_KEY), or exit 2 saying what is wrong."""
    from insights_common.auth import MissingMasterKey, SecretBox  # noqa: PLC0415

    try:
        return SecretBox.from_env()
    except MissingMasterKey as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
