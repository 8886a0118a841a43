"""The seq rules of one socket (realtime/ordering.py) as plain function calls: no trio, no I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fitiq_rt.notification import Notification
from fitiq_rt.realtime.history import HistoryPage
from fitiq_rt.realtime.ordering import Coverage, LiveStep


def note(seq: int) -> Notification:
    return Notification(
        user_id="u1",
        seq=seq,
        type="meal_log.completed",
        event_id=f"e{seq}",
        created_at="2026-12-01T12:00:00.000Z",
        data={"id": f"m{seq}"},
    )


def page(after: int, latest: int, oldest: int = 1) -> HistoryPage:
    """What the store returns after `after` when it keeps seqs oldest..latest."""
    kept = range(max(oldest, after + 1), latest + 1)
    return HistoryPage(
        items=tuple(note(s) for s in kept), latest=latest, oldest=oldest if latest else None
    )


def seqs(notes: list[Notification] | tuple[Notification, ...]) -> list[int]:
    return [n.seq for n in notes]


def test_live_traffic_after_the_welcome_is_sent_once_and_in_order() -> None:
    cover = Coverage()
    cover.welcome(3)
    assert cover.live(3) is LiveStep.SKIP  # the welcome's last_seq covers it
    assert cover.live(4) is LiveStep.SEND
    assert seqs(cover.send_live(note(4))) == [4]
    assert seqs(cover.send_live(note(4))) == []  # a duplicate fan-out
    assert cover.live(7) is LiveStep.FILL_GAP
    assert seqs(cover.send_live(note(7), page(after=4, latest=7))) == [5, 6, 7]
    assert seqs(cover.send_live(note(6))) == []  # 6 arriving late was sent with the gap
    assert cover.top == 7 and cover.sent == ((3, 7),)


def test_a_resume_sends_what_the_socket_has_not_covered_and_says_complete() -> None:
    cover = Coverage()
    cover.welcome(5)
    cover.send_live(note(6))
    replay = cover.replay(2, page(after=2, latest=8))
    assert seqs(replay.notes) == [3, 4, 5, 7, 8]  # 6 was sent live
    assert replay.complete
    assert cover.top == 8 and cover.sent == ((2, 8),)
    assert cover.live(8) is LiveStep.SKIP


def test_a_resume_that_claimed_more_than_was_sent_never_causes_a_duplicate() -> None:
    """Sent 1 and 2, then a resume from 5 (the client had 3..5 from elsewhere), then from 0:
    the last one sends 3, 4 and 5 — not 1 and 2 again."""
    cover = Coverage()
    cover.welcome(0)
    cover.send_live(note(1))
    cover.send_live(note(2))
    assert seqs(cover.replay(5, page(after=5, latest=8)).notes) == [6, 7, 8]
    assert seqs(cover.replay(0, page(after=0, latest=8)).notes) == [3, 4, 5]
    assert cover.sent == ((0, 8),)


def test_a_resume_past_the_history_limit_is_incomplete() -> None:
    cover = Coverage()
    cover.welcome(10)
    replay = cover.replay(2, page(after=2, latest=10, oldest=6))
    assert seqs(replay.notes) == [6, 7, 8, 9, 10]  # the welcome only said 10 is the newest
    assert not replay.complete  # 3..5 were pruned


def test_a_last_seq_from_another_life_of_the_store_replays_from_one() -> None:
    cover = Coverage()
    cover.welcome(0)  # the store was reset: nothing is newer than 0 ...
    assert Coverage.restarts(40, page(after=40, latest=3))
    replay = cover.replay(40, page(after=0, latest=3))  # ... and the writer read from 0
    assert seqs(replay.notes) == [1, 2, 3]
    assert not replay.complete


@given(
    latest=st.integers(min_value=0, max_value=12),
    welcome=st.integers(min_value=0, max_value=12),
    events=st.lists(
        st.one_of(
            st.tuples(st.just("live"), st.integers(min_value=1, max_value=12)),
            st.tuples(st.just("resume"), st.integers(min_value=0, max_value=14)),
        ),
        max_size=25,
    ),
)
def test_no_seq_is_sent_twice_and_a_final_resume_leaves_no_hole(
    latest: int, welcome: int, events: list[tuple[str, int]]
) -> None:
    """Any order of live arrivals (repeats, gaps, late ones) and resumes, over a store holding
    1..latest: every seq goes out at most once, live traffic never skips one, and a resume
    from 0 at the end leaves every stored seq sent or covered."""
    welcome = min(welcome, latest)
    cover = Coverage()
    cover.welcome(welcome)
    sent: list[int] = []
    for kind, value in events:
        if kind == "live" and value <= latest:
            before = cover.top
            out = seqs(cover.send_live(note(value), page(after=cover.top, latest=latest)))
            assert out == list(range(before + 1, value + 1)) or out == []
            sent += out
        elif kind == "resume":
            first = page(after=value, latest=latest)
            stored = page(after=0, latest=latest) if Coverage.restarts(value, first) else first
            sent += seqs(cover.replay(value, stored).notes)
    assert len(sent) == len(set(sent))
    sent += seqs(cover.replay(0, page(after=0, latest=latest)).notes)
    assert len(sent) == len(set(sent))
    assert set(sent) == set(range(1, latest + 1))
