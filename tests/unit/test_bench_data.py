"""The generated data of bench.generate: deterministic, valid, with sane funnels and a Zipf skew."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from bench.doors import Holdback
from bench.ingest import partition_of
from bench.manifest import Manifest, Sampler
from bench.people import SCRIPTS, csv_file, person, user_rows
from bench.query_mix import KINDS, Pools
from bench.traffic import Audience, Sent, Traffic
from insights_contracts import parse_event
from insights_contracts.phone import check_e164
from insights_contracts.types import USER_ID_PATTERN

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def traffic(*, seed: int = 7, users: int = 2000, messages: int = 3000) -> Traffic:
    return Traffic(app_id="bench", seed=seed, users=users, messages=messages, now=NOW)


def test_the_same_seed_gives_the_same_users_and_file() -> None:
    first = csv_file(user_rows(7, 0, 300))
    person.cache_clear()
    assert csv_file(user_rows(7, 0, 300)) == first
    assert csv_file(user_rows(8, 0, 300)) != first


def test_users_are_valid_unique_and_written_in_several_scripts() -> None:
    people = [person(7, index) for index in range(3000)]
    assert len({p.user_id for p in people}) == len(people)
    assert all(re.fullmatch(USER_ID_PATTERN, p.user_id) for p in people)
    assert all(p.nickname is None or 0 < len(p.nickname) <= 80 for p in people)
    scripts = Counter(p.script for p in people if p.nickname)
    assert set(scripts) == set(SCRIPTS)
    assert 0.05 < sum(p.nickname is None for p in people) / len(people) < 0.25
    assert len({p.region for p in people}) >= 30
    for who, number in user_rows(7, 0, 200):
        assert check_e164(number) == number, (who.region, number)


def test_the_same_seed_gives_the_same_events() -> None:
    events = list(traffic().events())
    assert list(traffic().events()) == events
    assert list(traffic(seed=8).events()) != events
    assert traffic().template_events() == traffic().template_events()


def test_a_later_cohort_reaches_only_its_own_users_with_new_message_ids() -> None:
    """bench.growth grows an app by cohorts: users first_user.., a stream of their own."""
    first = Traffic(app_id="bench", seed=7, users=500, messages=800, now=NOW)
    later = Traffic(
        app_id="bench", seed=7, users=300, messages=800, now=NOW, stream=500, first_user=500
    )
    theirs = {person(7, index).user_id for index in range(500, 800)}
    events = list(later.events())
    assert {e["user_id"] for e in events if "user_id" in e} <= theirs
    assert len({e["user_id"] for e in events if "user_id" in e}) > 100
    ids = {e["message_id"] for e in first.events() if "message_id" in e}
    assert ids.isdisjoint(e["message_id"] for e in events if "message_id" in e)


def test_events_are_contract_events_in_time_order_and_none_after_now() -> None:
    stream = traffic()
    events = [*stream.template_events(), *stream.events()]
    for event in events:
        parse_event(event)
    notifications = [e for e in events if e["event_type"] != "template.upserted"]
    times = [datetime.fromisoformat(e["occurred_at"]) for e in notifications]
    assert times == sorted(times)
    assert times[0] >= stream.start and times[-1] < NOW
    first_seen: dict[str, str] = {}
    for event in notifications:
        first_seen.setdefault(event["message_id"], event["event_type"])
    assert set(first_seen.values()) == {"notification.sent"}


def test_every_message_uses_a_template_version_defined_before_it() -> None:
    stream = traffic()
    defined = {
        (e["template"]["key"], e["template"]["version"]): e["occurred_at"]
        for e in stream.template_events()
    }
    for event in stream.events():
        if event["event_type"] == "notification.sent":
            ref = event["template"]
            assert defined[(ref["key"], ref["version"])] < event["occurred_at"]
            assert event["channel"] in {"in_app", "push", "sms", "alimtalk", "whatsapp", "email"}


def test_funnel_shares_are_within_sane_bounds() -> None:
    heard: list[Sent] = []
    for _ in traffic(messages=6000).events(heard.append):
        pass
    statuses = Counter(sent.status for sent in heard)
    share = {name: count / len(heard) for name, count in statuses.items()}
    assert 0.02 < share["failed"] < 0.07
    assert 0.80 < share["delivered"] + share["read"] + share["clicked"] < 0.95
    assert 0.30 < share["read"] + share["clicked"] < 0.60
    assert 0.05 < share["clicked"] < 0.20
    assert 0.02 < sum(sent.responded for sent in heard) / len(heard) < 0.09
    assert len({sent.channel for sent in heard}) == 6


def test_a_few_users_get_many_messages_and_most_get_few() -> None:
    users, messages = 5000, 20_000
    heard: list[Sent] = []
    for _ in traffic(users=users, messages=messages).events(heard.append):
        pass
    per_user = Counter(sent.user_id for sent in heard)
    counts = sorted([*per_user.values(), *[0] * (users - len(per_user))], reverse=True)
    mean = messages / users
    assert counts[0] > 10 * mean
    assert sum(counts[: users // 100]) > 0.10 * messages
    assert counts[users // 2] <= mean


def test_the_audience_is_a_permutation_of_the_users() -> None:
    audience = Audience(1000, exponent=0.8, seed=7)
    assert sorted(audience.index_of(rank) for rank in range(1000)) == list(range(1000))
    assert audience.share(0) > audience.share(10) > audience.share(999)


def test_holdback_keeps_each_partitions_order_and_ends_with_its_last_event() -> None:
    events = list(traffic(messages=400).events())
    holdback = Holdback(partitions=6, app="bench")
    passed = [out for event in events if (out := holdback.swap(event)) is not None]
    sent = passed + holdback.rest()
    assert sorted(map(id, sent)) == sorted(map(id, events))

    def by_partition(stream: list[dict[str, object]]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for event in stream:
            found.setdefault(partition_of(str(event["user_id"]), 6), []).append(id(event))
        return found

    assert by_partition(sent) == by_partition(events)
    assert {id(e) for e in holdback.rest()} == {ids[-1] for ids in by_partition(events).values()}


def test_the_sample_and_the_request_pools_are_deterministic() -> None:
    def manifest() -> Manifest:
        sampler = Sampler(7)
        for who, number in user_rows(7, 0, 1500):
            sampler.user(who, number)
        for _ in traffic(users=1500).events(sampler.message):
            pass
        return Manifest(
            seed=7,
            users=1500,
            messages=3000,
            events=0,
            days=90,
            zipf=0.8,
            now="2026-03-01T12:00:00Z",
            start="2025-12-01T12:00:00Z",
            templates=["order_shipped", "otp_login"],
            sample=sampler.result(heavy=["u_100001"]),
            figures={},
            deployment=None,
        )

    first, again = manifest(), manifest()
    assert first.sample == again.sample
    prefixes = first.sample["nickname_prefixes"]
    assert sum(bool(found) for found in prefixes.values()) >= 4
    assert all(2 <= len(p) <= 4 for found in prefixes.values() for p in found)
    pools = Pools(first, seed=1, size=20).build()
    assert set(pools) == {kind.name for kind in KINDS} - {"messages_page2", "message_of_user"}
    again_pools = Pools(again, seed=1, size=20).build()
    assert [(s.path, s.params) for specs in pools.values() for s in specs] == [
        (s.path, s.params) for specs in again_pools.values() for s in specs
    ]
    # A message read as its user's: only those whose user was found, the same message asked.
    messages = pools["message"][:3]
    owners = {messages[0].subject: "alex", messages[2].subject: "bo"}
    theirs = Pools(first, seed=1, size=20).of_their_users(messages, owners)
    assert [(s.kind, s.subject, s.path) for s in theirs] == [
        ("message_of_user", m.subject, f"/api/v1/users/{owners[m.subject]}/messages/{m.subject}")
        for m in (messages[0], messages[2])
    ]
