"""What a fault run promised, checked: every accepted post finished once, within its bound, and
every socket of its user got its notification exactly once, in order.

The bound of a meal log: `calm_bound` seconds after it was stored; a fault that begins before
that deadline moves it to `fault_bound` seconds after the fault ended (folded over the faults in
order, so a meal log caught by two faults in a row gets both).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise
from typing import Any

import attrs
import psycopg

from ..stats import summarize_ms
from .faults import Window
from .traffic import Listener, Post

CALM = "calm"
FINAL = ("completed", "failed")


@attrs.frozen
class StoredMeal:
    id: str
    user: str
    status: str
    created_at: float
    updated_at: float


@attrs.frozen
class StoredNote:
    user: str
    seq: int
    meal_id: str


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def read_store(database_url: str, ids: list[str]) -> tuple[list[StoredMeal], list[StoredNote]]:
    """The accepted meal logs and every notification of their users, straight from the database."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        meals = [
            StoredMeal(str(row[0]), row[1], row[2], epoch(row[3]), epoch(row[4]))
            for row in conn.execute(
                "SELECT id, user_id, status, created_at, updated_at FROM meal_logs "
                "WHERE id = ANY(%s)",
                (ids,),
            )
        ]
        users = sorted({meal.user for meal in meals})
        notes = [
            StoredNote(row[0], int(row[1]), str(row[2]))
            for row in conn.execute(
                "SELECT user_id, seq, data::jsonb->>'id' FROM notifications "
                "WHERE user_id = ANY(%s) ORDER BY user_id, seq",
                (users,),
            )
        ]
    return meals, notes


def deadline(created: float, windows: list[Window], calm_bound: float, fault_bound: float) -> float:
    due = created + calm_bound
    for window in sorted(windows, key=lambda w: w.start):
        if window.start <= due:
            due = max(due, window.end + fault_bound)
    return due


def window_of(start: float, end: float, windows: list[Window]) -> str:
    """The first fault that overlapped [start, end], else calm."""
    for window in sorted(windows, key=lambda w: w.start):
        if window.start <= end and window.end >= start:
            return window.name
    return CALM


def judge(
    posts: list[Post],
    listeners: list[Listener],
    windows: list[Window],
    meals: list[StoredMeal],
    notes: list[StoredNote],
    *,
    calm_bound: float,
    fault_bound: float,
) -> dict[str, Any]:
    accepted = [post for post in posts if post.meal_id is not None]
    accepted_ids = {post.meal_id for post in accepted if post.meal_id is not None}
    status = {meal.id: meal.status for meal in meals}
    finished = [m for m in meals if m.status in FINAL]
    unfinished = [
        {"meal_log_id": meal_id, "status": status.get(meal_id, "missing")}
        for meal_id in sorted(accepted_ids)
        if status.get(meal_id) not in FINAL
    ]
    late: list[dict[str, Any]] = []
    for meal in finished:
        due = deadline(meal.created_at, windows, calm_bound, fault_bound)
        if meal.updated_at > due:
            late.append(
                {
                    "meal_log_id": meal.id,
                    "finished_after_due_s": round(meal.updated_at - due, 3),
                    "took_s": round(meal.updated_at - meal.created_at, 3),
                    "window": window_of(meal.created_at, meal.updated_at, windows),
                }
            )
    notified = Counter(note.meal_id for note in notes)
    per_user: dict[str, list[int]] = defaultdict(list)
    for note in notes:
        per_user[note.user].append(note.seq)
    store_gaps = sum(
        1 for seqs in per_user.values() if seqs != list(range(seqs[0], seqs[0] + len(seqs)))
    )
    zero = min((post.first_attempt for post in posts), default=0.0)
    delivery = _judge_deliveries(listeners, per_user, windows, zero)
    return {
        "posts": {
            "sent": len(posts),
            "accepted": len(accepted),
            "not_accepted": len(posts) - len(accepted),
            "retried": sum(1 for post in posts if post.attempts > 1),
            "attempts": sum(post.attempts for post in posts),
            "not_accepted_errors": dict(
                Counter(post.last_error or "?" for post in posts if post.meal_id is None)
            ),
            "accept_delay_ms": summarize_ms(
                (post.accepted_at - post.first_attempt) * 1000
                for post in accepted
                if post.accepted_at is not None
            ),
        },
        "meal_logs": {
            "accepted": len(accepted_ids),
            "finished": len(finished),
            "unfinished": unfinished[:20],
            "unfinished_count": len(unfinished),
            "finished_within_bound": len(finished) - len(late),
            "late": sorted(late, key=lambda x: -float(x["finished_after_due_s"]))[:20],
            "late_count": len(late),
            "calm_bound_s": calm_bound,
            "fault_bound_s": fault_bound,
            "finish_ms": summarize_ms((m.updated_at - m.created_at) * 1000 for m in finished),
        },
        "notifications": {
            "stored": len(notes),
            "meal_logs_without": sum(1 for i in accepted_ids if notified[i] == 0),
            "meal_logs_with_several": sum(1 for i in accepted_ids if notified[i] > 1),
            "users_with_seq_gaps": store_gaps,
        },
        "delivery": delivery,
    }


def _judge_deliveries(
    listeners: list[Listener], per_user: dict[str, list[int]], windows: list[Window], zero: float
) -> dict[str, Any]:
    """Per device: the handed-over stream against the store; per socket: the frames it got."""
    expected = delivered = missing = duplicates = out_of_order = 0
    raw_repeats = raw_gaps = connections = 0
    delays: dict[str, list[float]] = defaultdict(list)
    slowest: list[tuple[float, dict[str, Any]]] = []
    last_delivery: dict[tuple[str, int], float] = {}
    for listener in listeners:
        for d in listener.deliveries:
            key = (listener.user, d.seq)
            last_delivery[key] = max(last_delivery.get(key, 0.0), d.received_at)
    for listener in listeners:
        stored = per_user.get(listener.user, [])
        seqs = [d.seq for d in listener.deliveries]
        expected += len(stored)
        delivered += len(seqs)
        counts = Counter(seqs)
        duplicates += sum(n - 1 for n in counts.values() if n > 1)
        missing += len(set(stored) - set(counts))
        out_of_order += sum(1 for a, b in pairwise(seqs) if b <= a)
        for d in listener.deliveries:
            created = epoch(d.created_at)
            window = window_of(created, last_delivery[(listener.user, d.seq)], windows)
            delay_ms = (d.received_at - created) * 1000
            delays[window].append(delay_ms)
            slowest.append(
                (
                    delay_ms,
                    {
                        "device": listener.name,
                        "seq": d.seq,
                        "delay_ms": round(delay_ms, 1),
                        "stored_s": round(created - zero, 3),
                        "window": window,
                    },
                )
            )
        for conn in listener.connections:
            connections += 1
            top = conn.requested or 0
            for frame in conn.frames:
                if frame.seq <= top:
                    raw_repeats += 1
                elif frame.seq > top + 1:
                    raw_gaps += 1
                top = max(top, frame.seq)
    every = [ms for samples in delays.values() for ms in samples]
    return {
        "devices": len(listeners),
        "connections": connections,
        "restarts": sum(listener.restarts for listener in listeners),
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "socket_repeats": raw_repeats,
        "socket_gaps": raw_gaps,
        "delay_ms": summarize_ms(every),
        "delay_ms_by_window": {name: summarize_ms(samples) for name, samples in delays.items()},
        "slowest": [entry for _, entry in sorted(slowest, key=lambda x: -x[0])[:10]],
    }


def broken_promises(results: dict[str, Any]) -> list[str]:
    """Each promise the run saw broken, in one line each (empty: the run held them all)."""
    posts, meals = results["posts"], results["meal_logs"]
    notes, delivery = results["notifications"], results["delivery"]
    broken = []
    if posts["not_accepted"]:
        broken.append(f"{posts['not_accepted']} posts never accepted")
    if meals["unfinished_count"]:
        broken.append(f"{meals['unfinished_count']} accepted meal logs never finished")
    if meals["late_count"]:
        broken.append(f"{meals['late_count']} meal logs finished after their bound")
    for key in ("meal_logs_without", "meal_logs_with_several", "users_with_seq_gaps"):
        if notes[key]:
            broken.append(f"notifications: {key.replace('_', ' ')}: {notes[key]}")
    for key in ("missing", "duplicates", "out_of_order", "socket_repeats", "socket_gaps"):
        if delivery[key]:
            broken.append(f"delivery: {key.replace('_', ' ')}: {delivery[key]}")
    open_after = {node: n for node, n in results["registry_after"].items() if n != 0}
    if open_after:
        broken.append(f"registry not back to 0: {open_after}")
    return broken
