"""The platforms' own callbacks (docs/sources.md): authenticate by the platform's scheme, read
its body, translate it by its table, and ingest the events like any webhook's.

Headers first: `authenticate` checks what the headers alone can show (a platform we take, a
well-formed credential, a timestamp within the tolerance, a secret configured for the app), so a
caller who cannot be the platform is refused before its body is read; `take` checks the body
against the credential, then reads and ingests it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import groupby

from insights_common.clock import utc_now
from insights_common.service import Recurring
from insights_common.signatures import Credential, MalformedSignature
from insights_common.sources import stored_user_field
from notification_ingest.domain.directory import PhoneEntry
from notification_ingest.domain.errors import Unauthenticated
from notification_ingest.domain.model import Rejection
from notification_ingest.domain.sources import PLATFORMS, Platform
from notification_ingest.domain.sources.model import (
    Callback,
    Read,
    SourceRequest,
    callback_json,
    callback_of,
)
from notification_ingest.domain.sources.translation import Ignored, translate
from notification_ingest.ports import PendingCallbacks, PhoneDirectory, SourceSecrets
from notification_ingest.service import FORGET_EVERY, IngestService

KEPT = "Kept: it is taken as soon as a user with its phone number is imported."


class UnknownPlatform(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class SourceSender:
    """A platform's request whose headers passed: its credential has yet to match the body."""

    app_id: str
    platform: Platform
    credential: Credential
    secret: str
    request: SourceRequest


@dataclass(frozen=True, slots=True)
class CallbackRefusal:
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class SourceResult:
    callbacks: int
    accepted: int
    duplicates: int
    ignored: tuple[Ignored, ...]
    refused: tuple[CallbackRefusal, ...]


def not_signed(platform: Platform) -> str:
    return (
        f"The request is not signed by {platform.table.title} for this app: check the"
        f" {platform.credential_name} given to 'insights sources add {platform.table.name}' and the"
        " URL the platform calls (docs/sources.md)."
    )


class SourceService:
    def __init__(
        self,
        *,
        ingest: IngestService,
        secrets: SourceSecrets,
        phones: PhoneDirectory,
        pending: PendingCallbacks,
        tolerance: timedelta,
        keep_for: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """`keep_for`: how long a callback waits for its number's user (the dedup window, after
        which it would be taken again anyway); None keeps it for ever."""
        self._ingest = ingest
        self._secrets = secrets
        self._phones = phones
        self._pending = pending
        self._keep_for = keep_for
        self._forgetting = Recurring(
            self.forget_old_callbacks, every=FORGET_EVERY, name="forget old kept callbacks"
        )
        self._tolerance = tolerance
        self._clock = clock

    @staticmethod
    def platform(name: str) -> Platform:
        platform = PLATFORMS.get(name)
        if platform is None:
            raise UnknownPlatform(
                f"User Insights takes no callbacks from '{name}'; it takes: {', '.join(PLATFORMS)}."
            )
        return platform

    async def authenticate(
        self,
        *,
        platform: str,
        app_id: str,
        headers: dict[str, str],
        path: str,
        query: str,
        public_origin: str | None,
    ) -> SourceSender:
        """`public_origin`: where the platform calls this deployment (PUBLIC_BASE_URL), never
        the request's Host. Raises UnknownPlatform or Unauthenticated."""
        chosen = self.platform(platform)
        now = self._clock()
        request = SourceRequest(
            headers=headers, path=path, query=query, public_url=public_origin, received_at=now
        )
        try:
            credential = chosen.credential(request)
        except MalformedSignature as exc:
            raise Unauthenticated(
                f"{exc} ({chosen.table.title}'s scheme: docs/sources.md)"
            ) from exc
        if credential.timestamp is not None:
            skew = now.timestamp() - credential.timestamp
            if abs(skew) > self._tolerance.total_seconds():
                when = "old" if skew > 0 else "ahead of this server's clock"
                raise Unauthenticated(
                    f"{chosen.table.title}'s signature is {abs(skew):.0f} s {when}; at most"
                    f" {self._tolerance.total_seconds():.0f} s is taken (replay protection)."
                )
        source = await self._secrets.source(app_id, chosen.table.name)
        if source is None:
            # The answer of a wrong signature: a caller learns nothing of which apps exist.
            raise Unauthenticated(not_signed(chosen))
        return SourceSender(
            app_id=app_id,
            platform=chosen,
            credential=credential,
            secret=source.secret,
            request=replace(
                request, user_field=stored_user_field(chosen.table.name, source.user_field)
            ),
        )

    async def take(self, sender: SourceSender, body: bytes) -> SourceResult:
        """Raises Unauthenticated, MalformedBody or BatchTooLarge, and then nothing is taken."""
        if not sender.credential.matches((sender.secret,), body):
            raise Unauthenticated(not_signed(sender.platform))
        reads = await self._named(sender.app_id, sender.platform.read(body, sender.request))
        translation = translate(sender.platform.table, reads, app_id=sender.app_id)
        waiting = {
            r.index: read
            for r in translation.refused
            if isinstance(read := reads[r.index], Callback) and read.user_id is None and read.phone
        }
        await self._pending.keep(
            sender.app_id,
            sender.platform.table.name,
            [(read.phone or "", callback_json(read)) for read in waiting.values()],
        )
        refused = [
            CallbackRefusal(r.index, f"{r.reason} {KEPT}" if r.index in waiting else r.reason)
            for r in translation.refused
        ]
        if waiting:
            # A user imported between the lookup and the keep: the directory's consumer may
            # have looked for kept callbacks before this one was kept; look again after.
            phones = sorted({read.phone or "" for read in waiting.values()})
            found = await self._phones.users_by_phone(sender.app_id, phones)
            await self.retake([PhoneEntry(sender.app_id, u, p) for p, u in found.items()])
        result = await self._ingest.ingest(app_id=sender.app_id, items=translation.events)
        refused.extend(
            CallbackRefusal(translation.origins[rejection.index], _summary(rejection))
            for rejection in result.rejected
        )
        # A callback whose two events are refused for the same value is listed once.
        refused = list({r.index: r for r in reversed(refused)}.values())
        refused.sort(key=lambda refusal: refusal.index)
        return SourceResult(
            callbacks=len(reads),
            accepted=result.accepted,
            duplicates=result.duplicates,
            ignored=tuple(translation.ignored),
            refused=tuple(refused),
        )

    async def start(self) -> None:
        if self._keep_for is not None:
            await self._forgetting.start()

    async def stop(self) -> None:
        await self._forgetting.stop()

    async def forget_old_callbacks(self) -> int:
        if self._keep_for is None:
            return 0
        return await self._pending.forget(before=self._clock() - self._keep_for)

    async def retake(self, entries: Sequence[PhoneEntry]) -> int:
        """Take the kept callbacks waiting for the numbers users now have; answer how many
        events that made. Each is taken once: it is dropped after the publish, or when the
        contract refuses what it makes (sending it again would not change that)."""
        taken = 0
        by_app: defaultdict[str, dict[str, str]] = defaultdict(dict)
        for entry in entries:
            by_app[entry.app_id][entry.phone] = entry.user_id
        for app_id, users in by_app.items():
            waiting = await self._pending.waiting(app_id, sorted(users))
            for name, group in groupby(waiting, key=lambda kept: kept[1]):
                rows = list(group)
                reads: list[Read] = []
                for _, _, data in rows:
                    callback = callback_of(data)
                    reads.append(replace(callback, user_id=users.get(callback.phone or "")))
                translation = translate(self.platform(name).table, reads, app_id=app_id)
                result = await self._ingest.ingest(app_id=app_id, items=translation.events)
                taken += result.accepted
                await self._pending.drop([kept_id for kept_id, _, _ in rows])
        return taken

    async def forget(self, app_id: str, phones: Sequence[str]) -> None:
        """Drop the callbacks kept for the numbers of a user who was erased."""
        await self._pending.erase(app_id, phones)

    async def _named(self, app_id: str, reads: list[Read]) -> list[Read]:
        """The callbacks, those naming only a phone number given the user who has it."""
        phones = sorted(
            {r.phone for r in reads if isinstance(r, Callback) and r.user_id is None and r.phone}
        )
        if not phones:
            return reads
        users = await self._phones.users_by_phone(app_id, phones)
        return [
            replace(r, user_id=users.get(r.phone))
            if isinstance(r, Callback) and r.user_id is None and r.phone
            else r
            for r in reads
        ]


def _summary(rejection: Rejection) -> str:
    return f"The event it makes is refused: {rejection.summary()}"
