#!/bin/sh
# Installs the workspace (without its dev tools) into /app/.venv; every image runs this once.
set -eu
pip install --no-cache-dir uv==0.13.9
uv sync --no-dev --no-cache
# Run as an unprivileged user; uploads waiting for their import live in /data.
useradd --system --uid 10001 --home-dir /app insights
mkdir -p /data && chown insights /data
