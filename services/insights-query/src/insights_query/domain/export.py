"""The CSV export of a message list, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from insights_query.domain.time import rfc3339
from insights_query.domain.views import MessageDetail

CSV_COLUMNS = (
    "message_id",
    "sent_at",
    "channel",
    "template_key",
    "template_version",
    "status",
    "title",
    "body",
    "failure_code",
    "failure_reason",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _render(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


def csv_header() -> str:
    return _render([CSV_COLUMNS])


def csv_rows(details: Iterable[MessageDetail]) -> str:
    return _render(
        [
            d.message_id,
            rfc3339(d.sent_at),
            d.channel,
            d.template.key,
            str(d.template.version),
            d.status,
            d.content.title or "",
            d.content.body,
            d.failure.code if d.failure else "",
            d.failure.reason if d.failure else "",
        ]
        for d in details
    )
