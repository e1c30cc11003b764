"""One season-length definition, used by the data layer (and so by the baseline, MASE and doctor)."""

from __future__ import annotations

import pytest

from tsdl.data import prepare_data
from tsdl.data.seasons import season_length
from tsdl.errors import DataError

from .conftest import long_frame, make_config


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("h", 24),
        ("2h", 12),
        ("15min", 96),
        ("min", 1440),
        ("30s", 2880),  # a day of 30-second steps
        ("7h", 1),  # 7-hour steps do not line up with days
        ("24h", 7),  # a day written as hours is a day
        ("D", 7),
        ("2D", 1),  # a week is 3.5 two-day steps
        ("7D", 52),
        ("B", 5),
        ("W", 52),
        ("W-SUN", 52),
        ("2W", 26),
        ("MS", 12),
        ("ME", 12),
        ("M", 12),  # legacy alias
        ("2MS", 6),
        ("5ME", 1),
        ("QE-DEC", 4),
        ("QS-OCT", 4),
        ("YE-DEC", 1),
    ],
)
def test_season_length(freq: str, season: int) -> None:
    assert season_length(freq) == season


def test_unknown_frequency_is_a_one_line_error() -> None:
    with pytest.raises(DataError, match="'not-a-freq' is not a pandas frequency"):
        season_length("not-a-freq")


@pytest.mark.parametrize(("freq", "season"), [("2D", 1), ("7h", 1), ("30s", 2880), ("QS", 4)])
def test_prepared_data_uses_the_definition(write_csv, freq: str, season: int) -> None:
    path = write_csv(long_frame(n_series=1, n_steps=120, freq=freq))
    prepared = prepare_data(
        make_config(path=str(path), input_chunk_length=8, output_chunk_length=2)
    )
    assert prepared.season_length == season
    configured = make_config(
        path=str(path), input_chunk_length=8, output_chunk_length=2, seasonality=3
    )
    assert prepare_data(configured).season_length == 3
