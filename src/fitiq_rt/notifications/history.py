"""A user's stored notifications, as sockets read them: resume, gap fill, the welcome's
last_seq, and the position check's newest seqs.

The store implements `NotificationHistory` (the same class as the meal store, so a finish and
its notification commit in one transaction); unit tests and benchmarks use `MemoryHistory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from .value import Notification


@attrs.frozen
class HistoryPage:
    items: tuple[Notification, ...]  # seq ascending, all > the requested seq
    latest: int  # the user's newest seq (0 if none)
    oldest: int | None  # the oldest seq still kept for the user (None if none kept)


class NotificationHistory(Protocol):
    async def latest_seq(self, user_id: str) -> int: ...

    async def latest_seqs(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Each user's newest seq in one query (users with none are left out)."""
        ...

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
