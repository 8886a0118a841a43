"""The single node's seq cache: each user's newest seq in memory, so a connect's welcome needs no
database round trip."""

from __future__ import annotations

from collections.abc import Sequence

from .history import HistoryPage, NotificationHistory


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
    """A NotificationHistory whose latest_seq comes from a LatestSeqCache (else the store)."""

    def __init__(self, inner: NotificationHistory, cache: LatestSeqCache) -> None:
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

    async def latest_seqs(self, user_ids: Sequence[str]) -> dict[str, int]:
        """From the store, always: the position check must see what was committed."""
        return await self.inner.latest_seqs(user_ids)
