"""When a meal log is marked `processing`: at once where other nodes could take it, and on a
one-node store only once its processing has run `claim_delay` (virtual time, autojump_clock)."""

from __future__ import annotations

import pytest
import trio

from fitiq_rt.meals.dispatcher import Dispatcher
from fitiq_rt.meals.model import MealLog
from fitiq_rt.meals.processor import ProcessedMeal, Processor
from fitiq_rt.notifications import LocalBroker, Notifier
from fitiq_rt.observability.metrics import Metrics
from fitiq_rt.realtime.registry import Registry
from tests.memory_store import OutageStore

CLAIM_DELAY = 0.5


class SleepingProcessor:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def process(self, meal: MealLog) -> ProcessedMeal:
        await trio.sleep(self.seconds)
        return ProcessedMeal(items=({"name": "egg"},), totals={"calories": 70})


async def start_dispatcher(
    nursery: trio.Nursery, store: OutageStore, processor: Processor
) -> Dispatcher:
    metrics = Metrics()
    dispatcher = Dispatcher(
        store,  # type: ignore[arg-type]
        processor,
        Notifier(LocalBroker(Registry()), metrics),
        metrics,
        claim_delay=CLAIM_DELAY,
    )
    await nursery.start(dispatcher.run)
    return dispatcher


async def run_one(
    nursery: trio.Nursery, store: OutageStore, seconds: float, *, with_row: bool = True
) -> tuple[MealLog, float]:
    """Process one meal log handed over as the POST hands it; its id and when it was submitted."""
    dispatcher = await start_dispatcher(nursery, store, SleepingProcessor(seconds))
    meal = store.add_pending("u1", "two eggs")
    start = trio.current_time()
    dispatcher.submit(meal.id, meal if with_row else None)
    while meal.id not in store.finished_at:
        await trio.sleep(0.01)
    return meal, start


async def test_a_fast_meal_log_goes_from_pending_to_its_result_without_a_claim(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=False)
    meal, start = await run_one(nursery, store, 0.1)
    assert store.finished_at[meal.id] - start == pytest.approx(0.1)
    assert "mark_processing" not in store.calls
    assert store.meals[meal.id].status == "completed"
    assert [note.meal_log_id for note in store.notes] == [meal.id]


async def test_a_slow_meal_log_is_marked_processing_at_the_claim_delay(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=False)
    meal, start = await run_one(nursery, store, 2.0)
    assert store.marked_at[meal.id] - start == pytest.approx(CLAIM_DELAY)
    assert store.finished_at[meal.id] - start == pytest.approx(2.0)
    assert store.calls["mark_processing"] == 1


async def test_a_failed_mark_does_not_stop_the_work(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=False)

    async def outage() -> None:  # down exactly while the mark is written
        await trio.sleep(CLAIM_DELAY - 0.1)
        store.down = True
        await trio.sleep(0.2)
        store.down = False

    nursery.start_soon(outage)
    meal, start = await run_one(nursery, store, 2.0)
    assert meal.id not in store.marked_at
    assert store.finished_at[meal.id] - start == pytest.approx(2.0)


async def test_a_shared_store_is_claimed_before_processing(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=True)
    meal, start = await run_one(nursery, store, 0.1)
    assert store.marked_at[meal.id] - start == pytest.approx(0.0)
    assert store.finished_at[meal.id] - start == pytest.approx(0.1)


async def test_a_meal_log_queued_by_id_alone_is_claimed_first(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=False)
    meal, start = await run_one(nursery, store, 0.1, with_row=False)
    assert store.marked_at[meal.id] - start == pytest.approx(0.0)


class SecondsInTheText:
    """Processing takes as many seconds as the raw input says."""

    async def process(self, meal: MealLog) -> ProcessedMeal:
        await trio.sleep(float(meal.raw_input))
        return ProcessedMeal(items=({"name": "egg"},), totals={"calories": 70})


async def test_overlapping_meal_logs_are_each_marked_at_their_own_delay(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    store = OutageStore(claims_are_shared=False)
    dispatcher = await start_dispatcher(nursery, store, SecondsInTheText())
    start = trio.current_time()
    meals = []
    for at, seconds in ((0.0, "2"), (0.3, "0.1"), (0.4, "2")):  # the middle one is fast
        await trio.sleep_until(start + at)
        meal = store.add_pending("u1", seconds)
        dispatcher.submit(meal.id, meal)
        meals.append(meal)
    while len(store.finished_at) < 3:
        await trio.sleep(0.01)
    slow, fast, later = meals
    assert store.marked_at[slow.id] - start == pytest.approx(0.5)
    assert fast.id not in store.marked_at
    assert store.marked_at[later.id] - start == pytest.approx(0.9)
    assert store.calls["mark_processing"] == 2
