"""Where a session reads stored notifications from: resume, gap fill and the welcome's last_seq.

The store implements this; unit tests use `MemoryHistory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from ..notification import Notification


@attrs.frozen
class HistoryPage:
    items: tuple[Notification, ...]  # seq ascending, all > the requested seq
    latest: int  # the user's newest seq (0 if none)
    oldest: int | None  # the oldest seq still kept for the user (None if none kept)


class History(Protocol):
    async def latest_seq(self, user_id: str) -> int: ...

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage: ...


class MemoryHistory:
    """An in-memory history with the same pruning rule as the stores (tests, benchmarks)."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._by_user: dict[str, list[Notification]] = {}
        self._latest: dict[str, int] = {}

    def append(self, note: Notification) -> None:
        kept = self._by_user.setdefault(note.user_id, [])
        kept.append(note)
        self._latest[note.user_id] = note.seq
        if len(kept) > self.keep:
            del kept[: len(kept) - self.keep]

    async def latest_seq(self, user_id: str) -> int:
        return self._latest.get(user_id, 0)

    async def latest_seqs(self, user_ids: Sequence[str]) -> dict[str, int]:
        return {user_id: self._latest[user_id] for user_id in user_ids if user_id in self._latest}

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        kept = self._by_user.get(user_id, [])
        items = tuple(n for n in kept if n.seq > after_seq)[:limit]
        return HistoryPage(
            items=items,
            latest=self._latest.get(user_id, 0),
            oldest=kept[0].seq if kept else None,
        )


class LatestSeqCache:
    """Each user's newest seq, kept by the single node that publishes them (no Redis).

    Every connect reads the latest seq for its welcome; serving it from memory saves a database
    round trip through a worker thread per connect. Values only ever rise, so a slow cold read
    can never overwrite a newer seq published meanwhile. Bounded: the oldest entries are
    dropped and simply read again.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seqs: dict[str, int] = {}

    def get(self, user_id: str) -> int | None:
        return self._seqs.get(user_id)

    def raise_to(self, user_id: str, seq: int) -> int:
        current = self._seqs.get(user_id)
        if current is None or seq > current:
            if current is None and len(self._seqs) >= self.capacity:
                del self._seqs[next(iter(self._seqs))]  # dicts keep insertion order
            self._seqs[user_id] = seq
            return seq
        return current


class CachedHistory:
    """A History whose latest_seq comes from a LatestSeqCache, falling back to the store."""

    def __init__(self, inner: History, cache: LatestSeqCache) -> None:
        self.inner = inner
        self.cache = cache

    async def latest_seq(self, user_id: str) -> int:
        cached = self.cache.get(user_id)
        if cached is not None:
            return cached
        return self.cache.raise_to(user_id, await self.inner.latest_seq(user_id))

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        page = await self.inner.since(user_id, after_seq, limit)
        self.cache.raise_to(user_id, page.latest)
        return page
