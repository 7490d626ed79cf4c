"""A push-style CSV reader: byte chunks in, records out, each with the line it starts on.

Chunks are decoded as UTF-8 incrementally and cut into physical lines (LF, CRLF or CR). A line
without quotes is a record of its own and is split directly; lines with quotes are grouped until
their quotes balance, then handed to the `csv` module (RFC 4180, strict), so a quoted cell may hold
commas, doubled quotes and newlines. Only the current line and an open quoted record are held in
memory, whatever the size of the file, and neither may grow past `max_record_bytes`.

Each byte is scanned a bounded number of times: a line still unterminated at the end of a chunk
is kept as pieces and joined once, when its end arrives, so one long line costs linear time.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from import_svc.domain.model import FileIssue, FileRejected, format_bytes

SNIFF_BYTES = 8
MAX_RECORD_BYTES = 64 * 1024
_NUL_WINDOW = 8192
_BOM = "\ufeff"

# Leading bytes of files people upload by mistake instead of a CSV export.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive, such as an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"{\\rtf", "an RTF document"),
)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

SAVE_AS_CSV = (
    "In your spreadsheet choose File > Save As (or Download) > 'CSV UTF-8' and upload that file."
)


class CsvRecord(NamedTuple):
    line: int
    cells: list[str]
    problem: str | None = None  # why the record is not valid CSV; cells are then empty


def sniff(head: bytes) -> FileIssue | None:
    """Name what a file is when its first bytes show it is clearly not CSV text."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return FileIssue("not_csv", f"The file is {what}, not CSV text. {SAVE_AS_CSV}")
    if head.startswith(_UTF16_BOMS):
        return FileIssue(
            "not_utf8", f"The file is UTF-16 text; the import reads UTF-8 only. {SAVE_AS_CSV}", 1
        )
    if b"\x00" in head[:_NUL_WINDOW]:
        return _NUL_ISSUE
    return None


_NUL_ISSUE = FileIssue(
    "not_csv",
    "The file contains NUL bytes, so it is binary data (or UTF-16 text), not UTF-8 CSV. "
    + SAVE_AS_CSV,
)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _count_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _last_line_length(text: str) -> int:
    return len(text) - max(text.rfind("\n"), text.rfind("\r")) - 1


class CsvStream:
    def __init__(self, *, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._max_record = max_record_bytes
        # A string of n characters holds at most 4n bytes of UTF-8: shorter ones need no count.
        self._unchecked_chars = max_record_bytes // 4
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._head = b""
        self._sniffed = False
        self._bom_checked = False
        self._decoded_bytes = 0
        self._line = 0  # physical lines cut so far
        self._tail: list[str] = []  # pieces of the current line, not terminated yet
        self._tail_bytes = 0
        self._group: list[str] = []  # lines of a record whose quotes are still open
        self._group_line = 0
        self._group_quotes = 0
        self._group_bytes = 0

    def feed(self, chunk: bytes) -> list[CsvRecord]:
        """The records completed by this chunk. Raises FileRejected for a file-level problem."""
        if not self._sniffed:
            self._head += chunk
            if len(self._head) < SNIFF_BYTES:
                return []
            chunk, self._head = self._head, b""
            self._sniff(chunk)
        elif (
            self._decoded_bytes < _NUL_WINDOW
            and b"\x00" in chunk[: _NUL_WINDOW - self._decoded_bytes]
        ):
            raise FileRejected(_NUL_ISSUE)
        return self._process(self._decode(chunk, final=False), final=False)

    def close(self) -> list[CsvRecord]:
        """The records left at the end of the file."""
        chunk = b""
        if not self._sniffed:
            chunk, self._head = self._head, b""
            self._sniff(chunk)
        return self._process(self._decode(chunk, final=True), final=True)

    def _sniff(self, data: bytes) -> None:
        self._sniffed = True
        issue = sniff(data)
        if issue is not None:
            raise FileRejected(issue)

    def _decode(self, data: bytes, *, final: bool) -> str:
        buffered = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise FileRejected(self._utf8_issue(exc, self._decoded_bytes - len(buffered))) from exc
        self._decoded_bytes += len(data)
        if not self._bom_checked and text:
            self._bom_checked = True
            if text.startswith(_BOM):
                text = text[1:]
        return text

    def _utf8_issue(self, exc: UnicodeDecodeError, object_offset: int) -> FileIssue:
        valid = exc.object[: exc.start].decode("utf-8")
        if object_offset == 0 and valid.startswith(_BOM):
            valid = valid[1:]
        before = "".join(self._tail) + valid
        line = self._line + _count_breaks(before) + 1
        column = _last_line_length(before) + 1
        offset = object_offset + exc.start
        bad = exc.object[exc.start : exc.end]
        if exc.reason == "unexpected end of data":
            what = "the file ends in the middle of a UTF-8 character"
        else:
            what = f"the byte 0x{bad[0]:02X} is not valid UTF-8"
        return FileIssue(
            "not_utf8",
            f"The file is not UTF-8 text: on line {line}, column {column} (byte offset {offset}) "
            f"{what}. It was probably saved in another encoding such as Latin-1 or Windows-1252. "
            + SAVE_AS_CSV,
            line,
        )

    def _process(self, text: str, *, final: bool) -> list[CsvRecord]:
        out: list[CsvRecord] = []
        tail = self._tail
        if not final and (
            not text
            or ("\n" not in text and "\r" not in text and not (tail and tail[-1].endswith("\r")))
        ):
            # Still inside one line: keep the piece, scan nothing twice.
            if text:
                tail.append(text)
                self._tail_bytes += _utf8_size(text)
                self._check_open_record()
            return out
        if tail:
            text = "".join(tail) + text
            tail.clear()
            self._tail_bytes = 0
        if text:
            lines = io.StringIO(text, newline="").readlines()
            last = lines[-1]
            # A trailing CR may be the first half of a CRLF cut by the chunk boundary.
            if not final and (last.endswith("\r") or not last.endswith("\n")):
                tail.append(lines.pop())
                self._tail_bytes = _utf8_size(tail[0])
            self._cut(lines, out)
            if tail:
                self._check_open_record()
        if final and self._group:
            self._parse(self._group, self._group_line, out, at_end=True)
            self._group = []
        return out

    def _check_open_record(self) -> None:
        """Refuse the record being read once it passes the limit, before the rest of it."""
        if self._group:
            size, line = self._group_bytes + self._tail_bytes, self._group_line
        else:
            size, line = self._tail_bytes, self._line + 1
        if size > self._max_record:
            raise FileRejected(record_too_long(line, self._max_record))

    def _cut(self, lines: list[str], out: list[CsvRecord]) -> None:
        line_no = self._line
        group = self._group
        limit = self._max_record
        unchecked = self._unchecked_chars
        for line in lines:
            line_no += 1
            if group:
                group.append(line)
                self._group_bytes += _utf8_size(line)
                if self._group_bytes > limit:
                    raise FileRejected(record_too_long(self._group_line, limit))
                self._group_quotes += line.count('"')
                if self._group_quotes % 2 == 0:
                    self._parse(group, self._group_line, out, at_end=False)
                    group.clear()
                continue
            if len(line) > unchecked and _utf8_size(line) > limit:
                raise FileRejected(record_too_long(line_no, limit))
            if '"' not in line:
                text = line.rstrip("\r\n")
                out.append(CsvRecord(line_no, text.split(",") if text else []))
                continue
            quotes = line.count('"')
            if quotes % 2 == 0:
                self._parse([line], line_no, out, at_end=False)
            else:
                group.append(line)
                self._group_quotes = quotes
                self._group_line = line_no
                self._group_bytes = _utf8_size(line)
        self._line = line_no

    @staticmethod
    def _parse(lines: list[str], start: int, out: list[CsvRecord], *, at_end: bool) -> None:
        reader = csv.reader(lines, strict=True)
        while True:
            before = reader.line_num
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line = start + before
                if at_end and "unexpected end of data" in str(exc):
                    raise FileRejected(_unclosed_quote(line)) from exc
                out.append(CsvRecord(line, [], _explain(str(exc))))
                return  # the rest of this quoted group cannot be told apart reliably
            out.append(CsvRecord(start + before, cells))


def record_too_long(line: int, limit: int) -> FileIssue:
    return FileIssue(
        "record_too_long",
        f"The row that starts on line {line} is longer than {format_bytes(limit)} ({limit:,} "
        "bytes), the most one row may hold; nothing was imported. A row of users is a few "
        "hundred bytes: check that the file is a CSV export of users, and that no quote opened "
        f"on line {line} is left unclosed (it joins the lines after it into one cell).",
        line,
    )


def _unclosed_quote(line: int) -> FileIssue:
    return FileIssue(
        "unclosed_quote",
        f"A quote opened on line {line} is never closed, so the rest of the file cannot be read "
        "as rows. Close the quote, or remove it if the cell should not be quoted (a quote inside "
        'a quoted cell is written twice: "").',
        line,
    )


def _explain(error: str) -> str:
    if "expected after" in error:
        return (
            "a closing quote must be followed by a comma or the end of the line; to put a quote "
            'inside a quoted cell write it twice ("")'
        )
    if "unexpected end of data" in error:
        return "a quoted cell is not closed; add the closing quote"
    return f"the row is not valid CSV ({error})"


def iter_records(
    chunks: Iterable[bytes], *, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[CsvRecord]:
    """Read records from byte chunks as they come, in constant memory."""
    stream = CsvStream(max_record_bytes=max_record_bytes)
    for chunk in chunks:
        yield from stream.feed(chunk)
    yield from stream.close()
