"""The CSV export of a message list, safe to open in a spreadsheet."""

from __future__ import annotations

from collections.abc import Iterable

from insights_common.spreadsheet import csv_lines
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
    "failure_explanation",
)


def csv_header() -> str:
    return csv_lines([CSV_COLUMNS])


def csv_rows(details: Iterable[MessageDetail]) -> str:
    return csv_lines(
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
            (d.failure.explanation or "") if d.failure else "",
        ]
        for d in details
    )
