"""argparse types for counts and durations: `--sessions -5` is refused with the option named."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def _bounded(
    kind: type[Number], ok: Callable[[Number], bool], rule: str
) -> Callable[[str], Number]:
    """An argparse type: `kind` parsed from the text, refused unless `ok` (the message: `rule`)."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value:g}")
        return value

    return parse


positive_int = _bounded(int, lambda value: value >= 1, "1 or more")
non_negative_int = _bounded(int, lambda value: value >= 0, "0 or more")
positive_float = _bounded(float, lambda value: value > 0, "more than 0")
non_negative_float = _bounded(float, lambda value: value >= 0, "0 or more")
