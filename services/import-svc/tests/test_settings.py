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
