"""Seasonal naive and the MASE scale from each series' history, whatever the window's lookback."""

from __future__ import annotations

import numpy as np
import pytest

from tsdl.evaluation import MetricUnavailable, history_naive, train_scale

IDS = np.array(["a", "b"])


def test_history_naive_repeats_the_season_before_the_origin() -> None:
    target = np.array(
        [0.0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15]
    )  # a: rows 0-7, b: rows 8-13
    # Window of a forecasting from row 6 with season 4: rows 2..5 repeated; b from row 13 with season 2.
    out = history_naive(target, np.array([0, 8]), np.array([6, 13]), 5, 4, IDS)
    np.testing.assert_array_equal(out[0], [2, 3, 4, 5, 2])
    out = history_naive(target, np.array([0, 8]), np.array([6, 13]), 3, 2, IDS)
    np.testing.assert_array_equal(out, [[4, 5, 4], [13, 14, 13]])  # b: rows 11, 12


def test_history_naive_names_the_series_without_a_full_season() -> None:
    target = np.arange(14.0)
    with pytest.raises(
        MetricUnavailable, match="series 'b' has 3 observed steps .* one season \\(4\\)"
    ):
        history_naive(target, np.array([0, 8]), np.array([6, 11]), 2, 4, IDS)


def test_train_scale_is_the_mean_seasonal_difference_of_the_train_segment() -> None:
    # a: train rows 0..3 = [1, 2, 4, 7] -> season 2: |4-1|, |7-2| -> 4; b: train rows 8..11 constant -> 0.
    target = np.array([1.0, 2, 4, 7, 99, 99, 99, 99, 5, 5, 5, 5, 99, 99])
    scale = train_scale(
        target, np.array([0, 8, 0]), np.array([4, 12, 4]), 2, np.array(["a", "b", "a"])
    )
    np.testing.assert_allclose(scale, [4.0, 0.0, 4.0])


def test_train_scale_needs_more_than_one_season_of_training() -> None:
    with pytest.raises(MetricUnavailable, match="series 'b' has 4 training steps"):
        train_scale(np.arange(14.0), np.array([0, 8]), np.array([6, 12]), 4, IDS)
    with pytest.raises(MetricUnavailable, match="constant at lag 1"):
        train_scale(np.ones(14), np.array([0, 8]), np.array([6, 12]), 1, IDS)
