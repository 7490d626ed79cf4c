"""The CSV rules of the contract: the header, every row, and the file as a whole.

`FileValidator` is fed byte chunks as they arrive. The per-row path is kept lean (one phone parse,
one regex, no models) because a 100,000-row file must validate in a second or two.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from import_svc.domain.csv_stream import MAX_RECORD_BYTES, CsvRecord, CsvStream
from import_svc.domain.model import FileIssue, FileRejected, RowError, ValidRow, format_bytes
from insights_contracts.phone import PhoneError, check_e164, mask_phone

USER_ID = "user_id"
PHONE = "phone_number"
NICKNAME = "nickname"
REQUIRED_COLUMNS = (USER_ID, PHONE)
KNOWN_COLUMNS = (USER_ID, PHONE, NICKNAME)
MAX_USER_ID = 80
MAX_NICKNAME = 80
MAX_ROWS = 100_000
MAX_BYTES = 64 * 1024 * 1024
MAX_BLANK_LINES = 1000

_USER_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,80}")
_USER_ID_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")
_ALLOWED = "only letters A-Z and a-z, digits 0-9, '_', '-' and '.' are allowed"
_SHOWN_VALUE = 100  # longest cell value quoted back in an error


@dataclass(frozen=True, slots=True)
class Header:
    width: int
    user_id: int
    phone: int
    nickname: int | None
    warnings: tuple[FileIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class Validation:
    total_rows: int
    rows: list[ValidRow]
    errors: list[RowError]
    rejected: int  # rows with at least one error
    file_error: FileIssue | None
    warnings: tuple[FileIssue, ...]


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_VALUE else value[:_SHOWN_VALUE] + "…"


def describe_char(char: str) -> str:
    if char == " ":
        return "a space"
    if char == "\t":
        return "a tab"
    code = f"U+{ord(char):04X}"
    if not char.isprintable():
        return f"the invisible character {code}"
    name = unicodedata.name(char, "")
    return f"'{char}' ({code}{' ' + name if name else ''})"


def resolve_header(record: CsvRecord) -> Header:
    """Map the columns this import reads; raise FileRejected when the header cannot be used."""
    line = record.line
    if record.problem is not None:
        raise FileRejected(
            FileIssue(
                "malformed_header", f"The header on line {line} is not valid CSV: {record.problem}."
            )
        )
    names = [cell.strip().lower() for cell in record.cells]
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if name:
            positions.setdefault(name, []).append(index)
    duplicated = [name for name in KNOWN_COLUMNS if len(positions.get(name, ())) > 1]
    if duplicated:
        details = "; ".join(
            f"'{name}' is columns {', '.join(str(i + 1) for i in positions[name])}"
            for name in duplicated
        )
        raise FileRejected(
            FileIssue(
                "duplicate_columns",
                f"The header on line {line} names a column more than once ({details}). "
                "Keep one column of each name.",
                line,
            )
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in positions]
    if missing:
        raise FileRejected(_missing_columns(missing, record.cells, line))
    ignored = [
        (index, cell.strip())
        for index, cell in enumerate(record.cells)
        if names[index] not in KNOWN_COLUMNS
    ]
    warnings: tuple[FileIssue, ...] = ()
    if ignored:
        listed = ", ".join(
            f"'{name}'" if name else f"(column {index + 1}, no name)" for index, name in ignored
        )
        warnings = (
            FileIssue(
                "ignored_columns",
                f"These columns are not imported and were ignored: {listed}. "
                "Only user_id, phone_number and nickname are read.",
                line,
            ),
        )
    nickname = positions.get(NICKNAME)
    return Header(
        width=len(names),
        user_id=positions[USER_ID][0],
        phone=positions[PHONE][0],
        nickname=nickname[0] if nickname else None,
        warnings=warnings,
    )


# Names people give these columns in exports from other tools, compared without punctuation.
_ALIASES = {
    USER_ID: {"userid", "user", "id", "uid", "customerid", "externalid", "memberid"},
    PHONE: {"phone", "phonenumber", "mobile", "mobilenumber", "tel", "telephone", "msisdn", "cell"},
}


def _squeeze(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _suggestion(missing: str, found: Sequence[str]) -> str | None:
    for name in found:
        if _squeeze(name) in _ALIASES[missing]:
            return name
    squeezed = {_squeeze(name): name for name in found}
    close = difflib.get_close_matches(_squeeze(missing), list(squeezed), n=1, cutoff=0.75)
    return squeezed[close[0]] if close else None


def _missing_columns(missing: list[str], cells: Sequence[str], line: int) -> FileIssue:
    found = [cell.strip() for cell in cells if cell.strip()]
    unused = [name for name in found if name.lower() not in KNOWN_COLUMNS]
    shown = ", ".join(f"'{_shown(name)}'" for name in found) or "none"
    hints = []
    for name in missing:
        suggestion = _suggestion(name, unused)
        if suggestion is not None:
            hints.append(f"rename '{_shown(suggestion)}' to '{name}'")
    which = " and ".join(f"'{name}'" for name in missing)
    plural = "columns" if len(missing) > 1 else "column"
    hint = f" Did you mean to {' and '.join(hints)}?" if hints else ""
    return FileIssue(
        "missing_columns",
        f"The header on line {line} lacks the required {plural} {which}. Columns found: {shown}. "
        f"The first row must name the columns user_id and phone_number, in any order.{hint}",
        line,
    )


def user_id_error(value: str) -> tuple[str, str]:
    """(code, message) for a user_id that fails the rule."""
    if not value:
        return "user_id_required", "user_id is empty; every row needs a user ID"
    if len(value) > MAX_USER_ID:
        return (
            "user_id_too_long",
            f"user_id '{_shown(value)}' has {len(value)} characters; at most {MAX_USER_ID} are "
            "allowed",
        )
    bad = _USER_ID_CHAR.search(value)
    assert bad is not None  # noqa: S101 - only called when the pattern did not match
    return (
        "user_id_invalid",
        f"user_id '{_shown(value)}' contains {describe_char(bad.group())} at position "
        f"{bad.start() + 1}; {_ALLOWED}",
    )


def _blank(cells: list[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def phone_error_message(raw: str, error: PhoneError) -> str:
    """The error's message with the number and its E.164 hint masked the way the query API shows
    numbers: a rejected-row report says where and what is wrong, not whose number it is."""
    message = error.message
    value = raw.strip()
    if value:
        masked = _shown(mask_phone(value) or "")
        message = message.replace(f"'{raw}'", f"'{masked}'")
    if error.hint:
        message = message.replace(
            f"write it as {error.hint}",
            "write it as + and the digits of its country code and number, without spaces or "
            f"dashes ({mask_phone(error.hint)})",
        )
    return message


class FileValidator:
    """Feed it chunks, then `finish()`; it stops reading at the first file-level problem.

    Blank lines (empty, or only commas and spaces) are skipped, up to `max_blank_lines` of them:
    a file of nothing but line ends is refused early instead of read to its end.
    """

    def __init__(
        self,
        *,
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_blank_lines: int = MAX_BLANK_LINES,
    ) -> None:
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._max_blank = max_blank_lines
        self._blank = 0
        self._stream = CsvStream(max_record_bytes=max_record_bytes)
        self._header: Header | None = None
        self._rows: list[ValidRow] = []
        self._errors: list[RowError] = []
        self._first_line: dict[str, int] = {}
        self._total = 0
        self._rejected = 0
        self._bytes = 0
        self._issue: FileIssue | None = None

    @property
    def stopped(self) -> bool:
        return self._issue is not None

    @property
    def total_rows(self) -> int:
        return self._total

    @property
    def bytes_read(self) -> int:
        return self._bytes

    def feed(self, chunk: bytes) -> None:
        if self._issue is not None:
            return
        self._bytes += len(chunk)
        if self._bytes > self._max_bytes:
            self._issue = too_large(self._max_bytes)
            return
        try:
            self._consume(self._stream.feed(chunk))
        except FileRejected as exc:
            self._issue = exc.issue

    def finish(self) -> Validation:
        if self._issue is None:
            try:
                self._consume(self._stream.close())
                if self._header is None:
                    raise FileRejected(EMPTY_FILE)
                if self._total == 0:
                    raise FileRejected(
                        FileIssue(
                            "no_data_rows",
                            "The file has a header but no data rows; add one row per user below "
                            "the header.",
                        )
                    )
            except FileRejected as exc:
                self._issue = exc.issue
        return Validation(
            total_rows=self._total,
            rows=self._rows,
            errors=self._errors,
            rejected=self._rejected,
            file_error=self._issue,
            warnings=self._header.warnings if self._header else (),
        )

    def _consume(self, records: list[CsvRecord]) -> None:
        header = self._header
        for record in records:
            if header is None:
                if not record.problem and _blank(record.cells):
                    self._skip_blank(record.line)
                    continue
                header = self._header = resolve_header(record)
                continue
            self._row(record, header)

    def _row(self, record: CsvRecord, header: Header) -> None:
        line, cells, problem = record
        errors = self._errors
        if problem is None and len(cells) == header.width:
            user_id = cells[header.user_id].strip()
            if not user_id and _blank(cells):
                self._skip_blank(line)
                return
            self._count(line)
        else:
            if problem is None and _blank(cells):
                self._skip_blank(line)
                return
            self._count(line)
            self._rejected += 1
            if problem is not None:
                errors.append(RowError(line, None, None, "malformed_row", problem))
            else:
                errors.append(_wrong_width(line, len(cells), header.width))
            return

        bad = False
        if _USER_ID_RE.fullmatch(user_id) is None:
            code, message = user_id_error(user_id)
            errors.append(RowError(line, _shown(user_id) or None, USER_ID, code, message))
            bad = True
        else:
            first = self._first_line.get(user_id)
            if first is not None:
                errors.append(
                    RowError(
                        line,
                        user_id,
                        USER_ID,
                        "duplicate_user_id",
                        f"duplicate of line {first}: user_id '{user_id}' appears more than once "
                        "in the file; only its first row is used",
                    )
                )
                self._rejected += 1
                return
            self._first_line[user_id] = line

        raw_phone = cells[header.phone]
        phone = check_e164(raw_phone)
        if isinstance(phone, PhoneError):
            message = phone_error_message(raw_phone, phone)
            errors.append(RowError(line, _shown(user_id) or None, PHONE, phone.code, message))
            bad = True
            phone = ""

        nickname: str | None = None
        if header.nickname is not None:
            nickname = cells[header.nickname].strip() or None
            if nickname is not None and len(nickname) > MAX_NICKNAME:
                errors.append(
                    RowError(
                        line,
                        _shown(user_id) or None,
                        NICKNAME,
                        "nickname_too_long",
                        f"nickname has {len(nickname)} characters; at most {MAX_NICKNAME} are "
                        "allowed",
                    )
                )
                bad = True

        if bad:
            self._rejected += 1
        else:
            self._rows.append(ValidRow(line, user_id, phone, nickname))

    def _skip_blank(self, line: int) -> None:
        self._blank += 1
        if self._blank > self._max_blank:
            raise FileRejected(
                FileIssue(
                    "too_many_blank_lines",
                    f"The file has more than {self._max_blank:,} blank lines (line {line:,} is "
                    f"blank line number {self._blank:,}); nothing was imported. Delete the empty "
                    "rows (a spreadsheet exports rows that were formatted but left empty as "
                    "blank lines or lines of commas) and upload the file again.",
                    line,
                )
            )

    def _count(self, line: int) -> None:
        self._total += 1
        if self._total > self._max_rows:
            raise FileRejected(
                FileIssue(
                    "too_many_rows",
                    f"The file has more than {self._max_rows:,} data rows (row "
                    f"{self._total:,} is on line {line:,}); nothing was imported. Split it into "
                    f"files of at most {self._max_rows:,} rows and import each one.",
                    line,
                )
            )


def _wrong_width(line: int, cells: int, width: int) -> RowError:
    if cells > width:
        fix = 'put cells that contain a comma in double quotes ("Kim, Alex")'
    else:
        fix = "every row needs a cell for each column, even an empty one"
    return RowError(
        line,
        None,
        None,
        "wrong_cell_count",
        f"this row has {cells} cells but the header has {width} columns; {fix}",
    )


EMPTY_FILE = FileIssue(
    "empty_file",
    "The file is empty. Upload a CSV whose first row names the columns user_id and phone_number "
    "and whose next rows hold one user each.",
)


def too_large(max_bytes: int) -> FileIssue:
    return FileIssue(
        "too_large",
        f"The file is larger than {format_bytes(max_bytes)} ({max_bytes:,} bytes); nothing was "
        "imported. Split it into smaller files and import each one.",
    )


def inspect_head(head: bytes, *, complete: bool) -> FileIssue | None:
    """A problem visible in the first bytes of an upload: not CSV, not UTF-8, empty, bad header.

    `complete` says the head is the whole file. Problems further down are left to the import.
    """
    stream = CsvStream()
    try:
        records = stream.feed(head)
        if complete:
            records += stream.close()
        for record in records:
            if record.problem is None and _blank(record.cells):
                continue
            resolve_header(record)
            return None
    except FileRejected as exc:
        return exc.issue
    return EMPTY_FILE if complete else None
