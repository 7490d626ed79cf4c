"""The CSV upload door against hostile files, over HTTP, in the embedded deployment.

Each hostile file ends in a specific problem that names its line, without the rest of it being
read; an app cannot run more imports at once than its limit, nor keep one going past the time
budget; rejected-row reports never show a whole phone number.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from insights.composition.embedded import build_embedded
from insights.embedded import Embedded, EmbeddedSettings, create_app

pytestmark = pytest.mark.unit

BOUNDARY = "hostile-upload"
MIB = 1 << 20


@dataclass
class Door:
    embedded: Embedded
    client: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, app: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[app]}"}


@pytest.fixture
def budget(request: pytest.FixtureRequest) -> str:
    """The time budget of an import, in seconds; a test may set its own."""
    return str(getattr(request, "param", "60"))


@pytest.fixture
async def door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: str) -> AsyncIterator[Door]:
    # A small limit, so the tests reach it quickly; the settings are read from the environment.
    monkeypatch.setenv("IMPORT_MAX_RUNNING_PER_APP", "2")
    monkeypatch.setenv("IMPORT_TIME_BUDGET_SECONDS", budget)
    embedded = build_embedded(EmbeddedSettings(data_dir=tmp_path / "data"))
    app = create_app(embedded)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://insights.test") as client,
    ):
        keys = {name: await embedded.keys.create_api_key(name) for name in ("acme", "globex")}
        yield Door(embedded, client, keys)


def part_head(filename: str = "users.csv", field: str = "file") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"'
        "\r\nContent-Type: text/csv\r\n\r\n"
    ).encode()


PART_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def streamed(data: bytes, *, chunk: int = 256 * 1024) -> Iterator[bytes]:
    yield part_head()
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    yield PART_TAIL


def form(data: bytes) -> bytes:
    return b"".join(streamed(data))


async def upload(door: Door, body: Any, *, app: str = "acme") -> httpx.Response:
    return await door.client.post(
        "/api/v1/imports", headers={**door.auth(app), **MULTIPART}, content=body, timeout=60
    )


async def import_record(door: Door, import_id: str) -> dict[str, Any]:
    answer = await door.client.get(f"/api/v1/imports/{import_id}", headers=door.auth())
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


class Counted:
    """An upload body that counts the bytes the server took from it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in streamed(self.data, chunk=64 * 1024):
            self.sent += len(piece)
            yield piece


async def refused(door: Door, data: bytes) -> tuple[dict[str, Any], Counted]:
    body = Counted(data)
    answer = await upload(door, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    record = await import_record(door, problem["import_id"])
    assert record["status"] == "rejected"
    assert record["errors"][0]["code"] == problem["code"]
    return problem, body


async def test_a_30_mib_file_of_one_line_is_refused_at_line_1(door: Door) -> None:
    problem, body = await refused(door, b"x" * (30 * MIB))
    assert (problem["code"], problem["line"], problem["title"]) == (
        "record_too_long",
        1,
        "Row too long",
    )
    assert "longer than 64 KiB" in problem["detail"]
    assert body.sent < MIB  # refused once the line passed the limit, not at its end


async def test_a_long_row_after_good_rows_is_refused_naming_its_line(door: Door) -> None:
    data = b"user_id,phone_number\n" + b"alex,+14155550171\n" * 10 + b"bo," + b"9" * 70_000
    problem, _ = await refused(door, data + b"\n" + b"ci,+14155550172\n" * 1000)
    assert (problem["code"], problem["line"]) == ("record_too_long", 12)


async def test_a_quote_never_closed_is_refused_at_the_line_it_opened(door: Door) -> None:
    rows = b"".join(b"u%d,+1415555%04d\n" % (n, n) for n in range(20_000))
    problem, body = await refused(door, b'user_id,phone_number,nickname\nalex,+1,"Kim\n' + rows)
    assert (problem["code"], problem["line"]) == ("record_too_long", 2)
    assert "quote opened on line 2" in problem["detail"]
    assert body.sent < len(rows)


async def test_50_mib_of_blank_lines_end_at_once(door: Door) -> None:
    problem, body = await refused(door, b"user_id,phone_number\n" + b"\n" * (50 * MIB))
    assert (problem["code"], problem["title"]) == ("too_many_blank_lines", "Too many blank lines")
    assert problem["line"] == 1002  # the 1,001st blank line
    assert body.sent < MIB
    only_newlines, _ = await refused(door, b"\r\n" * (25 * MIB))
    assert (only_newlines["code"], only_newlines["line"]) == ("too_many_blank_lines", 1001)


async def test_a_large_part_before_the_file_is_not_read_to_its_end(door: Door) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield part_head(field="padding")
        for _ in range(200):
            sent += 64 * 1024
            yield b"p" * (64 * 1024)
        yield b"\r\n" + part_head() + b"user_id,phone_number\nalex,+14155550171\n" + PART_TAIL

    answer = await upload(door, body())
    assert answer.status_code == 400, answer.text
    assert "before its 'file' part" in answer.json()["detail"]
    assert sent < MIB


class Stalled:
    """An upload that sends its first rows, then waits until it is let go."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.started = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield part_head() + b"user_id,phone_number\nalex,+14155550171\n"
        self.started.set()
        await self.go.wait()
        yield b"bo,+14155550172\n" + PART_TAIL


async def test_an_app_runs_at_most_its_limit_of_imports_at_once(door: Door) -> None:
    first, second = Stalled(), Stalled()
    running = [asyncio.create_task(upload(door, body)) for body in (first, second)]
    await asyncio.wait_for(asyncio.gather(first.started.wait(), second.started.wait()), 5)
    await eventually_running(door, 2)

    busy = await upload(door, form(b"user_id,phone_number\nci,+14155550173\n"))
    assert busy.status_code == 429, busy.text
    assert busy.headers["Retry-After"] == "10"
    problem = busy.json()
    assert (problem["code"], problem["limit"]) == ("too_many_imports", 2)
    assert "2 imports running" in problem["detail"]
    history = await door.client.get("/api/v1/imports", headers=door.auth())
    assert len(history.json()["items"]) == 2  # the refused one was not recorded

    other_app = await upload(door, form(b"user_id,phone_number\nci,+14155550173\n"), app="globex")
    assert other_app.status_code == 202

    first.go.set()
    second.go.set()
    assert [answer.status_code for answer in await asyncio.gather(*running)] == [202, 202]
    await door.embedded.imports.drain()
    again = await upload(door, form(b"user_id,phone_number\nci,+14155550173\n"))
    assert again.status_code == 202, again.text


async def eventually_running(door: Door, count: int) -> None:
    for _ in range(200):
        history = await door.client.get("/api/v1/imports", headers=door.auth())
        statuses = [item["status"] for item in history.json()["items"]]
        if statuses.count("validating") == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not {count} imports running: {statuses}")


@pytest.mark.parametrize("budget", [1.5], indirect=True)
async def test_an_upload_slower_than_the_time_budget_is_refused(door: Door) -> None:
    never = Stalled()
    answer = await upload(door, never)
    assert answer.status_code == 408, answer.text
    problem = answer.json()
    assert (problem["code"], problem["title"]) == ("time_budget_exceeded", "Import took too long")
    assert "longer than 1.5 seconds" in problem["detail"]
    record = await import_record(door, problem["import_id"])
    assert (record["status"], record["errors"][0]["code"]) == ("rejected", "time_budget_exceeded")
    # Its place is free again.
    assert (await upload(door, form(b"user_id,phone_number\na,+14155550171\n"))).status_code == 202


BAD_PHONES = {
    2: "+1 415-555-0171",  # a valid number in another notation: the hint is its E.164 form
    3: "14155550172",
    4: "+1415555017",  # one digit short
    5: "+44 020 7946 0958",
}


async def test_rejected_row_reports_mask_phone_numbers(door: Door) -> None:
    lines = ["user_id,phone_number"] + [f'u{n},"{phone}"' for n, phone in BAD_PHONES.items()]
    data = ("\n".join(lines) + "\n").encode()
    answer = await upload(door, form(data))
    assert answer.status_code == 202, answer.text
    import_id = answer.json()["id"]
    await door.embedded.imports.drain()

    report = await door.client.get(f"/api/v1/imports/{import_id}/errors", headers=door.auth())
    messages = {item["line"]: item["message"] for item in report.json()["items"]}
    assert sorted(messages) == sorted(BAD_PHONES)
    assert messages[2].startswith("'+1 415-***-**71' is not in E.164 format")
    assert "(+1 415-***-**71)" in messages[2]
    assert "(+1 415-***-**72)" in messages[3]
    downloaded = await door.client.get(
        f"/api/v1/imports/{import_id}/errors", params={"format": "csv"}, headers=door.auth()
    )
    rows = list(csv.DictReader(io.StringIO(downloaded.text)))
    assert [row["message"] for row in rows] == [messages[line] for line in sorted(BAD_PHONES)]
    for text in [*messages.values(), downloaded.text]:
        digits = "".join(ch for ch in text if ch.isdigit() or ch == "\n")
        for phone in BAD_PHONES.values():
            national = "".join(ch for ch in phone if ch.isdigit())[-7:]
            assert national not in digits, (phone, text)
