"""The parser's results: items with amounts and nutrients, and their wire form.

``to_json`` is what REST answers and notifications carry, so its rounding is part of the
contract (nutrients to 1 decimal, quantities to 2).
"""

from __future__ import annotations

import attrs


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
