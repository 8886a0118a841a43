"""A store outage in the middle of a meal log's work: it finishes about when the outage ends.

Virtual time (autojump_clock) over an in-memory store that can be taken down, so each bound is
proven at its exact time: the save is retried in place (0.1 s doubling to 1 s), and what the
retries gave up on, or what failed at the claim, is swept up a second after the store answers,
not a recovery interval (30 s) or a lease (60 s) later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from fitiq_rt.meals.dispatcher import Dispatcher
from fitiq_rt.meals.model import MealLog
from fitiq_rt.meals.processor import ProcessedMeal
from fitiq_rt.notifications import Notifier
from fitiq_rt.observability.metrics import Metrics
from fitiq_rt.realtime.broker import LocalBroker
from fitiq_rt.realtime.registry import Registry
from tests.memory_store import OutageStore

PROCESSING_SECONDS = 1.0
RETRY_TIMEOUT = 5.0


class OneSecondProcessor:
    async def process(self, meal: MealLog) -> ProcessedMeal:
        await trio.sleep(PROCESSING_SECONDS)
        return ProcessedMeal(items=({"name": "egg"},), totals={"calories": 70})


class Timeline:
    """The store, a dispatcher over it, and when each meal log's result was stored."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.store = OutageStore()
        metrics = Metrics()
        notifier = Notifier(self.store, LocalBroker(Registry()), metrics, 1000)  # type: ignore[arg-type]
        self.dispatcher = Dispatcher(
            self.store,  # type: ignore[arg-type]
            OneSecondProcessor(),
            notifier,
            metrics,
            recovery_interval=30.0,
            finish_retry_timeout=RETRY_TIMEOUT,
        )

    def outage(self, start: float, end: float) -> None:
        async def run() -> None:
            await trio.sleep_until(start)
            self.store.down = True
            await trio.sleep_until(end)
            self.store.down = False

        self.nursery.start_soon(run)

    async def wait_finished(self, meal: MealLog) -> float:
        """The virtual time the meal log's result was stored."""
        while meal.id not in self.store.finished_at:
            await trio.sleep(0.1)
        return self.store.finished_at[meal.id]


@pytest.fixture
async def timeline(nursery: trio.Nursery) -> AsyncIterator[Timeline]:
    line = Timeline(nursery)
    await nursery.start(line.dispatcher.run)
    yield line
    nursery.cancel_scope.cancel()


async def test_a_save_that_fails_in_an_outage_is_retried_until_the_store_answers(
    timeline: Timeline, autojump_clock: object
) -> None:
    start = trio.current_time()
    meal = timeline.store.add_pending("u1", "two eggs")
    timeline.outage(start + 0.5, start + 3.0)  # down while the processor works, back at 3.0
    timeline.dispatcher.submit(meal.id)
    finished = await timeline.wait_finished(meal)
    # Saves at 1.0, 1.1, 1.3, 1.7 and 2.5 fail; the one at 3.5 (after a 1 s cap) succeeds.
    assert finished - start == pytest.approx(3.5)
    assert timeline.store.calls["finish_meal_log"] == 6
    assert [note.seq for note in timeline.store.notes] == [1]  # one notification, no duplicate


async def test_an_outage_longer_than_the_retries_is_swept_up_a_second_after_it_ends(
    timeline: Timeline, autojump_clock: object
) -> None:
    start = trio.current_time()
    meal = timeline.store.add_pending("u1", "two eggs")
    timeline.outage(start + 0.5, start + 20.0)
    timeline.dispatcher.submit(meal.id)
    finished = await timeline.wait_finished(meal)
    # The retries give up at 5.5 (the next one would pass 1.0 + RETRY_TIMEOUT); the sweep then
    # tries every second from 6.5, reaches the store at 20.5, and the work is redone by 21.5.
    assert finished - start == pytest.approx(21.5)
    sweeps_during_outage = timeline.store.calls["unfinished_meal_logs"] - 1  # minus the start's
    assert sweeps_during_outage == 15  # 6.5, 7.5, ..., 20.5: one a second, not a busy loop
    assert [note.seq for note in timeline.store.notes] == [1]


async def test_a_claim_that_fails_in_an_outage_is_swept_up_a_second_after_it_ends(
    timeline: Timeline, autojump_clock: object
) -> None:
    start = trio.current_time()
    meal = timeline.store.add_pending("u1", "two eggs")
    timeline.store.down = True
    timeline.outage(start, start + 2.5)
    timeline.dispatcher.submit(meal.id)  # the claim fails at once
    finished = await timeline.wait_finished(meal)
    # Sweeps at 1.0 and 2.0 fail, the one at 3.0 queues it, processing ends at 4.0.
    assert finished - start == pytest.approx(4.0)
