"""Token buckets per address and per key: what they let through, when, and how much they keep."""

from __future__ import annotations

import pytest

from insights_common.http.rate_limit import RateLimited, RateLimits, RateLimitSettings, TokenBuckets

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_one_per_interval() -> None:
    clock = Clock()
    buckets = TokenBuckets(burst=3, per_second=0.5, max_tracked=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 1.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0
    # another name has its own bucket
    assert buckets.take("b") == 0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(burst=2, per_second=1, max_tracked=10, clock=clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") > 0 for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_by_forgetting_the_least_recently_used() -> None:
    clock = Clock()
    buckets = TokenBuckets(burst=1, per_second=0.001, max_tracked=100, clock=clock)
    buckets.take("attacker")
    for n in range(10_000):
        buckets.take(f"spoofed-{n}")
        if n % 50 == 0:
            assert buckets.take("attacker") > 0  # a name in use stays remembered
    assert len(buckets) == 100


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBuckets(burst=0, per_second=1, max_tracked=1)


def limits(clock: Clock, **overrides: object) -> RateLimits:
    settings = RateLimitSettings(
        failed_auth_burst=3, failed_auth_per_minute=6, key_burst=2, key_per_second=1
    ).model_copy(update=overrides)
    return RateLimits(settings, clock=clock)


def test_failed_authentications_are_limited_per_address() -> None:
    clock = Clock()
    guard = limits(clock)
    for _ in range(3):
        guard.check_address("198.51.100.1")
        guard.failed("198.51.100.1")
    with pytest.raises(RateLimited) as refused:
        guard.check_address("198.51.100.1")
    assert refused.value.retry_after == 10  # 6 a minute: one every 10 s
    guard.check_address("198.51.100.2")
    clock.now += 10
    guard.check_address("198.51.100.1")


def test_requests_are_limited_per_key() -> None:
    clock = Clock()
    guard = limits(clock)
    guard.use_key("acme/uik_a")
    guard.use_key("acme/uik_a")
    with pytest.raises(RateLimited) as refused:
        guard.use_key("acme/uik_a")
    assert refused.value.retry_after == 1
    guard.use_key("acme/uik_b")


def test_limits_can_be_turned_off() -> None:
    guard = limits(Clock(), enabled=False)
    for _ in range(100):
        guard.failed("198.51.100.1")
        guard.use_key("acme/uik_a")
    guard.check_address("198.51.100.1")
