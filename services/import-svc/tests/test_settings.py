from __future__ import annotations

from pathlib import Path

import pytest

from import_svc.settings import ImportSettings

pytestmark = pytest.mark.unit


def test_defaults(tmp_path: Path) -> None:
    settings = ImportSettings(data_dir=tmp_path)
    assert (settings.max_rows, settings.max_bytes) == (100_000, 64 * 1024 * 1024)


def test_read_from_import_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMPORT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMPORT_MAX_ROWS", "500")
    monkeypatch.setenv("IMPORT_MAX_BYTES", "4096")
    settings = ImportSettings()
    assert (settings.data_dir, settings.max_rows, settings.max_bytes) == (tmp_path, 500, 4096)


def test_the_upload_door_bounds_and_their_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = ImportSettings(data_dir=tmp_path)
    assert (
        defaults.max_record_bytes,
        defaults.max_blank_lines,
        defaults.time_budget_seconds,
        defaults.max_running_per_app,
    ) == (64 * 1024, 1000, 300.0, 3)
    monkeypatch.setenv("IMPORT_MAX_RECORD_BYTES", "4096")
    monkeypatch.setenv("IMPORT_MAX_BLANK_LINES", "0")
    monkeypatch.setenv("IMPORT_TIME_BUDGET_SECONDS", "2.5")
    monkeypatch.setenv("IMPORT_MAX_RUNNING_PER_APP", "1")
    settings = ImportSettings(data_dir=tmp_path)
    assert (
        settings.max_record_bytes,
        settings.max_blank_lines,
        settings.time_budget_seconds,
        settings.max_running_per_app,
    ) == (4096, 0, 2.5, 1)
    # Past 128 KiB a cell would meet the csv module's own limit first.
    monkeypatch.setenv("IMPORT_MAX_RECORD_BYTES", str(256 * 1024))
    with pytest.raises(ValueError, match="max_record_bytes"):
        ImportSettings(data_dir=tmp_path)
