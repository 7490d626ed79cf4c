from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from import_svc.domain.csv_stream import CsvRecord, CsvStream, iter_records, sniff
from import_svc.domain.model import FileRejected

pytestmark = pytest.mark.unit


def records(data: bytes, chunk: int | None = None) -> list[CsvRecord]:
    size = chunk or max(len(data), 1)
    return list(iter_records(data[i : i + size] for i in range(0, len(data), size)))


def rejected(data: bytes, chunk: int | None = None) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        records(data, chunk)
    return caught.value


def test_lines_and_cells() -> None:
    assert records(b"a,b\nc,d\n") == [CsvRecord(1, ["a", "b"]), CsvRecord(2, ["c", "d"])]


def test_last_line_without_newline() -> None:
    assert records(b"a,b\nc,d") == [CsvRecord(1, ["a", "b"]), CsvRecord(2, ["c", "d"])]


def test_bom_is_dropped() -> None:
    assert records("\ufeffuser_id,x\n".encode()) == [CsvRecord(1, ["user_id", "x"])]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, None])
def test_bom_split_across_chunks(chunk: int | None) -> None:
    assert records("\ufeffa,é\n".encode(), chunk) == [CsvRecord(1, ["a", "é"])]


def test_crlf_and_cr_line_ends() -> None:
    assert records(b"a,b\r\nc,d\r\n") == [CsvRecord(1, ["a", "b"]), CsvRecord(2, ["c", "d"])]
    assert records(b"a,b\rc,d\r") == [CsvRecord(1, ["a", "b"]), CsvRecord(2, ["c", "d"])]


def test_crlf_cut_between_chunks_is_one_line_end() -> None:
    assert records(b"a\r\nb\r\nc", chunk=2) == [
        CsvRecord(1, ["a"]),
        CsvRecord(2, ["b"]),
        CsvRecord(3, ["c"]),
    ]


def test_quoted_comma_quote_and_newline() -> None:
    data = b'id,nick\r\nalex,"Kim, ""Al""\r\nsecond line"\r\nbo,plain\r\n'
    assert records(data) == [
        CsvRecord(1, ["id", "nick"]),
        CsvRecord(2, ["alex", 'Kim, "Al"\r\nsecond line']),
        CsvRecord(4, ["bo", "plain"]),  # the line where the record starts
    ]


def test_blank_lines_keep_their_numbers() -> None:
    assert [r.line for r in records(b"a\n\n\nb\n")] == [1, 2, 3, 4]
    assert records(b"a\n\nb\n")[1] == CsvRecord(2, [])


def test_text_after_closing_quote_is_a_row_problem() -> None:
    got = records(b'a,b\n"x"y,1\nc,d\n')
    assert got[0] == CsvRecord(1, ["a", "b"])
    assert got[1].line == 2 and got[1].problem is not None
    assert "write it twice" in got[1].problem
    assert got[2] == CsvRecord(3, ["c", "d"])


def test_unclosed_quote_rejects_the_file_naming_its_line() -> None:
    issue = rejected(b'user_id,phone_number\nalex,+14155550171\n"bo,+1\nci,+2\n').issue
    assert issue.code == "unclosed_quote"
    assert issue.line == 3
    assert "line 3" in issue.message


def test_stray_quote_in_unquoted_cell_reads_like_csv_module() -> None:
    data = b'a"b,c\nd,e"f\ng,h\n'
    assert [r.cells for r in records(data)] == list(csv.reader(io.StringIO(data.decode())))


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_latin1_byte_names_line_column_and_offset(chunk: int | None) -> None:
    data = b"user_id,nickname\nalex,Al\nbo,Caf" + b"\xe9\n"
    issue = rejected(data, chunk).issue
    assert issue.code == "not_utf8"
    assert issue.line == 3
    assert "line 3, column 7 (byte offset 31)" in issue.message
    assert "0xE9" in issue.message
    assert "CSV UTF-8" in issue.message


def test_truncated_utf8_at_the_end() -> None:
    issue = rejected(b"a,b\nc," + "é".encode()[:1]).issue
    assert issue.code == "not_utf8"
    assert "ends in the middle of a UTF-8 character" in issue.message


@pytest.mark.parametrize(
    ("head", "code", "words"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00rest", "not_csv", "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "not_csv", "Excel 97-2003"),
        (b"%PDF-1.7\n", "not_csv", "PDF"),
        (b"\xff\xfeu\x00s\x00", "not_utf8", "UTF-16"),
        (b"user\x00id,phone\n", "not_csv", "NUL bytes"),
    ],
)
def test_signatures_of_files_that_are_not_csv(head: bytes, code: str, words: str) -> None:
    issue = sniff(head)
    assert issue is not None and issue.code == code and words in issue.message
    assert rejected(head, chunk=1).issue.code == code


def test_plain_text_is_not_sniffed_as_binary() -> None:
    assert sniff(b"user_id,phone_number\n") is None


cell = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
row = st.lists(cell, min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(row, min_size=1, max_size=8),
    newline=st.sampled_from(["\n", "\r\n"]),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_reads_back_what_csv_writer_wrote(rows: list[list[str]], newline: str, chunk: int) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    data = buffer.getvalue().encode()
    got = records(data, chunk)
    reader = csv.reader(io.StringIO(buffer.getvalue(), newline=""))
    expected = []
    while True:
        start = reader.line_num + 1
        try:
            expected.append(CsvRecord(start, next(reader)))
        except StopIteration:
            break
    assert got == expected


def feed_until_refused(stream: CsvStream, pieces: list[bytes]) -> tuple[int, FileRejected]:
    """The index of the piece whose feed refused the file, and the refusal."""
    for index, piece in enumerate(pieces):
        try:
            stream.feed(piece)
        except FileRejected as exc:
            return index, exc
    raise AssertionError("the file was not refused")


def test_a_long_line_is_refused_as_soon_as_it_passes_the_limit() -> None:
    pieces = [b"user_id,phone_number\nalex,+14155550171\n", *[b"x" * 100] * 50, b"\n"]
    index, refusal = feed_until_refused(CsvStream(max_record_bytes=1024), pieces)
    assert index == 11  # the eleventh piece of x's takes the line past 1,024 bytes
    issue = refusal.issue
    assert (issue.code, issue.line) == ("record_too_long", 3)
    assert "line 3 is longer than 1 KiB (1,024 bytes)" in issue.message


def test_a_long_line_inside_one_chunk_is_refused_with_its_line() -> None:
    data = b"a,b\n" + b"y" * 2000 + b"\nc,d\n"
    issue = rejected_with(data, limit=1024, chunk=None).issue
    assert issue.line == 2 and issue.code == "record_too_long"


def test_the_limit_counts_a_row_and_its_line_end_in_bytes() -> None:
    limit = 512
    fits = b"a" * (limit - 1) + b"\n"
    assert list(iter_records([fits[:7], fits[7:]], max_record_bytes=limit)) == [
        CsvRecord(1, ["a" * (limit - 1)])
    ]
    assert rejected_with(b"a" * limit + b"\n", limit=limit, chunk=None).issue.line == 1
    hangul = "가" * 171  # 171 characters, 513 bytes
    assert rejected_with(hangul.encode(), limit=limit, chunk=5).issue.line == 1
    assert list(iter_records([("가" * 170 + "\n").encode()], max_record_bytes=limit)) == [
        CsvRecord(1, ["가" * 170])
    ]


def test_a_quote_left_open_is_refused_at_the_line_it_opened() -> None:
    data = b'user_id,nickname\nalex,"Kim\n' + b"bo,plain\n" * 200
    for chunk in (1, 13, None):
        refusal = rejected_with(data, limit=1024, chunk=chunk)
        assert (refusal.issue.code, refusal.issue.line) == ("record_too_long", 2)
        assert "quote opened on line 2" in refusal.issue.message


def test_a_quoted_cell_with_line_breaks_under_the_limit_is_one_record() -> None:
    data = b'id,note\n1,"' + b"line\n" * 100 + b'end"\n2,x\n'
    got = list(iter_records([data], max_record_bytes=1024))
    assert [r.line for r in got] == [1, 2, 103]
    assert got[1].cells == ["1", "line\n" * 100 + "end"]


def rejected_with(data: bytes, *, limit: int, chunk: int | None) -> FileRejected:
    size = chunk or len(data)
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    with pytest.raises(FileRejected) as caught:
        list(iter_records(pieces, max_record_bytes=limit))
    return caught.value
