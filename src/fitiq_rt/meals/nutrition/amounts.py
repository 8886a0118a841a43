"""Reading an amount: "2", "1 1/2", "2 to 3", "half a", "a couple of", "eggs x2".

Quantity phrases and unit words are matched longest first, as token tuples; the word lists are
the documented phrasing in the package docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import attrs

from .tokens import is_separator, parse_number
from .units import UNIT_WORDS

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
QUANTITY_PHRASES: dict[tuple[str, ...], float] = {
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
MAX_QUANTITY_WORDS = max(len(k) for k in QUANTITY_PHRASES)


@attrs.frozen
class Amount:
    quantity: float | None = None
    unit: str | None = None


_V = TypeVar("_V")
#: First tokens of quantity and unit phrases: lets most tokens skip the phrase lookups.
_FIRST_WORDS = frozenset(key[0] for key in (*QUANTITY_PHRASES, *UNIT_WORDS))


def phrase_at(
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


def and_a_half(tokens: Sequence[str], i: int) -> tuple[float, int]:
    """'... and a half' / 'and 1/2' after a whole amount: (extra, tokens used)."""
    if i < len(tokens) and tokens[i] == "and":
        if tuple(tokens[i + 1 : i + 3]) == ("a", "half"):
            return 0.5, 3
        if tuple(tokens[i + 1 : i + 2]) == ("half",):
            return 0.5, 2
        if i + 1 < len(tokens) and "/" in tokens[i + 1]:
            fraction = parse_number(tokens[i + 1])
            if fraction is not None and fraction < 1:
                return fraction, 2
    return 0.0, 0


def _read_number(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    """Digits with an optional mixed fraction ("1 1/2") or range ("2 to 3")."""
    value = parse_number(tokens[i])
    if value is None:
        return None, i
    i += 1
    if i < len(tokens) and value.is_integer() and "/" in tokens[i]:
        fraction = parse_number(tokens[i])
        if fraction is not None and fraction < 1:
            value, i = value + fraction, i + 1
    if i + 1 < len(tokens) and tokens[i] in ("to", "or"):
        upper = parse_number(tokens[i + 1])
        if upper is not None and upper >= value:
            value, i = (value + upper) / 2, i + 2
    return value, i


def read_quantity(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    value, j = _read_number(tokens, i)
    if value is None:
        found, size = phrase_at(tokens, i, QUANTITY_PHRASES, MAX_QUANTITY_WORDS)
        if found is None:
            return None, i
        value, j = found, i + size
    if value.is_integer():
        extra, used = and_a_half(tokens, j)
        value, j = value + extra, j + used
    return value, j


def starts_amount(tokens: Sequence[str], i: int) -> bool:
    return parse_number(tokens[i]) is not None or (tokens[i],) in QUANTITY_PHRASES


def trailing_count(tokens: Sequence[str], i: int) -> tuple[float | None, int]:
    """'eggs x2' / 'eggs 2' closing an item: the count and the index after it."""
    j = i + 1 if i < len(tokens) and tokens[i] == "x" else i
    if j >= len(tokens):
        return None, i
    value = parse_number(tokens[j])
    closes_item = j + 1 >= len(tokens) or is_separator(tokens[j + 1])
    if value is None or not closes_item:
        return None, i
    return value, j + 1
