"""The seq rules of one socket as a pure state machine: stored pages and live notifications in,
the notifications to send out, in order, each once. No I/O and no trio, so every rule is
tested by plain function calls (tests/unit/test_ordering.py).

A socket keeps two facts: `top`, the newest seq it is past (the welcome's `last_seq`, every
seq it sent, and every `last_seq` a resume claimed), and the spans of seqs it has really sent.
The writer asks this object what to send and sends exactly that; both are updated in the same
synchronous step that decides, never across an await.

- A live notification at or below `top` is skipped: sent already (by a replay or a gap fill), or
  older than what the client said it has.
- One right above `top` is sent. One further above means a notification has not arrived yet
  (another node's fan-out, a lost publish): the stored ones in between are sent first.
- A resume from `last_seq` sends every stored seq above it that the socket has not sent, in
  order (never one twice, even after an earlier resume claimed more than was sent), and says
  whether the replay was complete: not when some were pruned past the history limit, nor when
  `last_seq` is above the user's newest seq (the client remembers another life of the store;
  the replay starts over from 1).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from ..notification import Notification
from .history import HistoryPage


class LiveStep(enum.Enum):
    SKIP = "skip"  # covered already
    SEND = "send"  # the next seq
    FILL_GAP = "fill_gap"  # read the stored ones after `top` first, then `fill_gap()`


@attrs.frozen
class Replay:
    notes: tuple[Notification, ...]  # to send, seq ascending
    complete: bool  # for the `resumed` answer; `replayed` is len(notes)


Spans = tuple[tuple[int, int], ...]  # disjoint (low, high] ranges, ascending


@attrs.define
class Coverage:
    """What one socket is past (`top`) and which seqs it has sent (`sent`)."""

    top: int = 0
    sent: Spans = ()  # a tuple: an idle socket that sent nothing shares the empty one

    def welcome(self, latest: int) -> None:
        """The welcome told the client `last_seq = latest`: live traffic starts above it."""
        self.top = latest

    def has_sent(self, seq: int) -> bool:
        return any(low < seq <= high for low, high in self.sent)

    def live(self, seq: int) -> LiveStep:
        if seq <= self.top:
            return LiveStep.SKIP
        return LiveStep.SEND if seq == self.top + 1 else LiveStep.FILL_GAP

    def send_live(
        self, note: Notification, stored: HistoryPage | None = None
    ) -> list[Notification]:
        """What to send for a live `note`: nothing, the note, or the gap before it and the note.

        `stored` is a history page after `top`, read when `live()` said FILL_GAP.
        """
        if note.seq <= self.top:
            return []
        between = [] if stored is None else [n for n in stored.items if self.top < n.seq < note.seq]
        out = [*between, note]
        self._mark_sent(out)
        self.top = note.seq
        return out

    def replay(self, requested: int, page: HistoryPage) -> Replay:
        """The answer to a resume from `requested`, given the page of stored seqs after it.

        When `requested` is above the user's newest seq, `page` must be the page after 0.
        """
        last_seq, complete = requested, True
        if requested > page.latest:
            last_seq, complete = 0, False
        if page.oldest is not None and page.oldest > last_seq + 1:
            complete = False  # some were pruned past the history limit
        notes = tuple(n for n in page.items if n.seq > last_seq and not self.has_sent(n.seq))
        self._mark_sent(notes)
        self.top = max(self.top, last_seq, page.items[-1].seq if page.items else 0)
        return Replay(notes=notes, complete=complete)

    @staticmethod
    def restarts(requested: int, page: HistoryPage) -> bool:
        """A resume from above the newest seq replays from 0: read the page after 0 instead."""
        return requested > page.latest

    def _mark_sent(self, notes: Sequence[Notification]) -> None:
        """Add the seqs of `notes` (ascending) to `sent`, one span per consecutive run."""
        run_low = run_high = -1
        for n in notes:
            if n.seq != run_high + 1:
                if run_high >= 0:
                    self.sent = _merged(self.sent, run_low, run_high)
                run_low = n.seq - 1
            run_high = n.seq
        if run_high >= 0:
            self.sent = _merged(self.sent, run_low, run_high)


def _merged(spans: Spans, low: int, high: int) -> Spans:
    """`spans` with (low, high] added; spans that overlap or touch it become one."""
    kept = []
    for a, b in spans:
        if b < low or a > high:
            kept.append((a, b))
        else:
            low, high = min(low, a), max(high, b)
    kept.append((low, high))
    return tuple(sorted(kept))
