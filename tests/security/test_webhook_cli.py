"""`insights webhooks secret --rotate --overlap` and `insights webhooks require-timestamp` on a
data dir, read back through the key store the server uses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insights.cli import app
from insights.composition.embedded import running
from insights.embedded import EmbeddedSettings
from insights_common.auth import WebhookSigning

pytestmark = pytest.mark.unit


def run(*args: str, data_dir: Path, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == code, result.output
    return result.output.strip()


def signing(data_dir: Path, at: datetime) -> WebhookSigning:
    async def read() -> WebhookSigning | None:
        async with running(EmbeddedSettings(data_dir=data_dir)) as embedded:
            return await embedded.keys.webhook_signing("acme", now=at)

    found = asyncio.run(read())
    assert found is not None
    return found


def test_rotate_keeps_the_old_secret_for_24_hours_by_default(tmp_path: Path) -> None:
    first = run("webhooks", "secret", "--app", "acme", data_dir=tmp_path)
    assert run("webhooks", "secret", "--app", "acme", data_dir=tmp_path) == first
    rotated_at = datetime.now(UTC)
    second = run("webhooks", "secret", "--app", "acme", "--rotate", data_dir=tmp_path)
    second = second.splitlines()[0]  # the note on stderr follows when the runner mixes them
    assert second.startswith("whsec_") and second != first
    assert signing(tmp_path, rotated_at + timedelta(hours=23)).secrets == (second, first)
    assert signing(tmp_path, rotated_at + timedelta(hours=24, minutes=1)).secrets == (second,)


@pytest.mark.parametrize(
    ("overlap", "kept_for"), [("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2))]
)
def test_the_overlap_is_chosen_with_a_unit(
    tmp_path: Path, overlap: str, kept_for: timedelta
) -> None:
    first = run("webhooks", "secret", "--app", "acme", data_dir=tmp_path)
    rotated_at = datetime.now(UTC)
    args = ("webhooks", "secret", "--app", "acme", "--rotate", "--overlap", overlap)
    second = run(*args, data_dir=tmp_path).splitlines()[0]
    assert signing(tmp_path, rotated_at + kept_for - timedelta(minutes=1)).secrets == (
        second,
        first,
    )
    assert signing(tmp_path, rotated_at + kept_for + timedelta(minutes=1)).secrets == (second,)


def test_an_overlap_of_0_ends_the_old_secret_at_once(tmp_path: Path) -> None:
    run("webhooks", "secret", "--app", "acme", data_dir=tmp_path)
    args = ("webhooks", "secret", "--app", "acme", "--rotate", "--overlap", "0")
    second = run(*args, data_dir=tmp_path).splitlines()[0]
    assert signing(tmp_path, datetime.now(UTC)).secrets == (second,)


@pytest.mark.parametrize("overlap", ["9y", "2 h", "-1h", "8d", "h"])
def test_an_overlap_that_is_not_a_duration_up_to_7_days_is_refused(
    tmp_path: Path, overlap: str
) -> None:
    run("webhooks", "secret", "--app", "acme", data_dir=tmp_path)
    args = ("webhooks", "secret", "--app", "acme", "--rotate", "--overlap", overlap)
    assert "--overlap" in run(*args, data_dir=tmp_path, code=2)


def test_require_timestamp_switches_the_app_and_back(tmp_path: Path) -> None:
    told = run("webhooks", "require-timestamp", "--app", "acme", data_dir=tmp_path, code=2)
    assert "no webhook secret" in told
    run("webhooks", "secret", "--app", "acme", data_dir=tmp_path)
    assert "only timestamped" in run(
        "webhooks", "require-timestamp", "--app", "acme", data_dir=tmp_path
    )
    assert signing(tmp_path, datetime.now(UTC)).require_timestamp
    args = ("webhooks", "require-timestamp", "--app", "acme", "--off")
    assert "both signature forms" in run(*args, data_dir=tmp_path)
    assert not signing(tmp_path, datetime.now(UTC)).require_timestamp
