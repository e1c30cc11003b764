"""The rolling-origin folds of ``bench/bench_season_folds.py``: where each fold's blocks lie and
how a candidate is scored (its smoke run is in ``test_bench_smoke.py``)."""

from __future__ import annotations

import pytest

from tests.bench.scripts import bench_script


@pytest.fixture(scope="module")
def folds():
    return bench_script("bench_season_folds")


def _rows(overrides: list[str]) -> dict[str, int]:
    return {o.split("=")[0].rsplit(".", 1)[1]: int(o.split("=")[1]) for o in overrides if o.endswith(tuple("0123456789"))}


def test_fold_three_is_the_standard_split_and_the_others_end_before_the_test_months(folds) -> None:
    assert _rows(folds.fold_overrides(3, 2880)) == {"skip_rows": 0, "train_rows": 8640, "val_rows": 2880,
                                                      "test_rows": 2880}
    for fold in (1, 2):
        rows = _rows(folds.fold_overrides(fold, 2880))
        assert rows["train_rows"] == 2880 * fold
        assert rows["train_rows"] + rows["val_rows"] + rows["test_rows"] <= 8640 + 2880  # before row 11520


def test_score_is_the_geometric_mean_of_the_folds_seed_medians(folds) -> None:
    # fold medians 1.0 and 4.0 -> 2.0 (the arithmetic mean would be 2.5; the outlier seed 9.0 is ignored)
    assert folds.score({1: [0.5, 1.0, 9.0], 2: [4.0, 3.0, 5.0]}) == pytest.approx(2.0)
    # a 10% gain in either fold moves the score by the same factor, whatever the fold's scale
    assert folds.score({1: [1.1], 2: [4.0]}) == pytest.approx(folds.score({1: [1.0], 2: [4.4]}))
