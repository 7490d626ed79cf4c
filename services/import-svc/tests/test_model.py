from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from import_svc.domain.model import (
    PUBLISHED,
    TRANSITIONS,
    VALIDATED,
    Counts,
    FileIssue,
    IllegalTransition,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    new_import_id,
)
from insights_common.bus import Span

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=3)
COUNTS = Counts(total_rows=3, created=2, unchanged=1)


def queued() -> ImportRecord:
    return ImportRecord(
        id="imp_1", app_id="acme", filename="u.csv", options=ImportOptions(), created_at=NOW
    )


def test_happy_path() -> None:
    record = queued().validating()
    record = record.with_progress(total_rows=1000, progress=0.4)
    assert (record.status, record.progress, record.counts.total_rows) == ("validating", 0.4, 1000)
    record = record.importing(COUNTS)
    assert record.status is ImportStatus.IMPORTING and record.progress == VALIDATED
    written = (Span("users", 0, 10, 19, 6), Span("users", 1, 4, 7, 4))
    record = record.publishing_done(written, at=NOW)
    assert (record.published_at, record.written, record.progress) == (NOW, written, PUBLISHED)
    assert not record.finished and record.visible_at is None
    halfway = record.becoming_visible(5)
    assert PUBLISHED < halfway.progress < 1.0
    assert halfway.becoming_visible(2).progress == halfway.progress  # progress never goes back
    done = halfway.completed(COUNTS, at=LATER)
    assert (done.status, done.progress, done.finished_at, done.visible_at, done.counts) == (
        ImportStatus.COMPLETED,
        1.0,
        LATER,
        LATER,
        COUNTS,
    )
    assert done.finished


def test_a_warning_is_given_once() -> None:
    record = queued().validating().importing(COUNTS).publishing_done((), at=NOW)
    behind = FileIssue("projection_behind", "30 s")
    once = record.warned(behind)
    assert once.warnings == (behind,)
    assert once.warned(FileIssue("projection_behind", "60 s")) is once


def test_only_an_importing_import_publishes() -> None:
    with pytest.raises(ValueError, match="while validating"):
        queued().validating().publishing_done((), at=NOW)


def test_a_span_counts_the_records_a_position_has_passed() -> None:
    span = Span("users", 0, first=100, last=199, records=50)  # others' records lie between
    assert [span.covered(at) for at in (-1, 100, 150, 199, 200, 10_000)] == [0, 0, 25, 49, 50, 50]


def test_dry_run_completes_straight_from_validating() -> None:
    done = queued().validating().completed(COUNTS, at=LATER)
    assert done.status is ImportStatus.COMPLETED
    assert done.published_at is None and done.visible_at is None  # nothing was published


def test_rejected_keeps_issues_and_warnings() -> None:
    issue = FileIssue("no_data_rows", "no rows")
    warning = FileIssue("ignored_columns", "email")
    record = queued().validating().rejected((issue,), Counts(), at=LATER, warnings=(warning,))
    assert (record.status, record.errors, record.warnings) == ("rejected", (issue,), (warning,))


@pytest.mark.parametrize(
    "status", [ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.IMPORTING]
)
def test_every_unfinished_state_can_fail(status: ImportStatus) -> None:
    record = ImportRecord(
        id="imp_1",
        app_id="acme",
        filename="u.csv",
        options=ImportOptions(),
        created_at=NOW,
        status=status,
    )
    failed = record.failed(FileIssue("interrupted", "restart"), at=LATER)
    assert failed.status is ImportStatus.FAILED and failed.errors[-1].code == "interrupted"


@pytest.mark.parametrize(
    ("make", "step"),
    [
        (queued, lambda r: r.importing(COUNTS)),
        (queued, lambda r: r.completed(COUNTS, at=LATER)),
        (lambda: queued().validating(), lambda r: r.validating()),
        (
            lambda: queued().validating().importing(COUNTS),
            lambda r: r.rejected((), COUNTS, at=LATER),
        ),
        (lambda: queued().validating().completed(COUNTS, at=LATER), lambda r: r.validating()),
        (
            lambda: queued().validating().completed(COUNTS, at=LATER),
            lambda r: r.failed(FileIssue("x", "y"), at=LATER),
        ),
        (
            lambda: queued().failed(FileIssue("x", "y"), at=LATER),
            lambda r: r.validating(),
        ),
    ],
)
def test_illegal_transitions_raise(
    make: Callable[[], ImportRecord], step: Callable[[ImportRecord], ImportRecord]
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        step(make())
    assert "an import cannot go from" in str(caught.value)


def test_final_states_have_no_way_out() -> None:
    for status in (ImportStatus.COMPLETED, ImportStatus.REJECTED, ImportStatus.FAILED):
        assert TRANSITIONS[status] == frozenset()


def test_progress_only_while_validating_and_never_backwards() -> None:
    record = queued().validating().with_progress(total_rows=10, progress=0.5)
    assert record.with_progress(total_rows=20, progress=0.2).progress == 0.5
    with pytest.raises(ValueError, match="while validating"):
        queued().with_progress(total_rows=1, progress=0.1)


def test_import_ids_sort_by_time_and_stay_ordered_within_a_millisecond() -> None:
    first = new_import_id(NOW)
    assert re.fullmatch(r"imp_[0-9a-f]{23}", first)
    assert int(first[4:17], 16) == int(NOW.timestamp() * 1000)
    same_ms = [first]
    for _ in range(50):
        same_ms.append(new_import_id(NOW, after=same_ms[-1]))
    assert same_ms == sorted(same_ms) and len(set(same_ms)) == 51
    assert new_import_id(LATER) > same_ms[-1]
