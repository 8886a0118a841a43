"""The scanner: tokens to items, left to right, amounts attached to the food they measure.

Each position's longest food match is looked up once; an amount, optional descriptors, then a
food name (or unknown words) make one item. Conversion to the food's own unit is here because
it is where the asked unit meets the food's.
"""

from __future__ import annotations

from collections.abc import Sequence

from .amounts import Amount, and_a_half, phrase_at, read_quantity, starts_amount, trailing_count
from .results import ParsedItem, ParsedMeal
from .table import Food, FoodTable, load_food_table
from .tokens import NEGATION_WORDS, is_separator, is_skippable, tokenize
from .units import CONTAINER, MASS, MAX_UNIT_WORDS, UNIT_WORDS, UNITS, VOLUME

#: Unit reported for an unknown food typed without a unit.
DEFAULT_UNKNOWN_UNIT = "serving"


def _food_units(food: Food, quantity: float, unit: str | None) -> float | None:
    """How many of the food's default units ``quantity unit`` is, or None if unknowable."""
    if unit is None or unit == food.unit:
        return quantity
    asked, own = UNITS[unit], UNITS[food.unit]
    if asked.kind == MASS and asked.grams is not None:
        return quantity * asked.grams / food.grams_per_unit
    own_ml = own.ml if own.kind in (VOLUME, CONTAINER) else None
    if asked.kind == VOLUME or (asked.kind == CONTAINER and asked.ml and own_ml):
        if asked.ml and own_ml:
            return quantity * asked.ml / own_ml
        return None  # a volume of something measured by count or weight: no density known
    return quantity  # count units and containers: one default unit each


def _recognized_item(food: Food, quantity: float, unit: str | None) -> ParsedItem:
    units = _food_units(food, quantity, unit)

    def scaled(per_unit: float) -> float | None:
        return None if units is None else per_unit * units

    return ParsedItem(
        name=food.name,
        quantity=quantity,
        unit=unit or food.unit,
        calories=scaled(food.calories),
        protein_g=scaled(food.protein_g),
        carbs_g=scaled(food.carbs_g),
        fat_g=scaled(food.fat_g),
        recognized=True,
    )


def _unknown_item(words: Sequence[str], quantity: float, unit: str | None) -> ParsedItem:
    return ParsedItem(
        name=" ".join(words),
        quantity=quantity,
        unit=unit or DEFAULT_UNKNOWN_UNIT,
        calories=None,
        protein_g=None,
        carbs_g=None,
        fat_g=None,
        recognized=False,
    )


def _skip_clause(tokens: Sequence[str], i: int) -> int:
    """Skip a negated clause ("no sugar", "without cheese") up to the next separator."""
    i += 1
    while i < len(tokens) and not is_separator(tokens[i]):
        i += 1
    return i


class _Scanner:
    """One left-to-right pass over the tokens; food matches are looked up once per position."""

    __slots__ = ("items", "matches", "tokens")

    def __init__(self, tokens: list[str], table: FoodTable) -> None:
        self.tokens = tokens
        self.matches = [table.match(tokens, i) for i in range(len(tokens))]
        self.items: list[ParsedItem] = []

    def run(self) -> list[ParsedItem]:
        tokens, i = self.tokens, 0
        while i < len(tokens):
            token = tokens[i]
            if is_separator(token):
                i += 1
            elif token in NEGATION_WORDS:
                i = _skip_clause(tokens, i)
            elif is_skippable(token) and self.matches[i] is None:
                i += 1
            else:
                i = max(self._item(i), i + 1)
        return self.items

    def _starts_long_alias(self, i: int) -> bool:
        """True when a multi-word food name starts here ("half and half", "cup of noodles")."""
        match = self.matches[i] if i < len(self.tokens) else None
        return match is not None and match[1] > 1

    def _amount(self, i: int) -> tuple[Amount, int]:
        """Optional quantity, then optional unit: "1 1/2 cups", "a", "half a glass"."""
        tokens = self.tokens
        quantity, i = (None, i) if self._starts_long_alias(i) else read_quantity(tokens, i)
        unit = None
        if i < len(tokens) and not self._starts_long_alias(i):
            unit, size = phrase_at(tokens, i, UNIT_WORDS, MAX_UNIT_WORDS)
            if unit is not None:
                i += size
                quantity = 1.0 if quantity is None else quantity
                extra, used = and_a_half(tokens, i) if quantity.is_integer() else (0.0, 0)
                quantity, i = quantity + extra, i + used
        return Amount(quantity, unit), i

    def _skip_fillers(self, i: int) -> int:
        """Skip "of", "a", descriptors... between an amount and the food name."""
        tokens = self.tokens
        while i < len(tokens) and self.matches[i] is None:
            if not (is_skippable(tokens[i]) or tokens[i] in ("a", "an")):
                break
            i += 1
        return i

    def _item(self, i: int) -> int:
        """Parse one '[amount] [descriptors] food' run at ``i``; return the next index."""
        tokens = self.tokens
        amount, i = self._amount(i)
        i = self._skip_fillers(i)
        unknown: list[str] = []
        match = None
        while i < len(tokens):
            token = tokens[i]
            if is_separator(token) or token in NEGATION_WORDS:
                break
            match = self.matches[i]
            if match is not None or starts_amount(tokens, i):
                break  # a food name, or a new amount starting the next item ("blorf 2 eggs")
            if not is_skippable(token):
                unknown.append(token)
            i += 1
        if unknown:
            # Words glued to a following food ("chorizo eggs") are reported on their own and
            # the amount belongs to the food; otherwise the amount belongs to the unknown words.
            if match is not None:
                self.items.append(_unknown_item(unknown, 1.0, None))
            else:
                count = 1.0 if amount.quantity is None else amount.quantity
                self.items.append(_unknown_item(unknown, count, amount.unit))
                return i
        if match is None:
            return i  # a dangling amount ("2 and eggs") names nothing
        food, size = match
        quantity, i = amount.quantity, i + size
        if quantity is None:
            quantity, i = trailing_count(tokens, i)
        self.items.append(
            _recognized_item(food, 1.0 if quantity is None else quantity, amount.unit)
        )
        return i


def parse_meal(text: str, table: FoodTable | None = None) -> ParsedMeal:
    """Parse free meal text into items; never raises on a ``str`` and never invents numbers."""
    if not isinstance(text, str):
        return ParsedMeal(items=())
    table = table if table is not None else load_food_table()
    return ParsedMeal(items=tuple(_Scanner(tokenize(text), table).run()))
