from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from importsvc_support import Embedded, build_embedded, csv_bytes

from import_svc.adapters.spool import LocalUploadSpool
from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.domain.model import (
    Counts,
    ImportMode,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    KnownUser,
    OnError,
    RowError,
)
from import_svc.issues import INTERRUPTED, STALE
from import_svc.lifecycle import STALE_AFTER
from import_svc.runs import VALIDATED_SHARE
from import_svc.service import ImportService
from insights_contracts import AnyEvent, UserUpserted
from insights_contracts.topics import USERS

pytestmark = pytest.mark.unit

HEADER = "user_id,phone_number,nickname"
ALEX = "+14155550171"
BO = "+821012345678"
CI = "+447911123456"


async def run(
    env: Embedded,
    *lines: str,
    app: str = "acme",
    options: ImportOptions | None = None,
) -> ImportRecord:
    return await env.service.run_import(
        app_id=app,
        filename="users.csv",
        chunks=iter([csv_bytes(*lines)]),
        options=options or ImportOptions(),
    )


async def known(env: Embedded, app: str, *user_ids: str) -> dict[str, KnownUser]:
    return await SqliteImportStore(env.db).known_users(app, list(user_ids))


async def errors_of(env: Embedded, record: ImportRecord) -> tuple[list[RowError], int | None]:
    page = await env.service.row_errors(record.app_id, record.id, after=0, limit=50)
    assert page is not None
    return page


def counts(record: ImportRecord) -> tuple[int, int, int, int, int]:
    c = record.counts
    return (c.total_rows, c.created, c.updated, c.unchanged, c.rejected)


async def test_upsert_publishes_valid_rows_in_one_batch(embedded: Embedded) -> None:
    record = await run(
        embedded, HEADER, f"alex,{ALEX},Alex", f"bo,{BO},", "bad,555,", f"ci,{CI},Ci"
    )
    assert record.status is ImportStatus.COMPLETED
    assert counts(record) == (4, 3, 0, 0, 1)
    assert record.progress == 1.0 and record.finished_at is not None

    assert len(embedded.collector.batches) == 1
    events = embedded.collector.users
    assert [(e.user_id, e.phone_number, e.nickname) for e in events] == [
        ("alex", ALEX, "Alex"),
        ("bo", BO, None),
        ("ci", CI, "Ci"),
    ]
    assert [e.event_id for e in events] == [f"{record.id}:2", f"{record.id}:3", f"{record.id}:5"]
    assert {e.source for e in events} == {f"import:{record.id}"}
    assert {e.occurred_at for e in events} == {record.created_at}
    assert {e.app_id for e in events} == {"acme"}
    assert "nickname" not in events[1].model_fields_set  # blank cell: absent, not erased
    # What was published round-trips through the contract's own validation.
    for event in events:
        assert UserUpserted.model_validate_json(event.model_dump_json()) == event

    stored = await embedded.service.get("acme", record.id)
    assert stored == record
    errors, more = await errors_of(embedded, record)
    assert [(e.line, e.user_id, e.column, e.code) for e in errors] == [
        (4, "bad", "phone_number", "phone_not_e164")
    ]
    assert more is None
    assert await known(embedded, "acme", "alex", "bo", "bad") == {
        "alex": KnownUser("alex", ALEX, "Alex"),
        "bo": KnownUser("bo", BO, None),
    }


async def test_exact_counts_for_a_mixed_file(embedded: Embedded) -> None:
    await run(embedded, HEADER, f"same,{ALEX},Same", f"moved,{BO},Mo")
    record = await run(
        embedded,
        HEADER,
        f"same,{ALEX},Same",  # unchanged
        f"moved,{CI},",  # updated phone, nickname kept
        f"new1,{ALEX},",  # created
        f"new2,{BO},N2",  # created
        f"new1,{CI},",  # duplicate of line 4
        "x y,+1,",  # two errors, one rejected row
    )
    assert counts(record) == (6, 2, 1, 1, 2)
    assert [
        (e.user_id, e.phone_number)
        for e in embedded.collector.batches[-1]
        if isinstance(e, UserUpserted)
    ] == [("moved", CI), ("new1", ALEX), ("new2", BO)]
    assert (await known(embedded, "acme", "moved"))["moved"] == KnownUser("moved", CI, "Mo")


async def test_reimporting_the_same_file_changes_nothing(embedded: Embedded) -> None:
    lines = (HEADER, f"alex,{ALEX},Alex", f"bo,{BO},", "bad,555,")
    first = await run(embedded, *lines)
    second = await run(embedded, *lines)
    assert counts(first) == (3, 2, 0, 0, 1)
    assert counts(second) == (3, 0, 0, 2, 1)
    assert len(embedded.collector.batches) == 1  # the unchanged rows published nothing


async def test_blank_nickname_does_not_erase_a_known_one(embedded: Embedded) -> None:
    await run(embedded, HEADER, f"alex,{ALEX},Alex")
    same_phone = await run(embedded, HEADER, f"alex,{ALEX},")
    assert counts(same_phone) == (1, 0, 0, 1, 0)
    new_phone = await run(embedded, "user_id,phone_number", f"alex,{BO}")
    assert counts(new_phone) == (1, 0, 1, 0, 0)
    event = embedded.collector.users[-1]
    assert (event.phone_number, event.nickname) == (BO, None)
    assert (await known(embedded, "acme", "alex"))["alex"] == KnownUser("alex", BO, "Alex")


async def test_insert_only(embedded: Embedded) -> None:
    await run(embedded, HEADER, f"alex,{ALEX},Alex")
    record = await run(
        embedded,
        HEADER,
        f"alex,{BO},Changed",
        f"bo,{BO},Bo",
        options=ImportOptions(mode=ImportMode.INSERT_ONLY),
    )
    assert counts(record) == (2, 1, 0, 0, 1)
    errors, _ = await errors_of(embedded, record)
    assert [(e.line, e.code) for e in errors] == [(2, "user_exists")]
    assert "use mode=upsert" in errors[0].message
    assert [e.user_id for e in embedded.collector.batches[-1] if isinstance(e, UserUpserted)] == [
        "bo"
    ]
    assert (await known(embedded, "acme", "alex"))["alex"].phone == ALEX


async def test_update_only(embedded: Embedded) -> None:
    await run(embedded, HEADER, f"alex,{ALEX},Alex")
    record = await run(
        embedded,
        HEADER,
        f"alex,{BO},",
        f"ghost,{BO},",
        options=ImportOptions(mode=ImportMode.UPDATE_ONLY),
    )
    assert counts(record) == (2, 0, 1, 0, 1)
    errors, _ = await errors_of(embedded, record)
    assert [(e.line, e.user_id, e.code) for e in errors] == [(3, "ghost", "user_not_found")]
    assert await known(embedded, "acme", "ghost") == {}


async def test_reject_file_imports_nothing_when_a_row_is_bad(embedded: Embedded) -> None:
    lines = (HEADER, f"alex,{ALEX},", f"bo,{BO},", "bad,555,")
    record = await run(embedded, *lines, options=ImportOptions(on_error=OnError.REJECT_FILE))
    assert record.status is ImportStatus.REJECTED
    assert counts(record) == (3, 0, 0, 0, 1)
    assert [i.code for i in record.errors] == ["rows_rejected"]
    assert "1 of 3 rows have errors" in record.errors[0].message
    assert embedded.collector.batches == []
    assert await known(embedded, "acme", "alex", "bo") == {}
    errors, _ = await errors_of(embedded, record)
    assert [e.line for e in errors] == [4]


async def test_reject_file_also_counts_mode_errors(embedded: Embedded) -> None:
    await run(embedded, HEADER, f"alex,{ALEX},")
    record = await run(
        embedded,
        HEADER,
        f"alex,{ALEX},",
        f"bo,{BO},",
        options=ImportOptions(mode=ImportMode.INSERT_ONLY, on_error=OnError.REJECT_FILE),
    )
    assert record.status is ImportStatus.REJECTED
    assert counts(record) == (2, 0, 0, 0, 1)
    assert len(embedded.collector.batches) == 1


async def test_reject_file_with_a_clean_file_imports(embedded: Embedded) -> None:
    record = await run(
        embedded, HEADER, f"alex,{ALEX},", options=ImportOptions(on_error=OnError.REJECT_FILE)
    )
    assert record.status is ImportStatus.COMPLETED and counts(record) == (1, 1, 0, 0, 0)


async def test_dry_run_counts_exactly_and_stores_nothing_but_the_report(
    embedded: Embedded,
) -> None:
    await run(embedded, HEADER, f"alex,{ALEX},Alex", f"bo,{BO},Bo")
    lines = (HEADER, f"alex,{ALEX},Alex", f"bo,{CI},", f"ci,{CI},", "bad,1,")
    dry = await run(embedded, *lines, options=ImportOptions(dry_run=True))
    assert dry.status is ImportStatus.COMPLETED
    assert dry.options.dry_run
    assert counts(dry) == (4, 1, 1, 1, 1)
    assert len(embedded.collector.batches) == 1  # only the first, real import
    assert await known(embedded, "acme", "ci") == {}
    assert (await known(embedded, "acme", "bo"))["bo"].phone == BO
    errors, _ = await errors_of(embedded, dry)
    assert [e.line for e in errors] == [5]
    real = await run(embedded, *lines)
    assert counts(real) == counts(dry)


async def test_too_many_rows_rejects_the_whole_file(tmp_path: Path) -> None:
    env = build_embedded(tmp_path, max_rows=3)
    try:
        record = await run(env, HEADER, *(f"u{i},{ALEX}," for i in range(4)))
        assert record.status is ImportStatus.REJECTED
        assert [i.code for i in record.errors] == ["too_many_rows"]
        assert "more than 3 data rows" in record.errors[0].message
        assert (record.counts.created, record.counts.updated) == (0, 0)
        assert env.collector.batches == []
        assert await known(env, "acme", "u0") == {}
    finally:
        env.db.close()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"user_id,phone_number\r\n", "no_data_rows"),
        (b"user_id,phone_number\nalex,+14155550171\nbo,Jos\xe9\n", "not_utf8"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00", "not_csv"),
        (b"id,phone_number\nalex,+14155550171\n", "missing_columns"),
    ],
)
async def test_file_level_problems_reject(embedded: Embedded, data: bytes, code: str) -> None:
    record = await embedded.service.run_import(
        app_id="acme", filename="x.csv", chunks=iter([data]), options=ImportOptions()
    )
    assert record.status is ImportStatus.REJECTED
    assert [i.code for i in record.errors] == [code]
    assert embedded.collector.batches == []


async def test_extra_columns_warn_in_the_record(embedded: Embedded) -> None:
    record = await run(embedded, "user_id,email,phone_number", f"alex,a@x.io,{ALEX}")
    assert record.status is ImportStatus.COMPLETED
    assert [(w.code, w.line) for w in record.warnings] == [("ignored_columns", 1)]
    assert "'email'" in record.warnings[0].message


async def test_progress_is_reported_while_validating(embedded: Embedded) -> None:
    data = csv_bytes(HEADER, *(f"u{i},+1415555{i:04d}," for i in range(3500)))
    seen: list[ImportRecord] = []
    record = await embedded.service.run_import(
        app_id="acme",
        filename="big.csv",
        chunks=(data[i : i + 4096] for i in range(0, len(data), 4096)),
        options=ImportOptions(),
        on_progress=seen.append,
        size_hint=len(data),
    )
    statuses = [r.status.value for r in seen]
    assert statuses[0] == "validating" and statuses[-2:] == ["importing", "completed"]
    validating = [r for r in seen if r.status is ImportStatus.VALIDATING]
    # The start, then every ~1,000 rows, then the whole file validated.
    assert len(validating) == 5
    rows = [r.counts.total_rows for r in validating[1:]]
    assert rows == sorted(rows) and rows[-1] == 3500
    assert all(
        later - earlier >= 1000 for earlier, later in zip([0, *rows[:-2]], rows[:-1], strict=True)
    )
    progress = [r.progress for r in seen]
    assert progress == sorted(progress) and 0 < validating[-2].progress < VALIDATED_SHARE
    assert validating[-1].progress == VALIDATED_SHARE
    assert record.progress == 1.0 and counts(record) == (3500, 3500, 0, 0, 0)


async def test_async_chunks(embedded: Embedded) -> None:
    data = csv_bytes(HEADER, f"alex,{ALEX},", f"bo,{BO},")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 5):
            yield data[i : i + 5]

    record = await embedded.service.run_import(
        app_id="acme", filename="a.csv", chunks=chunks(), options=ImportOptions()
    )
    assert counts(record) == (2, 2, 0, 0, 0)


async def test_tenancy(embedded: Embedded) -> None:
    record = await run(embedded, HEADER, f"alex,{ALEX},Alex")
    other = await run(embedded, HEADER, f"alex,{ALEX},Alex", app="globex")
    assert counts(other) == (1, 1, 0, 0, 0)  # the same user id in another app is another user
    assert await embedded.service.get("globex", record.id) is None
    assert await embedded.service.row_errors("globex", record.id, after=0, limit=5) is None
    assert await embedded.service.error_report("globex", record.id) is None
    assert [
        r.id for r in (await embedded.service.history("globex", before_id=None, limit=5))[0]
    ] == [other.id]


async def test_history_is_newest_first_and_paginated(embedded: Embedded) -> None:
    ids = [(await run(embedded, HEADER, f"u{i},{ALEX},")).id for i in range(5)]
    page, before = await embedded.service.history("acme", before_id=None, limit=2)
    assert [r.id for r in page] == ids[::-1][:2]
    page2, before2 = await embedded.service.history("acme", before_id=before, limit=2)
    page3, before3 = await embedded.service.history("acme", before_id=before2, limit=2)
    assert [r.id for r in page2 + page3] == ids[::-1][2:]
    assert before3 is None


def platform(user_id: str, at: datetime, **fields: str) -> UserUpserted:
    return UserUpserted(
        event_id=f"p-{user_id}-{at.timestamp()}",
        app_id="acme",
        occurred_at=at,
        user_id=user_id,
        source="platform",
        **fields,  # type: ignore[arg-type]
    )


async def test_the_registry_learns_users_from_the_platform(embedded: Embedded) -> None:
    now = datetime.now(UTC)
    await embedded.bus.publish([platform("pat", now, phone_number=ALEX, nickname="Pat")])
    await embedded.bus.publish([platform("pat", now + timedelta(seconds=1), nickname="Patty")])
    # Late: older than what is known, so it only fills what is unknown.
    await embedded.bus.publish([platform("pat", now - timedelta(days=1), phone_number=BO)])
    assert (await known(embedded, "acme", "pat"))["pat"] == KnownUser("pat", ALEX, "Patty")

    record = await run(
        embedded, HEADER, f"pat,{ALEX},", options=ImportOptions(mode=ImportMode.INSERT_ONLY)
    )
    assert counts(record) == (1, 0, 0, 0, 1)
    unchanged = await run(embedded, HEADER, f"pat,{ALEX},Patty")
    assert counts(unchanged) == (1, 0, 0, 1, 0)


async def test_the_registry_ignores_its_own_import_events(embedded: Embedded) -> None:
    event = UserUpserted(
        event_id="x:2",
        app_id="acme",
        occurred_at=datetime.now(UTC),
        user_id="imp",
        phone_number=ALEX,
        source="import:imp_1",
    )
    await embedded.bus.publish([event])
    assert await known(embedded, "acme", "imp") == {}


async def test_a_failing_publish_marks_the_import_failed_and_stores_no_users(
    embedded: Embedded,
) -> None:
    down = True

    async def broken(events: Sequence[AnyEvent]) -> None:
        if down:
            raise RuntimeError("projector down")

    embedded.bus.subscribe([USERS], broken, group="projector")
    record = await run(embedded, HEADER, f"alex,{ALEX},")
    assert record.status is ImportStatus.FAILED
    assert [i.code for i in record.errors] == ["internal_error"]
    assert "RuntimeError" in record.errors[0].message
    assert await known(embedded, "acme", "alex") == {}
    assert (await embedded.service.get("acme", record.id)) == record
    # Once the projector is back, importing the file again works and creates the user once.
    down = False
    again = await run(embedded, HEADER, f"alex,{ALEX},")
    assert counts(again) == (1, 1, 0, 0, 0)


async def test_restart_resumes_whole_uploads_and_fails_the_rest(embedded: Embedded) -> None:
    store = SqliteImportStore(embedded.db)
    me = embedded.settings.replica_id
    now = datetime.now(UTC)
    base = ImportRecord(
        id="imp_0000000000001aaaaaaaaaa",
        app_id="acme",
        filename="a.csv",
        options=ImportOptions(),
        created_at=now,
    )
    uploads = embedded.settings.data_dir / "uploads"
    uploads.mkdir(parents=True)
    # 1: queued, its upload gone. 2: validating, its upload whole. 3: importing (its events may
    # be out already), upload whole. 4: its upload cut off (.part). 5: completed.
    await store.create(base, owner=me, at=now)
    await store.create(
        replace(base.validating(), id="imp_0000000000002aaaaaaaaaa"), owner=me, at=now
    )
    (uploads / "imp_0000000000002aaaaaaaaaa.csv").write_bytes(csv_bytes(HEADER, f"alex,{ALEX},A"))
    importing = replace(
        base.validating().importing(Counts(1, 1, 0, 0, 0)), id="imp_0000000000003aaaaaaaaaa"
    )
    await store.create(importing, owner=me, at=now)
    (uploads / "imp_0000000000003aaaaaaaaaa.csv").write_bytes(csv_bytes(HEADER, f"bo,{BO},"))
    await store.create(
        replace(base.validating(), id="imp_0000000000004aaaaaaaaaa"), owner=me, at=now
    )
    (uploads / "imp_0000000000004aaaaaaaaaa.part").write_bytes(b"user_id,phone_nu")
    done = replace(base.validating().completed(Counts(), at=now), id="imp_0000000000005aaaaaaaaaa")
    await store.create(done, owner=me, at=now)
    # 6 and 7 belong to another replica: one still beating, one silent for too long.
    alive = replace(base.validating(), id="imp_0000000000006aaaaaaaaaa")
    await store.create(alive, owner="other", at=now)
    silent = replace(base.validating(), id="imp_0000000000007aaaaaaaaaa")
    await store.create(silent, owner="other", at=now - STALE_AFTER - timedelta(seconds=1))

    for hook in embedded.parts.on_start:
        await hook()
    await embedded.service.drain()

    async def status(n: int) -> ImportRecord:
        record = await store.get("acme", f"imp_000000000000{n}aaaaaaaaaa")
        assert record is not None
        return record

    for n in (1, 4):
        record = await status(n)
        assert record.status is ImportStatus.FAILED and record.errors[-1] == INTERRUPTED
        assert record.finished_at is not None
    for n, user in ((2, "alex"), (3, "bo")):
        record = await status(n)
        assert record.status is ImportStatus.COMPLETED, record
        assert counts(record) == (1, 1, 0, 0, 0)
        assert user in await known(embedded, "acme", user)
    assert sorted((e.user_id, e.event_id) for e in embedded.collector.users) == [
        ("alex", "imp_0000000000002aaaaaaaaaa:2"),
        ("bo", "imp_0000000000003aaaaaaaaaa:2"),
    ]
    assert (await status(5)).status is ImportStatus.COMPLETED
    assert (await status(6)).status is ImportStatus.VALIDATING
    assert (await status(7)).errors[-1] == STALE
    assert list(uploads.iterdir()) == []
    for hook in embedded.parts.on_stop:
        await hook()


async def test_shutdown_keeps_a_background_import_to_resume(tmp_path: Path) -> None:
    first = build_embedded(tmp_path)
    entered = asyncio.Event()

    async def stuck(events: Sequence[AnyEvent]) -> None:
        entered.set()
        await asyncio.Event().wait()

    first.bus.subscribe([USERS], stuck, group="projector")

    async def upload() -> AsyncIterator[bytes]:
        yield csv_bytes(HEADER, f"alex,{ALEX},")

    record = await first.service.submit(
        app_id="acme", filename="a.csv", chunks=upload(), options=ImportOptions()
    )
    await asyncio.wait_for(entered.wait(), timeout=5)
    running = await first.service.get("acme", record.id)
    assert running is not None and running.status is ImportStatus.IMPORTING
    for hook in first.parts.on_stop:
        await hook()
    stopped = await first.service.get("acme", record.id)
    assert stopped is not None and stopped.status is ImportStatus.IMPORTING
    first.db.close()

    second = build_embedded(tmp_path)
    for hook in second.parts.on_start:
        await hook()
    await second.service.drain()
    resumed = await second.service.get("acme", record.id)
    assert resumed is not None and resumed.status is ImportStatus.COMPLETED
    assert counts(resumed) == (1, 1, 0, 0, 0)
    assert [e.user_id for e in second.collector.users] == ["alex"]
    assert list((second.settings.data_dir / "uploads").iterdir()) == []
    for hook in second.parts.on_stop:
        await hook()
    second.db.close()


async def test_submit_spools_then_imports_in_the_background(embedded: Embedded) -> None:
    async def upload() -> AsyncIterator[bytes]:
        yield csv_bytes(HEADER, f"alex,{ALEX},")
        yield csv_bytes(f"bo,{BO},")

    record = await embedded.service.submit(
        app_id="acme", filename="C:\\Users\\me\\users.csv", chunks=upload(), options=ImportOptions()
    )
    assert record.status is ImportStatus.VALIDATING and record.filename == "users.csv"
    assert record.counts.total_rows == 2 and record.progress == VALIDATED_SHARE
    await embedded.service.drain()
    done = await embedded.service.get("acme", record.id)
    assert done is not None and done.status is ImportStatus.COMPLETED
    assert counts(done) == (2, 2, 0, 0, 0)
    assert list((embedded.settings.data_dir / "uploads").iterdir()) == []


async def test_an_import_past_its_time_budget_is_rejected_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    env = build_embedded(tmp_path)
    service = with_budget(env, timedelta(milliseconds=200))
    stalled = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield csv_bytes(HEADER, f"alex,{ALEX},Alex")
        await stalled.wait()  # the rest never comes
        yield b""

    record = await service.run_import(
        app_id="acme", filename="slow.csv", chunks=slow(), options=ImportOptions()
    )
    assert record.status is ImportStatus.REJECTED
    assert [issue.code for issue in record.errors] == ["time_budget_exceeded"]
    assert "longer than 0.2 seconds" in record.errors[0].message
    assert env.collector.batches == []
    env.db.close()


def with_budget(env: Embedded, budget: timedelta) -> ImportService:
    store = SqliteImportStore(env.db)
    return ImportService(
        store=store,
        registry=store,
        publisher=env.bus,
        spool=LocalUploadSpool(env.settings.data_dir / "uploads"),
        owner="budget-test",
        time_budget=budget,
    )
