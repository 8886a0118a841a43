"""Tests for the offline meal parser (fitiq_rt.meals.nutrition) and its USDA food table.

Expected calories are pinned from foods.csv (per-unit USDA values times the parsed amount),
so a change to the table or to the parser's arithmetic shows up here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitiq_rt.meals.nutrition import (
    Food,
    FoodTable,
    ParsedItem,
    ParsedMeal,
    load_food_table,
    parse_meal,
)

U = "serving"  # unit reported for unknown foods typed without a unit

# (text, [(name, quantity, unit), ...], total calories of the recognized items)
PHRASES: list[tuple[str, list[tuple[str, float, str]], float]] = [
    ("2 eggs and a slice of toast", [("egg", 2, "piece"), ("toast", 1, "slice")], 220.0),
    ("1 cup of rice", [("rice", 1, "cup")], 205.4),
    ("100 g chicken breast", [("chicken breast", 100, "g")], 165.0),
    ("half an avocado", [("avocado", 0.5, "piece")], 113.5),
    (
        "a banana, an apple & 2 tbsp peanut butter",
        [("banana", 1, "piece"), ("apple", 1, "piece"), ("peanut butter", 2, "tbsp")],
        391.0,
    ),
    ("coffee with milk", [("coffee", 1, "cup"), ("milk", 1, "cup")], 124.4),
    ("3 slices of pepperoni pizza", [("pepperoni pizza", 3, "slice")], 939.0),
    ("blorf and 2 eggs", [("blorf", 1, U), ("egg", 2, "piece")], 143.0),
    ("1 1/2 cups of oatmeal", [("oatmeal", 1.5, "cup")], 249.1),
    ("one and a half cups brown rice", [("brown rice", 1.5, "cup")], 372.8),
    ("1½ cups milk", [("milk", 1.5, "cup")], 183.0),
    ("1.5 cups milk", [("milk", 1.5, "cup")], 183.0),
    (".5 cup blueberries", [("blueberries", 0.5, "cup")], 42.2),
    ("2-3 eggs", [("egg", 2.5, "piece")], 178.8),
    ("a couple of slices of bacon", [("bacon", 2, "slice")], 86.6),
    ("a few almonds", [("almonds", 3, "piece")], 20.7),
    ("10 almonds", [("almonds", 10, "piece")], 69.0),
    ("a handful of almonds", [("almonds", 1, "handful")], 172.5),
    ("a dozen eggs", [("egg", 12, "piece")], 858.0),
    ("half a dozen eggs", [("egg", 6, "piece")], 429.0),
    ("mac & cheese", [("mac and cheese", 1, "cup")], 310.0),
    ("half and half", [("half and half", 1, "tbsp")], 19.6),
    (
        "peanut butter and jelly sandwich",
        [("peanut butter and jelly sandwich", 1, "piece")],
        401.0,
    ),
    (
        "2 tbsp peanut butter on whole wheat toast",
        [("peanut butter", 2, "tbsp"), ("whole wheat bread", 1, "slice")],
        272.0,
    ),
    (
        "brown rice with black beans",
        [("brown rice", 1, "cup"), ("black beans", 1, "cup")],
        475.5,
    ),
    ("a pint of beer", [("beer", 1, "pint")], 204.1),
    ("a glass of red wine", [("red wine", 1, "glass")], 125.0),
    ("a glass of orange juice", [("orange juice", 1, "glass")], 111.6),
    ("200 ml whole milk", [("whole milk", 200, "ml")], 125.8),
    ("8 oz steak", [("steak", 8, "oz")], 467.2),
    ("4 ounces of salmon", [("salmon", 4, "oz")], 233.6),
    ("1 lb ground beef", [("ground beef", 1, "lb")], 1233.8),
    ("2 tsp sugar", [("sugar", 2, "tsp")], 32.6),
    ("1 tbsp olive oil", [("olive oil", 1, "tbsp")], 119.3),
    ("a can of coke", [("cola", 1, "can")], 155.4),
    ("2 cans of diet coke", [("diet soda", 2, "can")], 14.2),
    (
        "a bowl of oatmeal with blueberries and honey",
        [("oatmeal", 1, "bowl"), ("blueberries", 1, "cup"), ("honey", 1, "tbsp")],
        314.3,
    ),
    (
        "Large fries + Big Mac; DIET COKE",
        [("french fries", 1, "serving"), ("big mac", 1, "piece"), ("diet soda", 1, "can")],
        935.1,
    ),
    ("I had 2 scrambled eggs for breakfast", [("scrambled eggs", 2, "piece")], 181.8),
    (
        "Grilled chicken breast, steamed broccoli and 1 cup quinoa",
        [("grilled chicken breast", 1, "piece"), ("broccoli", 1, "cup"), ("quinoa", 1, "cup")],
        572.6,
    ),
    ("eggs x2", [("egg", 2, "piece")], 143.0),
    (
        "toast\nbutter\ncoffee",
        [("toast", 1, "slice"), ("butter", 1, "tbsp"), ("coffee", 1, "cup")],
        181.2,
    ),
    ("2 chorizo eggs", [("chorizo", 1, U), ("egg", 2, "piece")], 143.0),
    ("bagel w/ cream cheese", [("bagel", 1, "piece"), ("cream cheese", 1, "tbsp")], 305.2),
    ("coffee, no sugar", [("coffee", 1, "cup")], 2.4),
    ("a cup of tea with a splash of milk", [("tea", 1, "cup"), ("milk", 1, "splash")], 17.6),
    (
        "2 slices of cheese and 3 crackers",
        [("cheddar cheese", 2, "slice"), ("crackers", 3, "piece")],
        263.1,
    ),
    ("blorf", [("blorf", 1, U)], 0.0),
    ("100g of blorf", [("blorf", 100, "g")], 0.0),
    (
        "3 sunny side up eggs and 2 slices of bacon",
        [("egg", 3, "piece"), ("bacon", 2, "slice")],
        301.1,
    ),
    (
        "A slice of pizza & a can of sprite",
        [("pizza", 1, "slice"), ("lemon lime soda", 1, "can")],
        435.5,
    ),
    (
        "2 cups of spaghetti with marinara sauce",
        [("pasta", 2, "cup"), ("marinara sauce", 1, "cup")],
        567.4,
    ),
    ("café latte", [("latte", 1, "cup")], 95.0),
    ("2 hard-boiled eggs", [("hard-boiled egg", 2, "piece")], 155.0),
    ("2% milk", [("milk", 1, "cup")], 122.0),
    ("salad with ranch dressing", [("salad", 1, "serving"), ("ranch dressing", 1, "tbsp")], 97.5),
    ("7up", [("lemon lime soda", 1, "can")], 150.9),
    ("a dollop of sour cream", [("sour cream", 1, "dollop")], 47.6),
    ("1 tbsp milk", [("milk", 1, "tbsp")], 7.6),
    ("half a cup of greek yogurt", [("greek yogurt", 0.5, "cup")], 72.3),
    ("8 oz. steak", [("steak", 8, "oz")], 467.2),
    ("two bananas + three apples", [("banana", 2, "piece"), ("apple", 3, "piece")], 493.8),
    (
        "3 Chicken Nuggets, small fries & a Coke",
        [
            ("chicken nuggets", 3, "piece"),
            ("french fries", 1, "serving"),
            ("cola", 1, "can"),
        ],
        662.6,
    ),
]


@pytest.mark.parametrize(("text", "expected", "calories"), PHRASES, ids=[p[0] for p in PHRASES])
def test_phrase(text: str, expected: list[tuple[str, float, str]], calories: float) -> None:
    meal = parse_meal(text)
    got = [(item.name, item.quantity, item.unit) for item in meal.items]
    assert got == [(name, pytest.approx(qty), unit) for name, qty, unit in expected]
    assert meal.totals["calories"] == pytest.approx(calories, abs=0.11)


def test_phrase_table_is_big_enough() -> None:
    assert len(PHRASES) >= 40


# ---------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("amount", "quantity"),
    [
        ("a", 1),
        ("an", 1),
        ("one", 1),
        ("two", 2),
        ("five", 5),
        ("twelve", 12),
        ("half", 0.5),
        ("a half", 0.5),
        ("half a", 0.5),
        ("a quarter of", 0.25),
        ("a couple of", 2),
        ("a couple", 2),
        ("a pair of", 2),
        ("a few", 3),
        ("several", 3),
        ("a dozen", 12),
        ("1/2", 0.5),
        ("1 1/2", 1.5),
        ("1½", 1.5),
        ("¾", 0.75),
        ("2.25", 2.25),
        ("3 to 4", 3.5),
        ("2 or 3", 2.5),
        ("two and a half", 2.5),
        ("1 and 1/2", 1.5),
    ],
)
def test_quantity_words(amount: str, quantity: float) -> None:
    (item,) = parse_meal(f"{amount} bananas").items
    assert item.name == "banana"
    assert item.quantity == pytest.approx(quantity)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("3 tsp sugar", "1 tbsp sugar"),
        ("16 tbsp milk", "1 cup milk"),
        ("2 cups milk", "1 pint milk"),
        ("1 oz almonds", "28.35 g almonds"),
        ("1 lb rice", "453.592 g rice"),
        ("1 kg rice", "1000 grams of rice"),
        ("1 glass of milk", "1 cup milk"),
        ("a mug of coffee", "a cup of coffee"),
        ("a bowl of cereal", "1 cup of cereal"),
        ("a bottle of beer", "a can of beer"),
        ("24 fl oz beer", "2 cans of beer"),
        ("a piece of toast", "a slice of toast"),
        ("a serving of rice", "1 cup rice"),
        ("a glass of wine", "a serving of wine"),
        ("1/2 cup rice", "half a cup of rice"),
        ("a cup and a half of rice", "1.5 cups rice"),
    ],
)
def test_equivalent_amounts(left: str, right: str) -> None:
    assert parse_meal(left).totals == parse_meal(right).totals
    assert parse_meal(left).totals["calories"] > 0


def test_grams_use_grams_per_unit() -> None:
    (rice,) = parse_meal("100 g rice").items
    assert rice.calories == pytest.approx(130.0, abs=0.05)  # USDA: 130 kcal per 100 g
    assert rice.protein_g == pytest.approx(2.69, abs=0.01)


def test_volume_of_a_counted_food_is_recognized_without_numbers() -> None:
    meal = parse_meal("1 cup chicken and 1 egg")
    chicken, egg = meal.items
    assert chicken.recognized and chicken.name == "chicken breast"
    assert (chicken.calories, chicken.protein_g, chicken.carbs_g, chicken.fat_g) == (None,) * 4
    assert meal.totals["calories"] == pytest.approx(egg.calories or 0, abs=0.05)


# ---------------------------------------------------------------------------- matching


def test_longest_alias_wins() -> None:
    names = [item.name for item in parse_meal("peanut butter, butter, brown rice, rice").items]
    assert names == ["peanut butter", "butter", "brown rice", "rice"]


def test_case_and_punctuation_are_ignored() -> None:
    plain = parse_meal("2 eggs and a slice of toast").to_json()
    noisy = parse_meal("  2 EGGS!!! and... a Slice of TOAST?? ").to_json()
    assert noisy == plain


@pytest.mark.parametrize(
    "text",
    [
        "eggs, toast",
        "eggs and toast",
        "eggs & toast",
        "eggs with toast",
        "eggs + toast",
        "eggs; toast",
        "eggs\ntoast",
        "eggs w/ toast",
        "eggs plus toast",
    ],
)
def test_separators(text: str) -> None:
    assert [item.name for item in parse_meal(text).items] == ["egg", "toast"]


def test_every_table_alias_parses_to_its_own_food() -> None:
    for food in load_food_table():
        for phrase in (food.name, *food.aliases):
            items = parse_meal(phrase).items
            assert [(i.name, i.quantity) for i in items] == [(food.name, 1.0)], phrase
            items = parse_meal(f"3 {phrase}").items
            assert [(i.name, i.quantity) for i in items] == [(food.name, 3.0)], phrase


@pytest.mark.parametrize("text", ["", "   ", "\n\n", ",,, and ;; with", "!!!", "for breakfast"])
def test_empty_after_cleaning_gives_no_items(text: str) -> None:
    meal = parse_meal(text)
    assert meal.items == ()
    assert meal.totals == {"calories": 0.0, "protein_g": 0.0, "carbs_g": 0.0, "fat_g": 0.0}


def test_non_string_input_gives_no_items() -> None:
    assert parse_meal(None).items == ()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- results


def test_to_json_shape_and_rounding() -> None:
    meal = parse_meal("1/3 cup rice and 2 blorfs")
    rice, blorf = (item.to_json() for item in meal.items)
    keys = {"name", "quantity", "unit", "calories", "protein_g", "carbs_g", "fat_g", "recognized"}
    assert set(rice) == set(blorf) == keys
    assert rice["calories"] == 68.5  # 205.4 / 3, rounded to 1 decimal
    assert rice["quantity"] == 0.33
    assert blorf == {
        "name": "blorfs",
        "quantity": 2.0,
        "unit": "serving",
        "calories": None,
        "protein_g": None,
        "carbs_g": None,
        "fat_g": None,
        "recognized": False,
    }
    assert meal.to_json()["totals"] == meal.totals


def test_totals_sum_only_recognized_items() -> None:
    meal = ParsedMeal(
        items=(
            ParsedItem("a", 1, "piece", 10.04, 1.0, 2.0, 3.0, True),
            ParsedItem("b", 2, "cup", 5.02, None, 0.5, 0.25, True),
            ParsedItem("c", 1, "serving", 999.0, 9.0, 9.0, 9.0, False),
        )
    )
    assert meal.totals == {"calories": 15.1, "protein_g": 1.0, "carbs_g": 2.5, "fat_g": 3.2}


# ---------------------------------------------------------------------------- fuzzing

_table_words = sorted({word for food in load_food_table() for word in food.name.split()})
_glue = ["and", "with", ",", ";", "&", "+", "\n", "a", "half", "of", "no", "x", "the", "blorf"]
_amounts = ["1", "2", "1/2", "1 1/2", "½", "0", "99999999999", "1/0", "3-4", ".5", "2%"]
_units = ["g", "oz", "cup", "cups", "tbsp", "tsp", "slice", "piece", "glass", "can", "ml"]
_meal_words = st.lists(st.sampled_from(_table_words + _glue + _amounts + _units), max_size=60).map(
    " ".join
)
_any_text = st.text(max_size=2000)


def _check_invariants(meal: ParsedMeal) -> None:
    assert isinstance(meal, ParsedMeal)
    for item in meal.items:
        numbers = (item.calories, item.protein_g, item.carbs_g, item.fat_g)
        if not item.recognized:
            assert numbers == (None, None, None, None)
        for value in numbers:
            assert value is None or (math.isfinite(value) and value >= 0)
        assert math.isfinite(item.quantity) and item.quantity >= 0
        assert item.name and item.unit
        item.to_json()
    assert all(math.isfinite(v) for v in meal.totals.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_any_text)
def test_never_raises_on_arbitrary_text(text: str) -> None:
    _check_invariants(parse_meal(text))


@settings(max_examples=300, deadline=None)
@given(_meal_words)
def test_meal_like_text_keeps_invariants(text: str) -> None:
    _check_invariants(parse_meal(text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="bcdfghkmnqrvwz", min_size=3, max_size=8), min_size=1))
def test_unknown_words_never_get_numbers(words: list[str]) -> None:
    meal = parse_meal(" ".join(words))
    assert all(not item.recognized for item in meal.items)
    assert all(item.calories is None and item.fat_g is None for item in meal.items)
    assert meal.totals["calories"] == 0.0


def test_long_input_parses() -> None:
    text = ("2 eggs and a slice of toast, 1 cup of rice with 100 g chicken breast; " * 40)[:2000]
    meal = parse_meal(text)
    assert len(meal.items) > 100
    assert meal.totals["calories"] > 0


# ---------------------------------------------------------------------------- food table


def test_table_is_cached_and_large() -> None:
    table = load_food_table()
    assert table is load_food_table()
    assert len(table) >= 150


def _atwater(food: Food) -> float:
    return 4 * food.protein_g + 4 * food.carbs_g + 9 * food.fat_g


@pytest.mark.parametrize("food", list(load_food_table()), ids=lambda food: food.name)
def test_table_row_is_sane(food: Food) -> None:
    assert food.name == food.name.strip().lower() and food.source
    assert 0 < food.grams_per_unit <= 1000
    assert 0 <= food.calories <= 1500
    # Macros cannot weigh more than the portion itself.
    assert food.protein_g + food.carbs_g + food.fat_g <= food.grams_per_unit * 1.001
    # Energy density no food exceeds (pure fat is 9 kcal/g).
    assert food.calories <= 9.1 * food.grams_per_unit
    atwater = _atwater(food)
    if "alcohol" in food.source.lower():
        # Alcohol brings 7 kcal/g that 4/4/9 does not count, so energy can only be higher.
        assert food.calories >= atwater - 1
    else:
        # USDA uses food-specific Atwater factors; fibre-rich vegetables differ by up to ~22%.
        assert abs(food.calories - atwater) <= max(10.0, 0.25 * max(food.calories, atwater))
    if food.fdc_id is not None:
        assert 100_000 <= food.fdc_id <= 9_999_999


def test_table_names_are_unique() -> None:
    names = [food.name for food in load_food_table()]
    assert len(names) == len(set(names))


def test_table_covers_required_kinds_of_food() -> None:
    table = load_food_table()
    for phrase in [
        "egg",
        "toast",
        "whole wheat bread",
        "banana",
        "broccoli",
        "steak",
        "salmon",
        "cheese",
        "yogurt",
        "oatmeal",
        "pasta",
        "rice",
        "black beans",
        "almonds",
        "potato chips",
        "coffee",
        "tea",
        "milk",
        "orange juice",
        "soda",
        "beer",
        "wine",
        "pizza slice",
        "burger",
        "fries",
        "sandwich",
    ]:
        assert table.get(phrase) is not None, phrase


def _write_table(path: Path, rows: list[str]) -> Path:
    header = "name,aliases,unit,grams_per_unit,calories,protein_g,carbs_g,fat_g,fdc_id,source"
    path.write_text("\n".join(["# test table", header, *rows]) + "\n", encoding="utf-8")
    return path


def test_custom_table_from_path(tmp_path: Path) -> None:
    path = _write_table(
        tmp_path / "foods.csv",
        ["zorp,zorps|zorp cake,piece,40,100,1,20,1.5,,made up", "glug,,cup,240,50,0,12,0,,made up"],
    )
    table = load_food_table(path)
    assert isinstance(table, FoodTable) and len(table) == 2
    meal = parse_meal("2 zorp cakes and half a cup of glug and 1 egg", table)
    assert [(i.name, i.quantity, i.recognized) for i in meal.items] == [
        ("zorp", 2, True),
        ("glug", 0.5, True),
        ("egg", 1, False),
    ]
    assert meal.totals["calories"] == 225.0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["a,x,piece,10,1,0,0,0,,s", "b,x,piece,10,1,0,0,0,,s"], "alias"),
        (["a,,furlong,10,1,0,0,0,,s"], "unit"),
        (["a,,piece,0,1,0,0,0,,s"], "grams_per_unit"),
        (["a,,piece,10,-1,0,0,0,,s"], "calories"),
        (["a,,piece,10,nan,0,0,0,,s"], "calories"),
    ],
)
def test_bad_table_is_rejected(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_food_table(_write_table(tmp_path / "bad.csv", rows))
