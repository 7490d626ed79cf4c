"""Settings of insights-query, from QUERY_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QuerySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    default_window_days: int = Field(default=30, ge=1, le=366)
    """User statistics cover this many UTC days up to now when no since/until is given."""
    max_window_days: int = Field(default=366, ge=1)
    preview_length: int = Field(default=160, ge=16)
    """Characters of the body shown in a message list item."""
    export_page_size: int = Field(default=500, ge=1, le=5000)
    """Messages read per store query while a CSV export streams."""
