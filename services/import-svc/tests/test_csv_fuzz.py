"""The CSV reader and validator fed hostile bytes: every outcome is a row, a row error or a named
file problem, and how the bytes are cut into chunks changes nothing that was read."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from import_svc.domain.csv_stream import CsvRecord, CsvStream
from import_svc.domain.model import FileRejected
from import_svc.domain.validation import FileValidator

pytestmark = pytest.mark.unit

LIMIT = 256  # a small record limit, so long lines and open quotes reach it
READER_PROBLEMS = {"not_csv", "not_utf8", "unclosed_quote", "record_too_long"}
FILE_PROBLEMS = READER_PROBLEMS | {
    "empty_file",
    "no_data_rows",
    "missing_columns",
    "duplicate_columns",
    "malformed_header",
    "too_many_rows",
    "too_many_blank_lines",
    "too_large",
}
ROW_PROBLEMS = {
    "malformed_row",
    "wrong_cell_count",
    "user_id_required",
    "user_id_invalid",
    "user_id_too_long",
    "duplicate_user_id",
    "phone_required",
    "phone_invalid",
    "phone_not_e164",
    "phone_too_long",
    "nickname_too_long",
}

PIECES = [
    b'"',
    b'""',
    b",",
    b"\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",  # a byte-order mark, also in the middle
    b"user_id,phone_number,nickname\n",
    b"alex,+14155550171,Al\n",
    b"+1 415-555-0171",
    b"x" * 300,  # past the record limit
    b"\n" * 40,
    "김민지 é".encode(),
    b"\xe9",  # Latin-1, not UTF-8
    b"\xf0\x9f",  # half of a four-byte character
    b"\x00",
    b" ",
]
hostile = st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), max_size=40).map(b"".join),
)
cuts = st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=20)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at, turn = [], 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        pieces.append(data[at : at + size])
        at += size
        turn += 1
    return pieces


def read(pieces: list[bytes]) -> list[CsvRecord] | str:
    """The records of the file, or the code of the problem that refused it."""
    stream = CsvStream(max_record_bytes=LIMIT)
    got: list[CsvRecord] = []
    try:
        for piece in pieces:
            got += stream.feed(piece)
        got += stream.close()
    except FileRejected as exc:
        issue = exc.issue
        assert issue.code in READER_PROBLEMS, issue
        assert issue.message and (issue.line is None or issue.line >= 1)
        return issue.code
    return got


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile, sizes=cuts)
def test_the_reader_reads_any_bytes_alike_in_any_chunks(data: bytes, sizes: list[int]) -> None:
    whole = read([data])
    cut = read(chunked(data, sizes))
    if isinstance(whole, str) or isinstance(cut, str):
        # A file is refused in either case; which problem shows first may depend on how far
        # the reader got before it (a long line before a byte that is not UTF-8).
        assert isinstance(whole, str) and isinstance(cut, str)
        return
    assert cut == whole
    lines = [record.line for record in whole]
    assert lines == sorted(set(lines)) and all(line >= 1 for line in lines)
    for record in whole:
        assert all(isinstance(cell, str) for cell in record.cells)
        assert record.problem is None or (record.cells == [] and record.problem)
        assert sum(len(cell.encode()) for cell in record.cells) <= LIMIT


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile, sizes=cuts)
def test_the_validator_ends_every_file_in_a_row_a_row_error_or_a_file_problem(
    data: bytes, sizes: list[int]
) -> None:
    validator = FileValidator(
        max_rows=20, max_bytes=4096, max_record_bytes=LIMIT, max_blank_lines=5
    )
    for piece in chunked(data, sizes):
        validator.feed(piece)
    result = validator.finish()
    if result.file_error is not None:
        assert result.file_error.code in FILE_PROBLEMS, result.file_error
        assert result.file_error.message
        return
    assert result.total_rows == len(result.rows) + result.rejected <= 20
    assert {error.code for error in result.errors} <= ROW_PROBLEMS
    assert all(error.line >= 2 and error.message for error in result.errors)
