"""`insights sources add|list|remove` on a data dir: the user field is validated, shown and
kept; Braze's token is made and printed once; each change is audited as the CLI's."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insights.cli import app
from insights.composition.embedded import running
from insights.embedded import EmbeddedSettings
from insights_common.audit import AuditFilter
from insights_common.auth import SourceConfig

pytestmark = pytest.mark.unit


def run(*args: str, data_dir: Path, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output.strip()


def stored(data_dir: Path, platform: str) -> tuple[SourceConfig | None, list[tuple[str, str]]]:
    async def read() -> tuple[SourceConfig | None, list[tuple[str, str]]]:
        async with running(EmbeddedSettings(data_dir=data_dir)) as embedded:
            entries = await embedded.audit.search("acme", AuditFilter(), before_seq=None, limit=10)
            return (
                await embedded.keys.source("acme", platform),
                [(e.actor, f"{e.action} {e.detail}") for e in reversed(entries)],
            )

    return asyncio.run(read())


def test_a_user_field_is_set_listed_and_replaced_with_the_secret(tmp_path: Path) -> None:
    args = ("sources", "add", "customerio", "--app", "acme", "--secret", "cio-key")
    run(*args, "--user-field", "data.identifiers.id", data_dir=tmp_path)
    assert stored(tmp_path, "customerio")[0] == SourceConfig("cio-key", "data.identifiers.id")
    listed = run("sources", "list", "--app", "acme", data_dir=tmp_path)
    assert "data.identifiers.id" in listed and "cio-key" not in listed
    run(*args, data_dir=tmp_path)  # adding again without --user-field: the default fields
    assert stored(tmp_path, "customerio")[0] == SourceConfig("cio-key", None)
    assert "(default: data.customer_id" in run(
        "sources", "list", "--app", "acme", data_dir=tmp_path
    )
    run("sources", "remove", "customerio", "--app", "acme", data_dir=tmp_path)
    config, trail = stored(tmp_path, "customerio")
    assert config is None
    assert trail == [
        (f"cli:{getpass.getuser()}", "source.add customerio user field data.identifiers.id"),
        (f"cli:{getpass.getuser()}", "source.add customerio user field (default)"),
        (f"cli:{getpass.getuser()}", "source.remove customerio"),
    ]


def test_a_user_field_the_platform_cannot_have_is_refused_with_what_is_allowed(
    tmp_path: Path,
) -> None:
    said = run(
        "sources",
        "add",
        "braze",
        "--app",
        "acme",
        "--user-field",
        "user..alias",
        data_dir=tmp_path,
        code=2,
    )
    assert "not a user field of Braze" in said and "dotted path" in said
    said = run(
        "sources",
        "add",
        "twilio",
        "--app",
        "acme",
        "--secret",
        "t",
        "--user-field",
        "a b",
        data_dir=tmp_path,
        code=2,
    )
    assert "parameter" in said
    assert stored(tmp_path, "braze")[0] is None and stored(tmp_path, "twilio")[0] is None


def test_braze_gets_a_token_printed_once_and_removing_twice_says_so(tmp_path: Path) -> None:
    printed = run("sources", "add", "braze", "--app", "acme", data_dir=tmp_path)
    token = printed.splitlines()[0]
    config = stored(tmp_path, "braze")[0]
    assert config is not None and config.secret == token
    run("sources", "remove", "braze", "--app", "acme", data_dir=tmp_path)
    said = run("sources", "remove", "braze", "--app", "acme", data_dir=tmp_path, code=2)
    assert "takes no Braze callbacks" in said
