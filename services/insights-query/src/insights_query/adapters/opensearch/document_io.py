"""The store's requests to the cluster: real-time gets, conditional bulk writes, searches.

Every read and write of a kind goes through its alias (`index`). A bulk write is conditional
per document (`_Write.current`): those that lost a race come back for the fold to run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import HTTP_EXCEPTIONS, TransportError

from insights_common.outage import DependencyUnavailable
from insights_query.adapters.opensearch.documents import Doc
from insights_query.adapters.opensearch.errors import DEPENDENCY, outages, passing_item
from insights_query.adapters.opensearch.mappings import Kind, alias_name

# aiohttp warns from 1 MiB on that a body written in one piece may stall the event loop.
_BULK_BYTES = 1_000_000
_PAGE = 1000


class BulkWriteError(RuntimeError):
    """Some documents of a bulk write failed for a reason other than a lost race."""

    def __init__(self, failures: list[Mapping[str, Any]]) -> None:
        shown = "; ".join(
            f"{f.get('_index')}/{f.get('_id')}: {f.get('status')} {f.get('error')}"
            for f in failures[:5]
        )
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} document writes failed: {shown}{more}")
        self.failures = failures


class DocumentReadError(RuntimeError):
    """A document could not be read (a shard failure, a missing index behind the alias)."""


@dataclass(frozen=True, slots=True)
class _Current:
    source: Doc
    seq_no: int
    primary_term: int


@dataclass(frozen=True, slots=True)
class _Write:
    kind: Kind
    key: str
    doc: Doc | None  # None deletes the document
    current: _Current | None


class DocumentIO:
    """The cluster client of one prefix: what the reader and the projection both send."""

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        prefix: str = "insights",
        refresh: bool = False,
    ) -> None:
        """`refresh`: whether a write returns only once searchable, refreshing at once (a
        segment per write: for tests). The projector's writes return once indexed; its commits
        wait for `OpenSearchInsightsStore.visible`."""
        self._client = client
        self._prefix = prefix
        self._refresh = refresh

    def index(self, kind: Kind) -> str:
        """The alias every read and write of `kind` goes through."""
        return alias_name(self._prefix, kind)

    async def _mget(self, kind: Kind, keys: list[str]) -> dict[str, _Current]:
        found: dict[str, _Current] = {}
        for start in range(0, len(keys), _PAGE):
            response = await self._client.mget(
                index=self.index(kind), body={"ids": keys[start : start + _PAGE]}
            )
            for doc in cast(list[dict[str, Any]], response["docs"]):
                if "error" in doc:
                    # No event is at fault for a document that cannot be read now.
                    raise DependencyUnavailable(DEPENDENCY, f"{doc.get('_id')}: {doc['error']}")
                if doc["found"]:
                    found[doc["_id"]] = _Current(
                        source=doc["_source"],
                        seq_no=doc["_seq_no"],
                        primary_term=doc["_primary_term"],
                    )
        return found

    async def _bulk(self, writes: list[_Write]) -> list[tuple[Kind, str]]:
        """Write conditionally; answer the (kind, key) of the writes that lost a race.

        The writes go in requests of at most _BULK_BYTES, sent together: the cluster indexes
        them in parallel, and the HTTP client writes no body large enough to stall the loop.
        """
        if not writes:
            return []
        chunks: list[tuple[bytearray, list[_Write]]] = []
        for write in writes:
            target: Doc = {"_index": self.index(write.kind), "_id": write.key}
            if write.current is None:
                action: Doc = {"create": target}
            else:
                target |= {
                    "if_seq_no": write.current.seq_no,
                    "if_primary_term": write.current.primary_term,
                }
                action = {"index": target} if write.doc is not None else {"delete": target}
            line = orjson.dumps(action) + b"\n"
            if write.doc is not None:
                line += orjson.dumps(write.doc) + b"\n"
            if not chunks or len(chunks[-1][0]) + len(line) > _BULK_BYTES:
                chunks.append((bytearray(), []))
            chunks[-1][0].extend(line)
            chunks[-1][1].append(write)
        params = {"refresh": "true"} if self._refresh else {}
        responses = await asyncio.gather(
            *(self._client.bulk(body=bytes(body), params=params) for body, _ in chunks)
        )
        lost: list[tuple[Kind, str]] = []
        failures: list[Mapping[str, Any]] = []
        for (_, sent), response in zip(chunks, responses, strict=True):
            items = cast(list[dict[str, Any]], response["items"])
            for write, item in zip(sent, items, strict=True):
                (result,) = item.values()
                error = result.get("error")
                if error is None:
                    continue
                if (
                    result["status"] == 409
                    and error.get("type") == "version_conflict_engine_exception"
                ):
                    lost.append((write.kind, write.key))
                else:
                    failures.append(result)
        if any(passing_item(f.get("status"), f.get("error")) for f in failures):
            # The batch is retried whole: what was written is met again as nothing to change.
            raise DependencyUnavailable(DEPENDENCY, str(BulkWriteError(failures)))
        if failures:
            raise BulkWriteError(failures)
        return lost

    async def _get_source(self, kind: Kind, key: str, fields: list[str]) -> Doc | None:
        """The named fields of one document, read in real time (no refresh needed).

        Only those fields: a user document also holds every user.upserted it was folded from,
        and a message document its raw events, which no read needs.
        """
        async with outages():
            response = await self._client.mget(
                index=self.index(kind),
                body={"ids": [key]},
                params={"_source_includes": ",".join(fields)},
            )
        (doc,) = cast(list[dict[str, Any]], response["docs"])
        if "error" in doc:
            if passing_item(doc.get("status"), doc["error"]):
                raise DependencyUnavailable(DEPENDENCY, f"{doc.get('_id')}: {doc['error']}")
            raise DocumentReadError(f"{doc.get('_id')}: {doc['error']}")
        return cast(Doc, doc["_source"]) if doc["found"] else None

    async def _search(self, kind: Kind, body: Doc) -> dict[str, Any]:
        async with outages():
            response = await self._client.search(index=self.index(kind), body=body)
        return cast(dict[str, Any], response)

    async def _hits(self, kind: Kind, body: Doc) -> list[dict[str, Any]]:
        response = await self._search(kind, body)
        return cast(list[dict[str, Any]], response["hits"]["hits"])

    async def _multi_hits(self, kind: Kind, bodies: Sequence[Doc]) -> list[list[dict[str, Any]]]:
        """The hits of each search, sent together as one msearch; a failed one raises as it
        would have alone."""
        answers = await self._multi_search(kind, bodies)
        return [cast(list[dict[str, Any]], answer["hits"]["hits"]) for answer in answers]

    async def _multi_search(self, kind: Kind, bodies: Sequence[Doc]) -> list[dict[str, Any]]:
        """The answer of each search, sent together as one msearch; a failed one raises as it
        would have alone."""
        if not bodies:
            return []
        header = {"index": self.index(kind)}
        async with outages():
            response = await self._client.msearch(
                body=[line for b in bodies for line in (header, b)]
            )
            answers = cast(list[dict[str, Any]], response["responses"])
            for answer in answers:
                if "error" in answer:
                    status = int(answer.get("status", 500))
                    error = answer["error"]
                    reason = error.get("type", "") if isinstance(error, dict) else str(error)
                    raise HTTP_EXCEPTIONS.get(status, TransportError)(status, reason, answer)
        return answers
