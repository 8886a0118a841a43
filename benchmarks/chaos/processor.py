"""A processor that takes as long as a model call would: the built-in parser after a delay.

With the built-in parser a meal log is processed in well under a millisecond, so a fault almost
never lands while one is mid-processing; a real MealLogAI takes hundreds of milliseconds, so in
production one usually is. Loaded by the nodes as
FITIQ_PROCESSOR=benchmarks.chaos.processor:delayed; CHAOS_PROCESSING_MS sets the delay.
"""

from __future__ import annotations

import os

import trio

from fitiq_rt.meals.model import MealLog
from fitiq_rt.meals.processor import BuiltinProcessor, ProcessedMeal

SPEC = "benchmarks.chaos.processor:delayed"
DELAY_VARIABLE = "CHAOS_PROCESSING_MS"


class DelayedProcessor:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.builtin = BuiltinProcessor()

    async def process(self, meal: MealLog) -> ProcessedMeal:
        await trio.sleep(self.delay)
        return await self.builtin.process(meal)


def delayed() -> DelayedProcessor:
    return DelayedProcessor(float(os.environ.get(DELAY_VARIABLE, "200")) / 1000)
