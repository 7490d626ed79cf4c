"""The options and consoles every `insights` command group shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
