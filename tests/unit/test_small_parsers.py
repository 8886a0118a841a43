"""Small parsers with sharp edges: Unicode digits and years before 1000."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fitiq_rt.meals.model import stamp
from fitiq_rt.realtime.endpoint import parse_last_seq


@pytest.mark.parametrize("text", ["²", "٣", "-1", "1.5", "", " 1", "9" * 17])
def test_last_seq_accepts_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError):
        parse_last_seq(text)


def test_last_seq_values() -> None:
    assert parse_last_seq(None) is None
    assert parse_last_seq("0") == 0
    assert parse_last_seq("42") == 42


def test_stamps_are_fixed_width_for_every_year() -> None:
    early = stamp(datetime(87, 4, 14, tzinfo=UTC))
    late = stamp(datetime(2026, 11, 25, 8, 30, tzinfo=UTC))
    assert early == "0087-04-14T00:00:00.000000Z"
    assert late == "2026-11-25T08:30:00.000000Z"
    assert len(early) == len(late) and early < late  # they sort as strings and as times
