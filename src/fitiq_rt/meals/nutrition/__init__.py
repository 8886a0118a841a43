"""Deterministic, offline meal-text parser: "2 eggs and a slice of toast" -> items with macros.

This is the built-in "MealLogAI without network": it must answer instantly, never
call out, never raise on user text and never invent numbers. It works by
tokenising the text, then scanning left to right for an optional amount
(quantity + unit), then the longest food alias from a curated USDA table
(``foods.csv`` in this package).

Phrasing choices (documented so clients can explain results):

* Quantities: digits ("2", "1.5", ".5", "1/2", "1 1/2", "1½"), ranges ("2-3",
  "2 to 3", "2 or 3" -> midpoint), words "a"/"an"/"one".."twelve", "half",
  "a half", "half a/an", "quarter", "a third", "one and a half", "a couple (of)"
  = 2, "a pair of" = 2, "a few" = 3, "several" = 3, "a dozen" = 12, "half a
  dozen" = 6. "some" carries no number (one default unit). A bare trailing
  count works as "eggs x2" / "eggs 2" at the end of an item.
* Units: g, kg, oz (mass ounce, 28.35 g), lb, ml, l, tsp, tbsp, cup, fl oz,
  pint, slice, piece, serving (also portion/helping); small measures "splash"/"drop"
  and "dollop" = 2 tbsp, "drizzle" and "spoonful" = 1 tbsp, "dash"/"pinch"/"sprinkle" =
  1/8 tsp. Containers: glass, mug
  and bowl are 1 cup, can and bottle 12 fl oz, scoop 1/2 cup, shot 1.5 fl oz,
  but only for foods measured by volume; for any other food a container means
  one default unit ("a glass of wine" = one 5 fl oz serving, "a bag of chips" =
  1 oz). plate/bar/bag/pack/box always mean one default unit. "handful" = 30 g,
  "pat" (of butter) = 5 g.
* Conversion goes through grams (mass units), through millilitres between
  volume units, or one-for-one between count units. A volume of a food that is
  logged per piece or by weight ("1 cup of chicken") has no known density: the
  item is still recognised but its numbers are None.
* Items are split on "and", "with", "plus", "then", "or", "on", ",", ";", ".",
  "&", "+", "w/" and new lines, except inside a food name ("mac and cheese",
  "half and half"). "no"/"without" drop everything up to the next separator.
* Unknown words become an item with recognized=False and no numbers. Common
  descriptive words (cooking methods, sizes, "i had", "for breakfast") are
  skipped; sizes do not scale portions.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

import attrs

__all__ = [
    "Food",
    "FoodTable",
    "ParsedItem",
    "ParsedMeal",
    "load_food_table",
    "parse_meal",
]

#: Longer input is cut here: a meal log never needs more, and it bounds the work per request.
MAX_INPUT_CHARS = 20_000
#: Amounts above this are treated as noise (typos, pasted ids), not quantities.
MAX_QUANTITY = 100_000.0
#: Unit reported for an unknown food typed without a unit.
DEFAULT_UNKNOWN_UNIT = "serving"

# ---------------------------------------------------------------------------- units

MASS, VOLUME, COUNT, CONTAINER = "mass", "volume", "count", "container"


@attrs.frozen
class Unit:
    """A measure: mass units carry grams, volume units and some containers carry millilitres."""

    name: str
    kind: str
    grams: float | None = None
    ml: float | None = None


_CUP_ML = 236.588
_UNITS: dict[str, Unit] = {
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

_UNIT_WORDS: dict[tuple[str, ...], str] = {}


def _add_unit_words(unit: str, *words: str) -> None:
    for phrase in (unit, *words):
        _UNIT_WORDS[tuple(phrase.split())] = unit


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
_MAX_UNIT_WORDS = max(len(k) for k in _UNIT_WORDS)

# ---------------------------------------------------------------------------- words

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_QUANTITY_PHRASES: dict[tuple[str, ...], float] = {
    ("a",): 1.0,
    ("an",): 1.0,
    ("single",): 1.0,
    ("half",): 0.5,
    ("a", "half"): 0.5,
    ("half", "a"): 0.5,
    ("half", "an"): 0.5,
    ("quarter",): 0.25,
    ("a", "quarter"): 0.25,
    ("a", "quarter", "of"): 0.25,
    ("quarter", "of"): 0.25,
    ("a", "third"): 1 / 3,
    ("a", "third", "of"): 1 / 3,
    ("couple",): 2.0,
    ("a", "couple"): 2.0,
    ("a", "couple", "of"): 2.0,
    ("couple", "of"): 2.0,
    ("a", "pair", "of"): 2.0,
    ("pair", "of"): 2.0,
    ("double",): 2.0,
    ("a", "few"): 3.0,
    ("few",): 3.0,
    ("several",): 3.0,
    ("dozen",): 12.0,
    ("a", "dozen"): 12.0,
    ("half", "a", "dozen"): 6.0,
    **{(word,): float(value) for word, value in _NUMBER_WORDS.items()},
}
_MAX_QUANTITY_WORDS = max(len(k) for k in _QUANTITY_PHRASES)

_SEPARATOR_WORDS = frozenset({"and", "with", "plus", "then", "or", "on", "w", "alongside"})
_NEGATION_WORDS = frozenset({"no", "without", "minus", "hold"})
_PUNCT_SEPARATORS = frozenset({",", ";", ".", "!", "?", "|", ":", "/"})

#: Words that say nothing about what or how much was eaten; skipped wherever no food name
#: starts with them (so "black beans", "whole milk" and "iced tea" still match).
_FILLER_WORDS = frozenset(
    """
    i id ive we my our me just only also had have has having ate eat eaten eating drank drink
    drinking drunk got get for breakfast brunch lunch dinner supper dessert snack snacks meal
    today tonight yesterday morning afternoon evening night this that it some of the about
    around approx approximately roughly like maybe probably each total x extra side sides
    to at from in into by was were is are be been very really so too quite bit went
    small medium large big huge little regular mini jumbo
    cooked grilled baked roasted boiled steamed raw fresh frozen sliced chopped diced minced
    shredded toasted poached sunny up over easy hard soft plain black hot cold iced warm
    homemade organic leftover whole mixed skinless boneless lean crispy spicy sweetened
    unsweetened salted unsalted natural instant fat free low
    """.split()
)

# ---------------------------------------------------------------------------- tokens

_FRACTION_CHARS = {
    "½": " 1/2",
    "⅓": " 1/3",
    "⅔": " 2/3",
    "¼": " 1/4",
    "¾": " 3/4",
    "⅕": " 1/5",
    "⅛": " 1/8",
    "⅜": " 3/8",
    "⅝": " 5/8",
    "⅞": " 7/8",
}
_FRACTION_RE = re.compile("[" + "".join(_FRACTION_CHARS) + "]")
_RANGE_RE = re.compile(r"(?<=\d)\s*[-–—~]\s*(?=\.?\d)")
_TOKEN_RE = re.compile(
    r"(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+(?:\.\d+)?)?%?"  # 2  1.5  .5  1/2  2%
    r"|[^\W\d_]+"  # words in any script
    r"|[,;.!?|:/]"  # separators
)
_NUMBER_RE = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+(?:\.\d+)?)?")
#: "oz." / "tbsp." / "approx." end in a dot that must not split the item.
_ABBREVIATION_DOT_RE = re.compile(
    r"\b(oz|fl|tbsp|tbs|tbl|tsp|lb|lbs|g|gr|kg|ml|pc|pcs|pt|approx|apx|med|lg|sm|sl|pkg)\."
)


def _normalise(text: str) -> str:
    """Lower-case and fold the text so that typing variants tokenise identically."""
    text = _FRACTION_RE.sub(lambda m: _FRACTION_CHARS[m.group()], text[:MAX_INPUT_CHARS])
    if not text.isascii():  # fold accents ("café" -> "cafe"); pure ASCII needs no work
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower()
    text = text.replace("\u2044", "/").replace("'", "").replace("\u2019", "")
    text = _ABBREVIATION_DOT_RE.sub(r"\1 ", text)
    text = re.sub(r"\bw/o\b", " without ", text)
    text = re.sub(r"\bw/", " with ", text)
    text = text.replace("&", " and ").replace("+", " and ")
    text = _RANGE_RE.sub(" to ", text)
    return re.sub(r"[\r\n]+", " ; ", text)


def tokenize(text: str) -> list[str]:
    """Split text into words, numbers and separator marks (the parser's only view of it)."""
    return _TOKEN_RE.findall(_normalise(text))


@functools.lru_cache(maxsize=4096)
def _number(token: str) -> float | None:
    """Value of a numeric token ("2", "1.5", "1/2"), or None for words and unusable numbers."""
    if not _NUMBER_RE.fullmatch(token):
        return None
    numerator, _, denominator = token.partition("/")
    try:
        value = float(numerator) / float(denominator) if denominator else float(numerator)
    except (ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(value) or value < 0 or value > MAX_QUANTITY:
        return None
    return value


def _is_separator(token: str) -> bool:
    return token in _PUNCT_SEPARATORS or token in _SEPARATOR_WORDS


def _is_skippable(token: str) -> bool:
    """Filler words, stray percentages ("2%" outside "2% milk") and oversized numbers."""
    if token in _FILLER_WORDS or token.endswith("%"):
        return True
    return token[0].isdigit() and _number(token) is None


# ---------------------------------------------------------------------------- food table


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
    if unit not in _UNITS:
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
        shipped = resources.files("fitiq_rt.meals.nutrition").joinpath("foods.csv")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_food_csv(text)


# ---------------------------------------------------------------------------- results


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@attrs.frozen
class ParsedItem:
    """One food mention with its amount and nutrients (None when unknown).

    ``recognized`` means the food is in the table. Its numbers can still be None when the
    amount cannot be converted (a volume of a food logged per piece, "1 cup of chicken");
    unrecognized items never carry numbers.
    """

    name: str
    quantity: float
    unit: str
    calories: float | None
    protein_g: float | None
    carbs_g: float | None
    fat_g: float | None
    recognized: bool

    def to_json(self) -> dict[str, object]:
        """Wire form: nutrients rounded to 1 decimal, quantity to 2 (so 1/4 cup stays 0.25)."""
        return {
            "name": self.name,
            "quantity": round(self.quantity, 2),
            "unit": self.unit,
            "calories": _round(self.calories),
            "protein_g": _round(self.protein_g),
            "carbs_g": _round(self.carbs_g),
            "fat_g": _round(self.fat_g),
            "recognized": self.recognized,
        }


@attrs.frozen
class ParsedMeal:
    """All items of one meal text, in the order they were written."""

    items: tuple[ParsedItem, ...]

    @property
    def totals(self) -> dict[str, float]:
        """Sums over recognized items that have numbers, rounded to 1 decimal."""
        totals = {"calories": 0.0, "protein_g": 0.0, "carbs_g": 0.0, "fat_g": 0.0}
        for item in self.items:
            if not item.recognized:
                continue
            for key in totals:
                value = getattr(item, key)
                if value is not None:
                    totals[key] += value
        return {key: round(value, 1) for key, value in totals.items()}

    def to_json(self) -> dict[str, object]:
        """Wire form of the whole meal: item dicts plus totals."""
        return {"items": [item.to_json() for item in self.items], "totals": self.totals}


# ---------------------------------------------------------------------------- conversion


def _food_units(food: Food, quantity: float, unit: str | None) -> float | None:
    """How many of the food's default units ``quantity unit`` is, or None if unknowable."""
    if unit is None or unit == food.unit:
        return quantity
    asked, own = _UNITS[unit], _UNITS[food.unit]
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


# ---------------------------------------------------------------------------- scanning


@attrs.frozen
class _Amount:
    quantity: float | None = None
    unit: str | None = None


_V = TypeVar("_V")
#: First tokens of quantity and unit phrases: lets most tokens skip the phrase lookups.
_FIRST_WORDS = frozenset(key[0] for key in (*_QUANTITY_PHRASES, *_UNIT_WORDS))


def _phrase_at(
    tokens: Sequence[str], i: int, phrases: Mapping[tuple[str, ...], _V], max_words: int
) -> tuple[_V | None, int]:
    """Longest key of ``phrases`` (token tuples) starting at ``i``: (value, size) or (None, 0)."""
    if i >= len(tokens) or tokens[i] not in _FIRST_WORDS:
        return None, 0
    for size in range(min(max_words, len(tokens) - i), 0, -1):
        value = phrases.get(tuple(tokens[i : i + size]))
        if value is not None:
            return value, size
    return None, 0


def _and_a_half(tokens: Sequence[str], i: int) -> tuple[float, int]:
    """'... and a half' / 'and 1/2' after a whole amount: (extra, tokens used)."""
    if i < len(tokens) and tokens[i] == "and":
        if tuple(tokens[i + 1 : i + 3]) == ("a", "half"):
            return 0.5, 3
        if tuple(tokens[i + 1 : i + 2]) == ("half",):
            return 0.5, 2
        if i + 1 < len(tokens) and "/" in tokens[i + 1]:
            fraction = _number(tokens[i + 1])
            if fraction is not None and fraction < 1:
                return fraction, 2
    return 0.0, 0


def _read_number(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    """Digits with an optional mixed fraction ("1 1/2") or range ("2 to 3")."""
    value = _number(tokens[i])
    if value is None:
        return None, i
    i += 1
    if i < len(tokens) and value.is_integer() and "/" in tokens[i]:
        fraction = _number(tokens[i])
        if fraction is not None and fraction < 1:
            value, i = value + fraction, i + 1
    if i + 1 < len(tokens) and tokens[i] in ("to", "or"):
        upper = _number(tokens[i + 1])
        if upper is not None and upper >= value:
            value, i = (value + upper) / 2, i + 2
    return value, i


def _read_quantity(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    value, j = _read_number(tokens, i)
    if value is None:
        found, size = _phrase_at(tokens, i, _QUANTITY_PHRASES, _MAX_QUANTITY_WORDS)
        if found is None:
            return None, i
        value, j = found, i + size
    if value.is_integer():
        extra, used = _and_a_half(tokens, j)
        value, j = value + extra, j + used
    return value, j


def _starts_amount(tokens: Sequence[str], i: int) -> bool:
    return _number(tokens[i]) is not None or (tokens[i],) in _QUANTITY_PHRASES


def _trailing_count(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    """'eggs x2' / 'eggs 2' closing an item: the count and the index after it."""
    j = i + 1 if i < len(tokens) and tokens[i] == "x" else i
    if j >= len(tokens):
        return None, i
    value = _number(tokens[j])
    closes_item = j + 1 >= len(tokens) or _is_separator(tokens[j + 1])
    if value is None or not closes_item:
        return None, i
    return value, j + 1


def _skip_clause(tokens: Sequence[str], i: int) -> int:
    """Skip a negated clause ("no sugar", "without cheese") up to the next separator."""
    i += 1
    while i < len(tokens) and not _is_separator(tokens[i]):
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
            if _is_separator(token):
                i += 1
            elif token in _NEGATION_WORDS:
                i = _skip_clause(tokens, i)
            elif _is_skippable(token) and self.matches[i] is None:
                i += 1
            else:
                i = max(self._item(i), i + 1)
        return self.items

    def _starts_long_alias(self, i: int) -> bool:
        """True when a multi-word food name starts here ("half and half", "cup of noodles")."""
        match = self.matches[i] if i < len(self.tokens) else None
        return match is not None and match[1] > 1

    def _amount(self, i: int) -> tuple[_Amount, int]:
        """Optional quantity, then optional unit: "1 1/2 cups", "a", "half a glass"."""
        tokens = self.tokens
        quantity, i = (None, i) if self._starts_long_alias(i) else _read_quantity(tokens, i)
        unit = None
        if i < len(tokens) and not self._starts_long_alias(i):
            unit, size = _phrase_at(tokens, i, _UNIT_WORDS, _MAX_UNIT_WORDS)
            if unit is not None:
                i += size
                quantity = 1.0 if quantity is None else quantity
                extra, used = _and_a_half(tokens, i) if quantity.is_integer() else (0.0, 0)
                quantity, i = quantity + extra, i + used
        return _Amount(quantity, unit), i

    def _skip_fillers(self, i: int) -> int:
        """Skip "of", "a", descriptors... between an amount and the food name."""
        tokens = self.tokens
        while i < len(tokens) and self.matches[i] is None:
            if not (_is_skippable(tokens[i]) or tokens[i] in ("a", "an")):
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
            if _is_separator(token) or token in _NEGATION_WORDS:
                break
            match = self.matches[i]
            if match is not None or _starts_amount(tokens, i):
                break  # a food name, or a new amount starting the next item ("blorf 2 eggs")
            if not _is_skippable(token):
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
            quantity, i = _trailing_count(tokens, i)
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
