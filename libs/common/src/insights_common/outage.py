"""Outages of the servers a service depends on: one error for them, bounded waits, waiting out.

A door that cannot reach Kafka or PostgreSQL within a bound answers 503 with `Retry-After`
(`insights_common.http.conventions` maps `DependencyUnavailable`), never a 500 and never a
request that hangs; a consumer or a background job takes the same error as an outage to wait
out, never as a reason to dead-letter or to fail what was already accepted. The adapters raise
it: they alone know which of their errors pass (a refused connection, a restarting server, a
timeout) and which say something is wrong with the request itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
"""Seconds a door waits for one call to Kafka or PostgreSQL before it answers 503."""
DEFAULT_RETRY_AFTER = 5
"""Seconds a refused caller is asked to wait (`Retry-After`)."""
WAIT_DELAYS = (0.5, 1.0, 2.0, 5.0)


class DependencyUnavailable(Exception):  # noqa: N818 - a state of a server, not a failure of ours
    """A server this work needs did not answer in time, or answered that it cannot now.

    `dependency` names it as an operator knows it ("Kafka", "PostgreSQL", "OpenSearch").
    """

    def __init__(
        self, dependency: str, detail: str, *, retry_after: int = DEFAULT_RETRY_AFTER
    ) -> None:
        super().__init__(f"{dependency} is unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail
        self.retry_after = retry_after


# Control characters written as escapes: a request's path is decoded (a user id may hold
# "%0A"), and a raw line break would start a forged line in a plain-text log.
_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


class RefusalLog:
    """Warns of the requests refused for an outage, without flooding the log while one lasts:
    the first refusal for a dependency is logged with its cause, then one line every `every`
    seconds with how many more were refused meanwhile."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}  # dependency -> when a line was last written
        self._since: dict[str, int] = {}  # dependency -> refusals not yet written

    def refused(self, outage: DependencyUnavailable, where: str) -> None:
        now = self._clock()
        name = outage.dependency
        count = self._since.get(name, 0) + 1
        last = self._last.get(name)
        if last is not None and now - last < self._every:
            self._since[name] = count
            return
        self._last[name], self._since[name] = now, 0
        cause = outage.__cause__
        # The cause, unless the outage's own message already says it.
        told = cause is None or str(cause) in str(outage)
        because = "" if told else f" ({type(cause).__name__}: {cause})"
        log.warning(
            "refused %d request(s) with 503, the last %s: %s%s",
            count,
            where.translate(_ESCAPED),
            outage,
            because,
        )


@asynccontextmanager
async def bounded(
    dependency: str,
    seconds: float | None,
    *,
    passing: tuple[type[BaseException], ...] = (),
) -> AsyncIterator[None]:
    """Run the block for at most `seconds` (None: no limit); a timeout, or one of the `passing`
    errors (those of the dependency that say it is down or restarting), becomes
    `DependencyUnavailable`.

    The caller is asked to come back after about the bound, at least a second.
    """
    retry_after = DEFAULT_RETRY_AFTER if seconds is None else max(1, math.ceil(seconds))
    try:
        async with asyncio.timeout(seconds):
            yield
    except DependencyUnavailable:
        raise
    except TimeoutError as error:
        raise DependencyUnavailable(
            dependency,
            "no answer in time" if seconds is None else f"no answer within {seconds:g} s",
            retry_after=retry_after,
        ) from error
    except passing as error:
        raise DependencyUnavailable(
            dependency, f"{type(error).__name__}: {error}", retry_after=retry_after
        ) from error


async def waiting_out(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    limit: float,
    delays: tuple[float, ...] = WAIT_DELAYS,
) -> T:
    """Call `attempt` until it returns, waiting with backoff while it raises
    `DependencyUnavailable`, for up to `limit` seconds; then the last outage is raised.

    For work that was accepted already (an import answered 202): an outage delays it, and only
    one longer than `limit` fails it. Any other error is raised at once.
    """
    deadline = time.monotonic() + limit
    failures = 0
    while True:
        try:
            return await attempt()
        except DependencyUnavailable as outage:
            delay = delays[min(failures, len(delays) - 1)]
            failures += 1
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s waits %.1f s for %s (%d)", what, delay, outage, failures)
            await asyncio.sleep(delay)


async def patiently(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    limit: float,
    final: tuple[type[Exception], ...] = (),
) -> T:
    """Retry `attempt` with backoff for up to `limit` seconds: a backing service may be starting.
    The errors of `final` say what no wait mends (a store that cannot take this version's
    schema): they are raised at once."""
    deadline = time.monotonic() + limit
    delay = 0.25
    while True:
        try:
            return await attempt()
        except final:
            raise
        except Exception as error:
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"{what} did not answer in {limit:g} s: {error}") from error
            log.info("waiting for %s (%s)", what, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
