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

The modules, in the order text flows through them: ``tokens`` (normalise and split),
``units`` and ``amounts`` (reading "1 1/2 cups"), ``table`` (foods.csv and its alias index),
``parser`` (the scan and the unit conversion) and ``results`` (items and their wire form).
"""

from __future__ import annotations

from .parser import DEFAULT_UNKNOWN_UNIT, parse_meal
from .results import ParsedItem, ParsedMeal
from .table import Food, FoodTable, load_food_table, parse_food_csv
from .tokens import MAX_INPUT_CHARS, MAX_QUANTITY, tokenize
from .units import Unit

__all__ = [
    "DEFAULT_UNKNOWN_UNIT",
    "MAX_INPUT_CHARS",
    "MAX_QUANTITY",
    "Food",
    "FoodTable",
    "ParsedItem",
    "ParsedMeal",
    "Unit",
    "load_food_table",
    "parse_food_csv",
    "parse_meal",
    "tokenize",
]
