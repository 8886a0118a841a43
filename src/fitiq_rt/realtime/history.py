"""Where a session reads stored notifications from: resume, gap fill and the welcome's last_seq.

The store implements this; unit tests use `MemoryHistory`.
"""

from __future__ import annotations

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

    async def since(self, user_id: str, after_seq: int, limit: int) -> HistoryPage:
        kept = self._by_user.get(user_id, [])
        items = tuple(n for n in kept if n.seq > after_seq)[:limit]
        return HistoryPage(
            items=items,
            latest=self._latest.get(user_id, 0),
            oldest=kept[0].seq if kept else None,
        )
