from __future__ import annotations

import base64
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from importsvc_support import Embedded, build_embedded, csv_bytes, make_app

pytestmark = pytest.mark.unit

HEADER = "user_id,phone_number,nickname"
ALEX = "+14155550171"
BO = "+821012345678"
RESOURCE_FIELDS = {
    "id",
    "filename",
    "status",
    "mode",
    "on_error",
    "dry_run",
    "total_rows",
    "created",
    "updated",
    "unchanged",
    "rejected",
    "progress",
    "created_at",
    "published_at",
    "visible_at",
    "finished_at",
    "errors",
    "warnings",
}


async def auth(env: Embedded, app: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {await env.keys.create_api_key(app)}"}


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    filename: str = "users.csv",
    field: str = "file",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/imports",
        headers=headers,
        params=params,
        files={field: (filename, data, "text/csv")},
    )


async def finished(
    client: httpx.AsyncClient, env: Embedded, headers: dict[str, str], import_id: str
) -> dict[str, Any]:
    await env.service.drain()
    response = await client.get(f"/api/v1/imports/{import_id}", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_requires_a_key(client: httpx.AsyncClient) -> None:
    assert_problem(await upload(client, {}, csv_bytes(HEADER, f"alex,{ALEX},")), 401)
    assert_problem(await client.get("/api/v1/imports"), 401)


async def assert_recorded_as_rejected(
    client: httpx.AsyncClient, headers: dict[str, str], problem: dict[str, Any], code: str
) -> None:
    """A file refused at once is in the history too, as rejected, under the problem's id."""
    items = (await client.get("/api/v1/imports", headers=headers)).json()["items"]
    assert [(i["id"], i["status"]) for i in items] == [(problem["import_id"], "rejected")]
    assert [e["code"] for e in items[0]["errors"]] == [code]
    assert items[0]["progress"] == 1.0 and items[0]["finished_at"] is not None


async def test_upload_answers_202_and_imports_in_the_background(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    response = await upload(
        client, headers, csv_bytes(HEADER, f"alex,{ALEX},Alex", f"bo,{BO},", "bad,555,")
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == RESOURCE_FIELDS
    # The file was validated as it arrived; the users are imported in the background.
    assert accepted["status"] == "validating" and accepted["total_rows"] == 3
    assert (accepted["filename"], accepted["mode"], accepted["on_error"], accepted["dry_run"]) == (
        "users.csv",
        "upsert",
        "skip_rows",
        False,
    )
    assert response.headers["location"] == f"http://t/api/v1/imports/{accepted['id']}"

    body = await finished(client, embedded, headers, accepted["id"])
    assert body["status"] == "completed"
    assert {k: body[k] for k in ("total_rows", "created", "updated", "unchanged", "rejected")} == {
        "total_rows": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert body["progress"] == 1.0
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert body["finished_at"].endswith(("Z", "+00:00"))
    # Embedded, the projection takes the users as they are published: visible at once.
    assert body["created_at"] <= body["published_at"] <= body["visible_at"] == body["finished_at"]
    assert body["errors"] == [] and body["warnings"] == []
    assert [e.user_id for e in embedded.collector.users] == ["alex", "bo"]


async def test_options_come_from_the_query(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    response = await upload(
        client,
        headers,
        csv_bytes(HEADER, f"alex,{ALEX},", "bad,1,"),
        params={"mode": "insert_only", "on_error": "reject_file", "dry_run": "true"},
    )
    assert response.status_code == 202
    accepted = response.json()
    assert (accepted["mode"], accepted["on_error"], accepted["dry_run"]) == (
        "insert_only",
        "reject_file",
        True,
    )
    body = await finished(client, embedded, headers, accepted["id"])
    assert body["status"] == "rejected"
    assert [e["code"] for e in body["errors"]] == ["rows_rejected"]
    assert embedded.collector.batches == []


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        ({"mode": "merge"}, "'upsert', 'insert_only' or 'update_only'"),
        ({"on_error": "ignore"}, "'skip_rows' or 'reject_file'"),
    ],
)
async def test_bad_option_values_name_the_allowed_ones(
    client: httpx.AsyncClient, embedded: Embedded, params: dict[str, str], allowed: str
) -> None:
    headers = await auth(embedded)
    body = assert_problem(
        await upload(client, headers, csv_bytes(HEADER, f"a,{ALEX},"), params=params), 400
    )
    assert allowed in body["detail"]


async def test_bad_dry_run_value(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    response = await upload(
        client, headers, csv_bytes(HEADER, f"a,{ALEX},"), params={"dry_run": "maybe"}
    )
    assert "dry_run" in assert_problem(response, 400)["detail"]


async def test_no_file_part(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    body = assert_problem(
        await upload(client, headers, csv_bytes(HEADER, f"a,{ALEX},"), field="csv"), 400
    )
    assert "no part named 'file' (parts found: 'csv')" in body["detail"]


async def test_a_body_that_is_not_multipart(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = {**await auth(embedded), "Content-Type": "text/csv"}
    response = await client.post("/api/v1/imports", headers=headers, content=b"user_id\n")
    body = assert_problem(response, 400)
    assert "the request body is text/csv" in body["detail"]
    assert "multipart/form-data" in body["detail"]


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "not_csv", "Excel workbook (.xlsx)"),
        (b"user_id,phone_number,nickname\nalex,+14155550171,Jos\xe9\n", "not_utf8", "line 2"),
    ],
)
async def test_not_csv_is_415(
    client: httpx.AsyncClient, embedded: Embedded, data: bytes, code: str, words: str
) -> None:
    headers = await auth(embedded)
    body = assert_problem(await upload(client, headers, data, filename="users.xlsx"), 415)
    assert body["code"] == code and words in body["detail"]
    await assert_recorded_as_rejected(client, headers, body, code)
    assert list((embedded.settings.data_dir / "uploads").iterdir()) == []


async def test_missing_columns_is_422_at_once(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    body = assert_problem(
        await upload(client, headers, csv_bytes("user_id,phone", f"alex,{ALEX}")), 422
    )
    assert body["code"] == "missing_columns"
    assert body["line"] == 1
    assert (
        "'phone_number'" in body["detail"] and "Columns found: 'user_id', 'phone'" in body["detail"]
    )
    await assert_recorded_as_rejected(client, headers, body, "missing_columns")


async def test_empty_file_is_422(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    body = assert_problem(await upload(client, headers, b""), 422)
    assert body["code"] == "empty_file"


async def test_header_only_is_422_at_once(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    body = assert_problem(await upload(client, headers, csv_bytes(HEADER)), 422)
    assert body["code"] == "no_data_rows" and "no data rows" in body["detail"]
    await assert_recorded_as_rejected(client, headers, body, "no_data_rows")


async def test_too_many_rows_is_413_without_reading_the_rest(tmp_path: Path) -> None:
    env = build_embedded(tmp_path, max_rows=10)
    seen = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal seen
        boundary = "b0undary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n{HEADER}\n"
        ).encode()
        for i in range(1000):  # far more rows than allowed, one chunk each
            seen += 1
            yield f"u{i},{ALEX},\n".encode()
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(env.parts)), base_url="http://t"
    ) as client:
        headers = await auth(env)
        response = await client.post(
            "/api/v1/imports",
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
            content=body(),
        )
        problem = assert_problem(response, 413)
        assert problem["code"] == "too_many_rows" and "at most 10" in problem["detail"]
        await assert_recorded_as_rejected(client, headers, problem, "too_many_rows")
    assert seen < 20  # the upload stopped being read at the 11th row
    assert env.collector.users == []
    await env.service.shutdown()
    env.db.close()


async def test_extra_columns_warning_in_the_resource(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    response = await upload(client, headers, csv_bytes("user_id,phone_number,email", f"a,{ALEX},x"))
    body = await finished(client, embedded, headers, response.json()["id"])
    assert [(w["code"], w["line"]) for w in body["warnings"]] == [("ignored_columns", 1)]
    assert "'email'" in body["warnings"][0]["message"]


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Embedded]]:
    env = build_embedded(tmp_path, max_bytes=1000)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(env.parts)), base_url="http://t"
    ) as http:
        yield http, env
    await env.service.shutdown()
    env.db.close()


async def test_413_from_content_length(small: tuple[httpx.AsyncClient, Embedded]) -> None:
    client, env = small
    headers = await auth(env)
    data = csv_bytes(HEADER, *(f"u{i},{ALEX}," for i in range(5000)))
    assert len(data) > 1000 + 64 * 1024
    body = assert_problem(await upload(client, headers, data), 413)
    assert body["code"] == "too_large"
    assert body["detail"].startswith("The upload is ")
    assert "files may be at most 1000 bytes (1,000 bytes)" in body["detail"]
    assert not (env.settings.data_dir / "uploads").exists()  # refused before reading the body


async def test_413_from_the_streamed_size(small: tuple[httpx.AsyncClient, Embedded]) -> None:
    client, env = small
    headers = await auth(env)
    data = csv_bytes(HEADER, *(f"u{i},{ALEX}," for i in range(100)))
    assert 1000 < len(data) < 64 * 1024
    body = assert_problem(await upload(client, headers, data), 413)
    assert body["code"] == "too_large"
    assert "larger than 1000 bytes (1,000 bytes)" in body["detail"]
    assert list((env.settings.data_dir / "uploads").iterdir()) == []
    await assert_recorded_as_rejected(client, headers, body, "too_large")


async def test_chunked_upload_without_content_length(
    small: tuple[httpx.AsyncClient, Embedded],
) -> None:
    client, env = small
    headers = await auth(env)
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n"
    ).encode()
    body += csv_bytes(HEADER, f"alex,{ALEX},") + f"\r\n--{boundary}--\r\n".encode()

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    response = await client.post(
        "/api/v1/imports",
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=stream(),
    )
    assert response.status_code == 202, response.text
    assert "content-length" not in response.request.headers
    result = await finished(client, env, headers, response.json()["id"])
    assert (result["status"], result["created"]) == ("completed", 1)


async def test_row_errors_paginated_in_line_order(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    data = csv_bytes(HEADER, "a b,1,", f"ok,{ALEX},", f"ok,{BO},", "c,+1 415 555 0171,")
    response = await upload(client, headers, data)
    import_id = response.json()["id"]
    await finished(client, embedded, headers, import_id)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            f"/api/v1/imports/{import_id}/errors", headers=headers, params=params
        )
        assert page.status_code == 200
        body = page.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [(e["line"], e["column"], e["code"]) for e in seen] == [
        (2, "user_id", "user_id_invalid"),
        (2, "phone_number", "phone_not_e164"),
        (4, "user_id", "duplicate_user_id"),
        (5, "phone_number", "phone_not_e164"),
    ]
    assert seen[2]["message"].startswith("duplicate of line 3")
    assert "(+1 415-***-**71)" in seen[3]["message"]
    assert "5550171" not in seen[3]["message"]
    assert set(seen[0]) == {"line", "user_id", "column", "code", "message"}


async def test_bad_cursor_is_400(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    response = await upload(client, headers, csv_bytes(HEADER, f"a,{ALEX},"))
    import_id = response.json()["id"]
    await embedded.service.drain()
    assert_problem(
        await client.get(f"/api/v1/imports/{import_id}/errors?cursor=nope", headers=headers), 400
    )
    assert_problem(await client.get("/api/v1/imports?cursor=eyJhZnRlciI6MX0", headers=headers), 400)
    # JSON integers the stores cannot compare (past 64 bits), a boolean: 400s naming cursor
    for position in ('{"after": 9223372036854775808}', '{"after": 1e400}', '{"after": true}'):
        cursor = base64.urlsafe_b64encode(position.encode()).decode()
        answer = await client.get(
            f"/api/v1/imports/{import_id}/errors", params={"cursor": cursor}, headers=headers
        )
        assert_problem(answer, 400)
        assert answer.json()["errors"][0]["loc"] == ["query", "cursor"]


FORMULAS = (
    HEADER,
    '"=HYPERLINK(""http://evil"")",+14155550171,',
    "+cmd,+14155550171,",
    "@sum,+14155550171,",
    "-x,=1+2,",
    f"ok,{ALEX},",
)


@pytest.mark.parametrize(
    ("query", "accept"), [("", "text/csv"), ("?format=csv", "application/json, */*")]
)
async def test_error_report_as_spreadsheet_safe_csv(
    client: httpx.AsyncClient, embedded: Embedded, query: str, accept: str
) -> None:
    headers = await auth(embedded)
    response = await upload(client, headers, csv_bytes(*FORMULAS))
    import_id = response.json()["id"]
    await embedded.service.drain()
    report = await client.get(
        f"/api/v1/imports/{import_id}/errors{query}", headers={**headers, "Accept": accept}
    )
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    assert report.headers["content-disposition"] == (
        f'attachment; filename="{import_id}-errors.csv"'
    )
    rows = list(csv.reader(io.StringIO(report.text, newline="")))
    assert rows[0] == ["line", "user_id", "column", "code", "message"]
    assert [row[0] for row in rows[1:]] == ["2", "3", "4", "5"]
    assert [row[1] for row in rows[1:]] == [
        '\'=HYPERLINK("http://evil")',
        "'+cmd",
        "'@sum",
        "'-x",
    ]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


async def test_json_is_the_default_for_errors(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    response = await upload(client, headers, csv_bytes(*FORMULAS))
    import_id = response.json()["id"]
    await embedded.service.drain()
    page = await client.get(f"/api/v1/imports/{import_id}/errors", headers=headers)
    assert page.headers["content-type"] == "application/json"
    assert page.json()["items"][0]["user_id"] == '=HYPERLINK("http://evil")'  # raw in JSON


async def test_history_newest_first_with_pages(
    client: httpx.AsyncClient, embedded: Embedded
) -> None:
    headers = await auth(embedded)
    ids = []
    for i in range(3):
        response = await upload(client, headers, csv_bytes(HEADER, f"u{i},{ALEX},"))
        ids.append(response.json()["id"])
    await embedded.service.drain()
    first = (await client.get("/api/v1/imports?limit=2", headers=headers)).json()
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert set(first["items"][0]) == RESOURCE_FIELDS
    second = (
        await client.get(f"/api/v1/imports?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    default = (await client.get("/api/v1/imports", headers=headers)).json()
    assert len(default["items"]) == 3
    assert_problem(await client.get("/api/v1/imports?limit=201", headers=headers), 400)
    assert_problem(await client.get("/api/v1/imports?limit=0", headers=headers), 400)


async def test_tenancy(client: httpx.AsyncClient, embedded: Embedded) -> None:
    acme = await auth(embedded, "acme")
    globex = await auth(embedded, "globex")
    response = await upload(client, acme, csv_bytes(HEADER, "bad,1,"))
    import_id = response.json()["id"]
    await embedded.service.drain()

    assert_problem(await client.get(f"/api/v1/imports/{import_id}", headers=globex), 404)
    assert_problem(await client.get(f"/api/v1/imports/{import_id}/errors", headers=globex), 404)
    assert_problem(
        await client.get(f"/api/v1/imports/{import_id}/errors?format=csv", headers=globex), 404
    )
    assert (await client.get("/api/v1/imports", headers=globex)).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert (await client.get(f"/api/v1/imports/{import_id}", headers=acme)).status_code == 200


async def test_unknown_import_is_404(client: httpx.AsyncClient, embedded: Embedded) -> None:
    headers = await auth(embedded)
    body = assert_problem(await client.get("/api/v1/imports/imp_nope", headers=headers), 404)
    assert "imp_nope" in body["detail"]
