"""The processor ("MealLogAI") interface and the built-in, network-free implementation."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import attrs
import trio

from .model import MealLog
from .nutrition import load_food_table, parse_meal

INLINE_PARSE_CHARS = 200  # longer inputs parse in a worker thread so the event loop stays free


@attrs.frozen
class ProcessedMeal:
    items: tuple[dict[str, Any], ...]
    totals: dict[str, float]


class NothingRecognized(Exception):
    """The input names no food the processor knows: the meal log fails with this message, so
    the app can ask the user to rephrase instead of showing 0 kcal."""


class Processor(Protocol):
    async def process(self, meal: MealLog) -> ProcessedMeal: ...


class BuiltinProcessor:
    """Deterministic parser over the shipped USDA-based food table."""

    def __init__(self) -> None:
        self.table = load_food_table()

    def _parse(self, text: str) -> ProcessedMeal:
        parsed = parse_meal(text, self.table)
        if not any(item.recognized for item in parsed.items):
            raise NothingRecognized("no food was recognized; try naming the foods, e.g. '2 eggs'")
        return ProcessedMeal(
            items=tuple(item.to_json() for item in parsed.items), totals=parsed.totals
        )

    async def process(self, meal: MealLog) -> ProcessedMeal:
        if len(meal.raw_input) <= INLINE_PARSE_CHARS:
            return self._parse(meal.raw_input)
        return await trio.to_thread.run_sync(self._parse, meal.raw_input)


class ProcessorLoadError(Exception):
    """FITIQ_PROCESSOR names a module or factory that cannot be loaded; the message says which."""


def load_processor(spec: str) -> Processor:
    """FITIQ_PROCESSOR: "builtin", or "module:factory" returning a Processor (a real AI, say)."""
    if spec == "builtin":
        return BuiltinProcessor()
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise ProcessorLoadError(f"no module named {missing.name!r} ({spec})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ProcessorLoadError(f"module {module_name!r} has no factory {attribute!r} ({spec})")
    try:
        processor: Processor = factory()
    except Exception as error:
        raise ProcessorLoadError(f"{spec}() failed: {type(error).__name__}: {error}") from error
    return processor
