"""An in-memory meal-log store that can be taken down, for dispatcher tests under `autojump_clock`.

A real store runs its calls in worker threads, and the virtual clock jumps while a thread works,
so recovery deadlines could not be proven at exact times over it. This one follows the store
contract the real stores are tested against (tests/integration/test_postgres_store.py): a
processing row claimed by this node is offered again by `unfinished_meal_logs`, a finished row is
never finished twice, and finishing takes the user's next seq.
"""

from __future__ import annotations

import attrs
import trio

from fitiq_rt.meals.model import MealLog, now_stamp
from fitiq_rt.meals.rows import finished_notification, pending_meal
from fitiq_rt.meals.store import NewMealLog, Outcome, StoreUnavailable
from fitiq_rt.notifications import Notification


class OutageStore:
    """Meal logs and notifications in dicts; every call fails while `down` is True."""

    def __init__(self, *, claims_are_shared: bool = True) -> None:
        self.claims_are_shared = claims_are_shared  # True: a worker claims before processing
        self.down = False
        self.meals: dict[str, MealLog] = {}
        self.notes: list[Notification] = []
        self.calls: dict[str, int] = {}
        self.finished_at: dict[str, float] = {}  # meal log id -> when its result was stored
        self.marked_at: dict[str, float] = {}  # meal log id -> when it was marked processing

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.down:
            raise StoreUnavailable("couldn't get a connection after 3.00 sec")

    def add_pending(self, user_id: str, raw_input: str) -> MealLog:
        meal = pending_meal(
            NewMealLog(
                user_id=user_id,
                raw_input=raw_input,
                meal_type=None,
                logged_at=now_stamp(),
                idempotency_key=None,
            )
        )
        self.meals[meal.id] = meal
        return meal

    async def mark_processing(self, meal_log_id: str) -> MealLog | None:
        self._call("mark_processing")
        meal = self.meals.get(meal_log_id)
        if meal is None or meal.status not in ("pending", "processing"):
            return None
        self.meals[meal_log_id] = meal = attrs.evolve(meal, status="processing")
        self.marked_at[meal_log_id] = trio.current_time()
        return meal

    async def finish_meal_log(
        self, meal_log_id: str, outcome: Outcome, history_limit: int
    ) -> tuple[MealLog, Notification]:
        self._call("finish_meal_log")
        meal = self.meals.get(meal_log_id)
        if meal is None or meal.status not in ("pending", "processing"):
            raise LookupError(f"meal log {meal_log_id} does not exist or is finished")
        finished = attrs.evolve(
            meal, status=outcome.status, items=outcome.items, totals=outcome.totals
        )
        self.meals[meal_log_id] = finished
        self.finished_at[meal_log_id] = trio.current_time()
        seq = 1 + sum(1 for note in self.notes if note.user_id == meal.user_id)
        note = finished_notification(finished, outcome, seq)
        self.notes.append(note)
        return finished, note

    async def unfinished_meal_logs(self) -> list[MealLog]:
        self._call("unfinished_meal_logs")
        return [m for m in self.meals.values() if m.status in ("pending", "processing")]
