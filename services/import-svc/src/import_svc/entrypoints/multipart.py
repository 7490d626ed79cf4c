"""Stream one file part out of a multipart/form-data body as it arrives.

Starlette's form parser would first copy the whole upload to a temporary file; reading the part
ourselves lets the service spool it once and stop at the byte limit without reading the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks


class MultipartError(Exception):
    """The body is not a multipart/form-data body this endpoint can read."""


def multipart_boundary(content_type: str | None) -> bytes:
    media_type, params = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data":
        shown = media_type.decode("latin-1")
        received = f"the request body is {shown}" if shown else "the request has no Content-Type"
        raise MultipartError(
            f"{received}; send the CSV as multipart/form-data with the file in "
            "a field named 'file' (for example: curl -F file=@users.csv ...)"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("the multipart/form-data Content-Type has no boundary parameter")
    return boundary


class FilePart:
    """The first part named `field` of a multipart body, read chunk by chunk.

    Call `find()` first; then iterate it for the part's bytes.
    """

    def __init__(
        self, body: AsyncIterator[bytes], boundary: bytes, field: str, *, max_before: int
    ) -> None:
        self._body = body
        self._field = field
        self._max_before = max_before
        self._read = 0
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(boundary, callbacks)
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._found = False
        self._inside = False
        self._part_done = False
        self._body_done = False
        self._data: list[bytes] = []
        self.filename: str | None = None
        self.fields_seen: list[str] = []

    async def find(self) -> bool:
        """Read up to the headers of the part; False when the body has no such part.

        At most `max_before` bytes are read looking for it: other parts are not kept, so a body
        that puts a large one first would otherwise be read to its end for nothing.
        """
        while not self._found:
            if self._read > self._max_before:
                raise MultipartError(
                    f"the form has more than {self._max_before:,} bytes before its "
                    f"'{self._field}' part; send the file as the first part, or alone"
                )
            if self._body_done or not await self._pump():
                return False
        return True

    def __aiter__(self) -> FilePart:
        return self

    async def __anext__(self) -> bytes:
        while not self._data:
            if self._part_done:
                raise StopAsyncIteration
            if not await self._pump():
                raise MultipartError(
                    "the request body ended inside the file part; the upload was cut off"
                )
        data = b"".join(self._data)
        self._data.clear()
        return data

    async def _pump(self) -> bool:
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            return False
        if chunk:
            self._read += len(chunk)
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise MultipartError(f"the multipart body is malformed ({exc})") from exc
        return True

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self.fields_seen.append(name)
        if name == self._field and not self._found:
            self._found = self._inside = True
            filename = params.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename is not None else None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._inside:
            self._data.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._inside:
            self._inside = False
            self._part_done = True

    def _on_end(self) -> None:
        self._body_done = True
