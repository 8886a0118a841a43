"""Units of measure and the words that name them ("tbsp", "tablespoons", "fl oz", "mug").

Mass units carry grams, volume units millilitres; containers carry millilitres when they hold a
known volume (a glass is a cup), and count units carry nothing: conversion is by kind.
"""

from __future__ import annotations

import attrs

MASS, VOLUME, COUNT, CONTAINER = "mass", "volume", "count", "container"


@attrs.frozen
class Unit:
    """A measure: mass units carry grams, volume units and some containers carry millilitres."""

    name: str
    kind: str
    grams: float | None = None
    ml: float | None = None


_CUP_ML = 236.588
UNITS: dict[str, Unit] = {
    u.name: u
    for u in (
        Unit("g", MASS, grams=1.0),
        Unit("kg", MASS, grams=1000.0),
        Unit("oz", MASS, grams=28.35),
        Unit("lb", MASS, grams=453.592),
        Unit("handful", MASS, grams=30.0),
        Unit("pat", MASS, grams=5.0),
        Unit("ml", VOLUME, ml=1.0),
        Unit("l", VOLUME, ml=1000.0),
        Unit("tsp", VOLUME, ml=_CUP_ML / 48),
        Unit("tbsp", VOLUME, ml=_CUP_ML / 16),
        Unit("fl oz", VOLUME, ml=_CUP_ML / 8),
        Unit("cup", VOLUME, ml=_CUP_ML),
        Unit("pint", VOLUME, ml=_CUP_ML * 2),
        Unit("splash", VOLUME, ml=_CUP_ML / 8),
        Unit("dollop", VOLUME, ml=_CUP_ML / 8),
        Unit("drizzle", VOLUME, ml=_CUP_ML / 16),
        Unit("dash", VOLUME, ml=_CUP_ML / 384),
        Unit("slice", COUNT),
        Unit("piece", COUNT),
        Unit("serving", COUNT),
        Unit("glass", CONTAINER, ml=_CUP_ML),
        Unit("mug", CONTAINER, ml=_CUP_ML),
        Unit("bowl", CONTAINER, ml=_CUP_ML),
        Unit("can", CONTAINER, ml=_CUP_ML * 1.5),
        Unit("bottle", CONTAINER, ml=_CUP_ML * 1.5),
        Unit("scoop", CONTAINER, ml=_CUP_ML / 2),
        Unit("shot", CONTAINER, ml=_CUP_ML * 1.5 / 8),
        Unit("plate", CONTAINER),
        Unit("bar", CONTAINER),
        Unit("bag", CONTAINER),
        Unit("pack", CONTAINER),
        Unit("box", CONTAINER),
    )
}

UNIT_WORDS: dict[tuple[str, ...], str] = {}


def _add_unit_words(unit: str, *words: str) -> None:
    for phrase in (unit, *words):
        UNIT_WORDS[tuple(phrase.split())] = unit


_add_unit_words("g", "gr", "grs", "gram", "grams", "gramme", "grammes")
_add_unit_words("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms")
_add_unit_words("oz", "ozs", "ounce", "ounces")
_add_unit_words("lb", "lbs", "pound", "pounds")
_add_unit_words("handful", "handfuls")
_add_unit_words("pat", "pats")
_add_unit_words("ml", "mls", "milliliter", "milliliters", "millilitre", "millilitres")
_add_unit_words("l", "liter", "liters", "litre", "litres")
_add_unit_words("tsp", "tsps", "teaspoon", "teaspoons", "teaspoonful", "teaspoonfuls")
_add_unit_words("tbsp", "tbsps", "tbs", "tbl", "tblsp", "spoonful", "spoonfuls")
_add_unit_words("tbsp", "tablespoon", "tablespoons", "tablespoonful", "tablespoonfuls")
_add_unit_words("fl oz", "floz", "fl ozs", "fluid ounce", "fluid ounces")
_add_unit_words("cup", "cups")
_add_unit_words("pint", "pints")
_add_unit_words("splash", "splashes", "drop", "drops")
_add_unit_words("dollop", "dollops")
_add_unit_words("drizzle", "drizzles")
_add_unit_words("dash", "dashes", "pinch", "pinches", "sprinkle", "sprinkles")
_add_unit_words("slice", "slices")
_add_unit_words("piece", "pieces", "pc", "pcs")
_add_unit_words("serving", "servings", "portion", "portions", "helping", "helpings")
_add_unit_words("glass", "glasses")
_add_unit_words("mug", "mugs")
_add_unit_words("bowl", "bowls")
_add_unit_words("can", "cans", "tin", "tins")
_add_unit_words("bottle", "bottles")
_add_unit_words("scoop", "scoops")
_add_unit_words("shot", "shots")
_add_unit_words("plate", "plates", "plateful")
_add_unit_words("bar", "bars")
_add_unit_words("bag", "bags")
_add_unit_words("pack", "packs", "packet", "packets", "package", "packages")
_add_unit_words("box", "boxes")
MAX_UNIT_WORDS = max(len(k) for k in UNIT_WORDS)
