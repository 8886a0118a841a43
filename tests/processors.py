"""Processors for crash and timeout tests, loaded through FITIQ_PROCESSOR like a real plug-in."""

from __future__ import annotations

import trio

from fitiq_rt.meals.model import MealLog
from fitiq_rt.meals.processor import BuiltinProcessor, ProcessedMeal


class HoldingProcessor:
    """The built-in parser, except that a meal containing "[hold]" never finishes.

    It lets a test leave meal logs mid-processing in a server it then kills.
    """

    def __init__(self) -> None:
        self.builtin = BuiltinProcessor()

    async def process(self, meal: MealLog) -> ProcessedMeal:
        if "[hold]" in meal.raw_input:
            await trio.sleep_forever()
        return await self.builtin.process(meal)


class ExplodingProcessor:
    """Raises for a meal containing "[boom]": the worker must survive and mark it failed."""

    def __init__(self) -> None:
        self.builtin = BuiltinProcessor()

    async def process(self, meal: MealLog) -> ProcessedMeal:
        if "[boom]" in meal.raw_input:
            raise ValueError("the model returned nonsense")
        return await self.builtin.process(meal)


def holding() -> HoldingProcessor:
    return HoldingProcessor()


def exploding() -> ExplodingProcessor:
    return ExplodingProcessor()
