"""Meal text to tokens: the parser's only view of what the user typed.

Normalisation folds the variants people type (case, accents, "½", "w/", "2-3", "oz.") into one
form, so the rest of the parser never sees them. The token classes (separators, negations,
filler words) live here too, since they are decided per token.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata

#: Longer input is cut here: a meal log never needs more, and it bounds the work per request.
MAX_INPUT_CHARS = 20_000
#: Amounts above this are treated as noise (typos, pasted ids), not quantities.
MAX_QUANTITY = 100_000.0

_SEPARATOR_WORDS = frozenset({"and", "with", "plus", "then", "or", "on", "w", "alongside"})
NEGATION_WORDS = frozenset({"no", "without", "minus", "hold"})
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
def parse_number(token: str) -> float | None:
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


def is_separator(token: str) -> bool:
    return token in _PUNCT_SEPARATORS or token in _SEPARATOR_WORDS


def is_skippable(token: str) -> bool:
    """Filler words, stray percentages ("2%" outside "2% milk") and oversized numbers."""
    if token in _FILLER_WORDS or token.endswith("%"):
        return True
    return token[0].isdigit() and parse_number(token) is None
