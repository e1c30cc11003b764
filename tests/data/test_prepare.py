"""Split boundaries, train-only scaler fitting, repairing checks, ETTh1 and the CLI report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl.cli.main import main
from tsdl.config import load_config
from tsdl.data import SeriesScalers, prepare_data, prepare_inference, run_checklist

from .conftest import REPO_ROOT, long_frame, make_config

_SMALL = {"input_chunk_length": 12, "output_chunk_length": 6}


def test_rows_split_boundaries_and_lookback_from_previous_segment(write_csv) -> None:
    path = write_csv(long_frame(2, 100))
    split = {"method": "rows", "train_rows": 60, "val_rows": 20, "test_rows": 20}
    prepared = prepare_data(make_config(path=str(path), split=split, **_SMALL))
    times = pd.date_range("2024-01-01", periods=100, freq="h")
    assert prepared.split_boundaries["val"] == {"start": str(times[60]), "end": str(times[79])}
    counts = {s: len(prepared.windows(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 2 * (60 - 18 + 1), "val": 2 * (20 - 6 + 1), "test": 2 * (20 - 6 + 1)}
    val = prepared.windows("val")
    first = val.horizon_times(np.array([0]))[0]
    assert first[0] == np.datetime64(times[60])  # first val target is the first val row...
    assert val.times[val.starts(np.array([0]))[0]] == times[48].value  # ...its lookback is train
    train_last = prepared.windows("train").horizon_times(np.array([counts["train"] // 2 - 1]))[0, -1]
    assert train_last == np.datetime64(times[59])


def test_skip_rows_is_the_same_as_a_file_without_those_rows(write_csv) -> None:
    frame = long_frame(2, 130)
    split = {"method": "rows", "train_rows": 60, "val_rows": 20, "test_rows": 20}
    skipped = prepare_data(make_config(path=str(write_csv(frame, "all.csv")), split={**split, "skip_rows": 30}, **_SMALL))
    trimmed = frame[frame.groupby("unique_id").cumcount() >= 30]
    reference = prepare_data(make_config(path=str(write_csv(trimmed, "cut.csv")), split=split, **_SMALL))
    assert skipped.split_boundaries == reference.split_boundaries
    assert skipped.split_boundaries["train"]["start"] == str(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=30))
    assert skipped.scalers.state_dict() == reference.scalers.state_dict()  # fitted on rows 30:90 only
    for name in ("train", "val", "test"):
        a, b = skipped.windows(name), reference.windows(name)
        np.testing.assert_array_equal(a.batch_at(np.arange(len(a))).target, b.batch_at(np.arange(len(b))).target)
    too_many = make_config(path=str(write_csv(frame, "all.csv")), split={**split, "skip_rows": 120}, **_SMALL)
    assert "split_windows" in {r.name for r in run_checklist(too_many).failed}


def test_timestamp_and_fraction_splits(write_csv) -> None:
    path = write_csv(long_frame(1, 100))
    by_time = make_config(
        path=str(path), split={"method": "timestamp", "val_start": "2024-01-03 12:00", "test_start": "2024-01-04"}, **_SMALL
    )
    assert prepare_data(by_time).split_boundaries["val"]["start"] == "2024-01-03 12:00:00"
    by_fraction = make_config(path=str(path), split={"val_fraction": 0.2, "test_fraction": 0.2}, **_SMALL)
    report = prepare_data(by_fraction).report.splits
    assert report["test"]["start"] == str(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=80))


@pytest.mark.parametrize("kind", ["standard", "robust", "minmax", "none"])
def test_scalers_see_only_train_values(write_csv, kind: str) -> None:
    frame = long_frame(2, 100)
    split = {"method": "rows", "train_rows": 60, "val_rows": 20, "test_rows": 20}
    base = prepare_data(make_config(path=str(write_csv(frame, "a.csv")), split=split, scaler=kind, **_SMALL))
    poisoned = frame.copy()
    in_eval = poisoned.groupby("unique_id").cumcount() >= 60
    poisoned.loc[in_eval, "y"] = 1e6  # val/test values that would dominate any statistic
    other = prepare_data(make_config(path=str(write_csv(poisoned, "b.csv")), split=split, scaler=kind, **_SMALL))
    assert other.scalers.state_dict() == base.scalers.state_dict()
    y0 = frame.loc[frame.unique_id == "s0", "y"].to_numpy()[:60]
    expected = {"standard": (y0.mean(), y0.std()), "robust": (np.median(y0), np.subtract(*np.percentile(y0, [75, 25]))),
                "minmax": (y0.min(), y0.max() - y0.min()), "none": (0.0, 1.0)}[kind]
    np.testing.assert_allclose(base.scalers.center[0, 0], expected[0])
    np.testing.assert_allclose(base.scalers.scale[0, 0], expected[1])
    restored = SeriesScalers.from_state(base.scalers.state_dict())
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    ids = np.array(["s0", "s1"], dtype=object)
    np.testing.assert_allclose(restored.inverse_transform(ids, restored.transform(ids, values)), values)


def test_unsorted_gappy_nan_and_short_input_is_repaired_with_warnings(write_csv) -> None:
    frame = long_frame(3, 100)
    frame = frame.drop(index=[5]).sample(frac=1.0, random_state=0)  # one gap, shuffled rows
    frame.loc[frame.index[:2], "y"] = np.nan
    short = long_frame(1, 10).assign(unique_id="tiny")
    path = write_csv(pd.concat([frame, short]))
    config = make_config(path=str(path), missing="interpolate", **_SMALL)
    report = run_checklist(config)
    status = {r.name: r.status for r in report.rows}
    assert status["sorted"] == status["gaps"] == status["missing_values"] == status["short_series"] == "warn"
    assert "tiny" in next(r.detail for r in report.rows if r.name == "short_series")
    prepared = prepare_data(config)
    assert prepared.series_ids == ["s0", "s1", "s2"] and prepared.stats()["n_timesteps"] == 300
    batch = prepared.windows("train").batch_at(np.arange(len(prepared.windows("train"))))
    assert np.isfinite(batch.past.numpy()).all() and np.isfinite(batch.target.numpy()).all()


def test_covariates_calendar_and_features(write_csv) -> None:
    frame = long_frame(2, 120)
    frame["temp"] = np.random.default_rng(0).normal(size=len(frame))
    frame["promo"] = (np.arange(len(frame)) % 7 == 0).astype(float)
    frame["size"] = np.where(frame.unique_id == "s0", 1.0, 2.0)
    covariates = {"past": ["temp"], "future": ["promo"], "static": ["size"], "calendar": ["hour", "dayofweek"]}
    prepared = prepare_data(make_config(path=str(write_csv(frame)), covariates=covariates, **_SMALL))
    assert prepared.feature_names == {
        "past": ["y", "temp", "promo", "cal_hour", "cal_dayofweek"],
        "future": ["promo", "cal_hour", "cal_dayofweek"],
        "static": ["size"],
    }
    batch = prepared.windows("train").batch_at(np.arange(4))
    assert batch.past.shape == (4, 12, 5) and batch.future.shape == (4, 6, 3) and batch.static.shape == (4, 1)
    assert float(batch.past[..., 3:].abs().max()) <= 0.5


def test_prepare_inference_uses_the_stored_scalers(write_csv) -> None:
    frame = long_frame(2, 80)
    config = make_config(path=str(write_csv(frame)), covariates={"calendar": ["hour"]}, **_SMALL)
    prepared = prepare_data(config)
    windows = prepare_inference(config, write_csv(frame, "new.csv"), prepared.scalers.state_dict())
    assert len(windows) == 2
    batch = windows.batch_at(np.arange(2))
    last = frame[frame.unique_id == "s1"]["y"].to_numpy()[-12:]
    np.testing.assert_allclose(
        prepared.scalers.inverse_transform("s1", batch.past.numpy()[1, :, 0]), last, rtol=1e-5
    )
    assert windows.horizon_times(np.array([0]))[0, 0] == np.datetime64(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=80))


def test_synthetic_data_when_no_path() -> None:
    prepared = prepare_data(make_config(synthetic={"n_series": 4, "n_timesteps": 300}, **_SMALL))
    stats = prepared.stats()
    assert stats["n_series"] == 4 and stats["n_timesteps"] == 1200 and stats["source"] == "synthetic"
    assert prepared.content_hash() == prepare_data(make_config(synthetic={"n_series": 4, "n_timesteps": 300}, **_SMALL)).content_hash()


def test_etth1_standard_split_via_cli(
    etth1_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert main(["check-data", "-c", "examples/etth1.yaml"]) == 0
    out = capsys.readouterr().out
    assert "2017-06-26 00:00:00" in out and "2017-10-24 00:00:00" in out  # val / test starts
    prepared = prepare_data(load_config(Path("examples/etth1.yaml")))
    assert {s: len(prepared.windows(s)) for s in ("train", "val", "test")} == {
        "train": 7 * (8640 - 336 - 96 + 1), "val": 7 * (2880 - 96 + 1), "test": 7 * (2880 - 96 + 1)
    }
