"""The food table: USDA values per unit from ``foods.csv``, indexed by alias for matching.

The CSV is validated row by row at load, so a bad table fails loudly at startup, never
mid-request; the index is keyed by token tuples so matching costs a few dict lookups.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import attrs

from .tokens import tokenize
from .units import UNITS

_PACKAGE = "fitiq_rt.meals.nutrition"  # where the shipped foods.csv is (package data)


@attrs.frozen
class Food:
    """One table row; nutrient values are per ONE ``unit``, which weighs ``grams_per_unit``."""

    name: str
    aliases: tuple[str, ...]
    unit: str
    grams_per_unit: float
    calories: float
    protein_g: float
    carbs_g: float
    fat_g: float
    fdc_id: int | None
    source: str


def _plural_forms(word: str) -> set[str]:
    """Simple English plural/singular variants, so the table need not list every form."""
    forms = {word}
    if word.endswith("ies") and len(word) > 4:
        forms.add(word[:-3] + "y")
    elif word.endswith(("ches", "shes", "xes", "oes", "sses")):
        forms.add(word[:-2])
    elif word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        forms.add(word[:-1])
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    elif word.endswith(("ch", "sh", "x", "o", "ss")):
        forms.add(word + "es")
    elif not word.endswith("s"):
        forms.add(word + "s")
    return {form for form in forms if form.isalpha()}


@attrs.frozen(eq=False)
class FoodTable:
    """Foods plus an alias index keyed by token tuples, so matching is a few dict lookups."""

    foods: tuple[Food, ...]
    _index: dict[tuple[str, ...], Food] = attrs.field(repr=False)
    #: Longest alias (in tokens) per first token: most positions need one or two lookups.
    _longest: dict[str, int] = attrs.field(repr=False)

    @classmethod
    def from_foods(cls, foods: Sequence[Food]) -> FoodTable:
        """Index every name and alias; explicit names win over generated plural forms."""
        index: dict[tuple[str, ...], Food] = {}
        for food in foods:
            for phrase in (food.name, *food.aliases):
                key = tuple(tokenize(phrase))
                if not key:
                    continue
                owner = index.setdefault(key, food)
                if owner is not food:
                    raise ValueError(
                        f"alias {phrase!r} is used by {owner.name!r} and {food.name!r}"
                    )
        for key, food in list(index.items()):
            for form in _plural_forms(key[-1]):
                index.setdefault((*key[:-1], form), food)
        longest: dict[str, int] = {}
        for key in index:
            longest[key[0]] = max(longest.get(key[0], 0), len(key))
        return cls(foods=tuple(foods), index=index, longest=longest)

    def __len__(self) -> int:
        return len(self.foods)

    def __iter__(self) -> Iterator[Food]:
        return iter(self.foods)

    def get(self, name: str) -> Food | None:
        """The food whose name or alias is exactly ``name`` (any case), if any."""
        return self._index.get(tuple(tokenize(name)))

    def match(self, tokens: Sequence[str], start: int) -> tuple[Food, int] | None:
        """Longest alias starting at ``tokens[start]``, as (food, number of tokens)."""
        if start >= len(tokens):
            return None
        longest = min(self._longest.get(tokens[start], 0), len(tokens) - start)
        for size in range(longest, 0, -1):
            food = self._index.get(tuple(tokens[start : start + size]))
            if food is not None:
                return food, size
        return None


_COLUMNS = (
    "name",
    "aliases",
    "unit",
    "grams_per_unit",
    "calories",
    "protein_g",
    "carbs_g",
    "fat_g",
    "fdc_id",
    "source",
)


def _non_negative(row: dict[str, str], column: str) -> float:
    value = float(row[column])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{column} must be a non-negative number, got {row[column]!r}")
    return value


def _food_from_row(row: dict[str, str]) -> Food:
    """Validate one CSV row; a bad table should fail loudly at load, not mid-request."""
    name = row["name"].strip().lower()
    if not name:
        raise ValueError("empty food name")
    unit = row["unit"].strip()
    if unit not in UNITS:
        raise ValueError(f"{name}: unknown unit {unit!r}")
    grams = _non_negative(row, "grams_per_unit")
    if grams <= 0:
        raise ValueError(f"{name}: grams_per_unit must be positive")
    fdc = row["fdc_id"].strip()
    return Food(
        name=name,
        aliases=tuple(a.strip().lower() for a in row["aliases"].split("|") if a.strip()),
        unit=unit,
        grams_per_unit=grams,
        calories=_non_negative(row, "calories"),
        protein_g=_non_negative(row, "protein_g"),
        carbs_g=_non_negative(row, "carbs_g"),
        fat_g=_non_negative(row, "fat_g"),
        fdc_id=int(fdc) if fdc else None,
        source=row["source"].strip(),
    )


def parse_food_csv(text: str) -> FoodTable:
    """Build a table from CSV text; lines starting with '#' are comments."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"food table columns must be {','.join(_COLUMNS)}")
    foods = []
    for line_no, row in enumerate(reader, start=2):
        try:
            foods.append(_food_from_row(row))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"food table row {line_no}: {exc}") from exc
    return FoodTable.from_foods(foods)


@functools.lru_cache(maxsize=8)
def load_food_table(path: str | Path | None = None) -> FoodTable:
    """The shipped table (or one at ``path``), parsed once per process and then shared."""
    if path is None:
        shipped = resources.files(_PACKAGE).joinpath("foods.csv")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_food_csv(text)
