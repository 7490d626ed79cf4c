"""Rate limits of a serving process: failed authentication per client address, and requests per
API key.

Each limit is a token bucket per name (an address, a key id): it holds up to `burst` tokens and
gains `per_second` of them every second; a request takes one, and finds the bucket empty when
the caller went faster than that for longer than the burst lasts. The answer is then a 429
problem with `Retry-After`, the seconds until a token is back.

Buckets live in memory, at most `max_tracked` per limit: the least recently used go first, so
callers inventing addresses or keys cannot grow it. A full bucket holds nothing worth keeping,
so forgetting one gives nobody more than a fresh bucket would.

Any door that authenticates (a bearer key, a webhook signature) counts its failures in the same
per-address bucket (`RateLimits.check_address` before the work, `RateLimits.failed` after a
failure), so a brute force meets one limit whichever door it tries.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RateLimitSettings(BaseSettings):
    """`INSIGHTS_RATE_LIMIT_*`: on by default, with limits no honest client reaches."""

    model_config = SettingsConfigDict(env_prefix="INSIGHTS_RATE_LIMIT_", extra="ignore")

    enabled: bool = True
    failed_auth_burst: int = Field(default=50, ge=1)
    """Failed authentications one client address may make at once..."""
    failed_auth_per_minute: float = Field(default=60.0, gt=0)
    """...and then per minute."""
    key_burst: int = Field(default=2_000, ge=1)
    """Requests one API key may make at once..."""
    key_per_second: float = Field(default=1_000.0, gt=0)
    """...and then per second."""
    max_tracked: int = Field(default=100_000, ge=1)
    """Most addresses (and, apart, keys) tracked at a time: about 260 bytes each, 25 MiB at
    100,000 (measured with tracemalloc on IPv6 addresses)."""


class RateLimited(Exception):  # noqa: N818 - what the caller is
    """The caller went over a limit; `retry_after` whole seconds until it may try again."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


class TokenBuckets:
    """A token bucket per name, at most `max_tracked` of them (least recently used go first)."""

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        max_tracked: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_second <= 0 or max_tracked < 1:
            raise ValueError(
                f"a token bucket needs burst >= 1, per_second > 0 and max_tracked >= 1 "
                f"(got {burst}, {per_second}, {max_tracked})"
            )
        self._burst = float(burst)
        self._rate = per_second
        self._max = max_tracked
        self._clock = clock
        # name -> (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, name: str, now: float) -> float:
        entry = self._buckets.get(name)
        if entry is None:
            return self._burst
        # A caller held back stays the most recently used: churning other names past
        # max_tracked must not give it a fresh bucket.
        self._buckets.move_to_end(name)
        tokens, at = entry
        return min(self._burst, tokens + (now - at) * self._rate)

    def wait(self, name: str) -> float:
        """Seconds until `name` has a token (0 when it has one now); takes nothing."""
        tokens = self._tokens(name, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self._rate

    def take(self, name: str) -> float:
        """Take a token: 0 when there was one, else the seconds until there is (none taken)."""
        now = self._clock()
        tokens = self._tokens(name, now)
        if tokens < 1:
            return (1 - tokens) / self._rate
        self._buckets[name] = (tokens - 1, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return 0.0


class RateLimits:
    """The limits of one serving process, shared by every door it serves."""

    def __init__(
        self, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = settings.enabled
        self._failures = TokenBuckets(
            burst=settings.failed_auth_burst,
            per_second=settings.failed_auth_per_minute / 60,
            max_tracked=settings.max_tracked,
            clock=clock,
        )
        self._keys = TokenBuckets(
            burst=settings.key_burst,
            per_second=settings.key_per_second,
            max_tracked=settings.max_tracked,
            clock=clock,
        )

    def check_address(self, address: str) -> None:
        """Raise RateLimited when `address` has used up its failed authentications."""
        if self.enabled and (wait := self._failures.wait(address)) > 0:
            raise RateLimited(
                f"Too many failed authentications from {address}", _whole_seconds(wait)
            )

    def failed(self, address: str) -> None:
        """Count a failed authentication from `address`."""
        if self.enabled:
            self._failures.take(address)

    def use_key(self, key_id: str) -> None:
        """Count a request made with the API key `key_id`; RateLimited when over its limit."""
        if self.enabled and (wait := self._keys.take(key_id)) > 0:
            raise RateLimited("Too many requests with this API key", _whole_seconds(wait))


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def client_address(request: Request) -> str:
    """The caller's address as the server saw it (behind a trusted proxy, from its
    X-Forwarded-For: see HttpSettings.trusted_proxies)."""
    return request.client.host if request.client else "unknown"


def rate_limits(request: Request) -> RateLimits:
    """The limits of the process serving `request`: those its host installed
    (`install_http_guards`), else ones with the default settings, made once for the app."""
    state = request.app.state
    limits: RateLimits | None = getattr(state, "rate_limits", None)
    if limits is None:
        limits = state.rate_limits = RateLimits(RateLimitSettings())
    return limits
