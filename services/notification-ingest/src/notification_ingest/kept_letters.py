"""The platforms' kept callbacks as `insights dlq` lists and replays them.

A callback naming only a phone number nobody of the app has is kept (SourceService); it is taken
by itself as soon as a user with that number is imported. Listed beside the topics' dead letters
(`--topic sources`, ids `kept:<n>`), an operator sees what waits and why, and a replay takes
those whose number now names a user (the others stay kept).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from insights_common.clock import rfc3339
from insights_common.dead_letters import KEPT_CALLBACKS, KEPT_PREFIX, DeadLetter, Listing, Replay
from notification_ingest.domain.directory import PhoneEntry
from notification_ingest.domain.sources.model import callback_of
from notification_ingest.ports import KeptCallback, PendingCallbacks, PhoneDirectory
from notification_ingest.source_service import SourceService

CONSUMER = "notification-ingest sources"
REPLAY_LIMIT = 100_000
"""Most kept callbacks one `--all` replay looks at."""


class KeptCallbackLetters:
    """Implements insights_common.dead_letters.DeadLetterBox over the kept callbacks."""

    def __init__(
        self, *, pending: PendingCallbacks, phones: PhoneDirectory, sources: SourceService
    ) -> None:
        self._pending = pending
        self._phones = phones
        self._sources = sources

    async def listing(self, *, topic: str | None, limit: int) -> Listing:
        kept, total = await self._pending.kept(ids=None, limit=limit)
        return Listing(letters=[_letter(k) for k in kept], total=total, pending=total)

    async def replay(self, *, topic: str | None, ids: Sequence[str] | None) -> Replay:
        wanted: list[int] | None = None
        unknown: list[str] = []
        if ids is not None:
            wanted = []
            for letter_id in ids:
                number = letter_id.removeprefix(KEPT_PREFIX)
                if letter_id.startswith(KEPT_PREFIX) and number.isdigit():
                    wanted.append(int(number))
                else:
                    unknown.append(letter_id)
        kept, _ = await self._pending.kept(
            ids=wanted, limit=REPLAY_LIMIT if wanted is None else max(len(wanted), 1)
        )
        if wanted is not None:
            found_ids = {k.id for k in kept}
            unknown.extend(f"{KEPT_PREFIX}{n}" for n in wanted if n not in found_ids)
        by_app: defaultdict[str, list[KeptCallback]] = defaultdict(list)
        for callback in kept:
            by_app[callback.app_id].append(callback)
        replayed: list[DeadLetter] = []
        entries: list[PhoneEntry] = []
        for app_id, callbacks in by_app.items():
            users = await self._phones.users_by_phone(app_id, sorted({c.phone for c in callbacks}))
            entries.extend(PhoneEntry(app_id, user, phone) for phone, user in users.items())
            replayed.extend(_letter(c) for c in callbacks if c.phone in users)
        await self._sources.retake(entries)
        return Replay(replayed=replayed, unknown=unknown, still_kept=len(kept) - len(replayed))


def _letter(kept: KeptCallback) -> DeadLetter:
    hint = callback_of(kept.callback).user_hint
    return DeadLetter(
        id=f"{KEPT_PREFIX}{kept.id}",
        topic=KEPT_CALLBACKS,
        key=f"{kept.app_id}:{kept.platform}".encode(),
        value=kept.callback,
        error=(
            f"{kept.platform}: no user of app '{kept.app_id}' has the number {kept.phone} yet;"
            f" kept until one is imported. {hint}"
        ).strip(),
        consumer=CONSUMER,
        failed_at=rfc3339(kept.kept_at),
        replayed=False,
    )
