"""Index-based windows equal the naive slice-every-window reference; augmentation is train-only."""

from __future__ import annotations

import numpy as np
import pytest

from tsdl.config.training import AugmentConfig
from tsdl.data import prepare_data
from tsdl.data.windows import WindowSet

from .conftest import make_config


def _naive_windows(series: list[np.ndarray], L: int, H: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: a Python loop that slices every window of every series."""
    pasts, targets = [], []
    for values in series:
        for s in range(0, len(values) - L - H + 1, stride):
            pasts.append(values[s : s + L])
            targets.append(values[s + L : s + L + H, 0])
    return np.stack(pasts), np.stack(targets)


@pytest.mark.parametrize("stride", [1, 3])
def test_windows_match_naive_reference(stride: int) -> None:
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(n, 2)).astype(np.float32) for n in (30, 17, 45)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in series])])
    L, H = 5, 3
    segments = []
    for i, s in enumerate(series):
        count = (len(s) - L - H) // stride + 1
        segments.append([offsets[i], offsets[i + 1], offsets[i], count, i])
    ws = WindowSet(
        np.concatenate(series),
        np.arange(offsets[-1], dtype=np.int64),
        np.asarray(segments),
        np.asarray(["a", "b", "c"], dtype=object),
        np.zeros((3, 0)),
        input_chunk_length=L,
        output_chunk_length=H,
        n_future=1,
        stride=stride,
    )
    past, target = _naive_windows(series, L, H, stride)
    assert len(ws) == len(past)
    got = list(ws.batches(7, shuffle=False, seed=0))
    np.testing.assert_array_equal(np.concatenate([b.past.numpy() for b in got]), past)
    np.testing.assert_array_equal(np.concatenate([b.target.numpy() for b in got]), target)
    # the known-future channel over the horizon is the last column of the horizon rows
    first = ws.batch_at(np.array([0]))
    np.testing.assert_array_equal(first.future.numpy()[0, :, 0], series[0][L : L + H, 1])
    assert list(ws.series_ids[:1]) == ["a"] and ws.series_ids[-1] == "c"


def test_shuffled_batches_cover_every_window_once() -> None:
    prepared = prepare_data(make_config(input_chunk_length=24, output_chunk_length=12))
    ws = prepared.windows("train")
    reference = np.concatenate([b.target.numpy() for b in ws.batches(64, shuffle=False, seed=0)])
    shuffled = np.concatenate([b.target.numpy() for b in ws.batches(64, shuffle=True, seed=3)])
    assert shuffled.shape == reference.shape
    assert not np.array_equal(shuffled, reference)
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(reference, axis=0))
    dropped = list(ws.batches(64, shuffle=True, seed=3, drop_last=True))
    assert all(len(b) == 64 for b in dropped) and len(dropped) == len(ws) // 64


def test_batches_by_time_hold_every_series_at_each_of_their_origins() -> None:
    """training.batch_by=time: a batch of k x n_series windows is k forecast origins x all series
    (the DLinear authors' 32 timestamps x 7 channels), the origins in a new order per seed."""
    prepared = prepare_data(make_config(input_chunk_length=24, output_chunk_length=12))
    ws = prepared.windows("train")
    n_series, k = len(ws.series_names), 4
    assert n_series > 1
    order = ws._by_shuffled_origin(np.random.default_rng(3))
    np.testing.assert_array_equal(np.sort(order), np.arange(len(ws)))
    origins, series = ws.window_times[order], ws.series_ids[order]
    for begin in range(0, len(ws) - len(ws) % (k * n_series), k * n_series):
        batch = slice(begin, begin + k * n_series)
        assert len(set(origins[batch])) == k  # k origins ...
        for origin in set(origins[batch]):  # ... each with every series
            assert sorted(series[batch][origins[batch] == origin]) == sorted(ws.series_names)
    assert not np.array_equal(origins, np.sort(origins))  # shuffled origins
    assert not np.array_equal(order, ws._by_shuffled_origin(np.random.default_rng(4)))
    # The batches are that order: every window once per epoch.
    by_time = np.concatenate([b.target.numpy() for b in ws.batches(k * n_series, shuffle=True, seed=3, by="time")])
    np.testing.assert_array_equal(by_time, ws.batch_at(order).target.numpy())


def test_augment_changes_train_windows_only_when_passed() -> None:
    prepared = prepare_data(make_config(input_chunk_length=24, output_chunk_length=12))
    augment = AugmentConfig(window_jitter=3, magnitude_scaling=0.2)
    train = prepared.windows("train")
    plain = next(train.batches(32, shuffle=False, seed=0))
    jittered = next(train.batches(32, shuffle=False, seed=0, augment=augment))
    assert not np.allclose(plain.target.numpy(), jittered.target.numpy())
    for split in ("val", "test"):
        ws = prepared.windows(split)
        a = next(ws.batches(32, shuffle=False, seed=0))
        b = ws.batch_at(np.arange(32))
        np.testing.assert_array_equal(a.target.numpy(), b.target.numpy())
        np.testing.assert_array_equal(a.past.numpy(), b.past.numpy())


def test_jitter_stays_inside_each_segment() -> None:
    """Values equal their flat row number, so targets reveal where a jittered window read."""
    L, H, n = 4, 2, 40
    data = np.arange(2 * n, dtype=np.float32)[:, None]
    # series 0 owns rows [0, 30) of its train segment; series 1 rows [40, 70)
    segments = np.array([[0, 30, 0, 30 - L - H + 1, 0], [n, n + 30, n, 30 - L - H + 1, 1]])
    ws = WindowSet(
        data, np.arange(2 * n, dtype=np.int64), segments, np.array(["a", "b"], dtype=object),
        np.zeros((2, 0)), input_chunk_length=L, output_chunk_length=H, n_future=0, stride=1,
    )
    augment = AugmentConfig(window_jitter=10)
    batches = list(ws.batches(8, shuffle=True, seed=0, augment=augment))
    target = np.concatenate([b.target.numpy() for b in batches])
    past = np.concatenate([b.past.numpy()[:, :, 0] for b in batches])
    assert not np.array_equal(np.sort(past[:, 0]), np.sort(ws.starts(np.arange(len(ws))).astype(np.float32)))
    in_first = target < n
    assert (target[in_first] < 30).all() and (target[~in_first] < n + 30).all()
    assert (past[past < n] >= 0).all() and (past[past >= n] >= n).all()


def test_horizon_times_and_series_index_map_windows_back() -> None:
    prepared = prepare_data(make_config(input_chunk_length=24, output_chunk_length=12))
    test = prepared.windows("test")
    index = test.series_index()
    assert len(index) == len(test) and set(index["unique_id"]) == set(prepared.series_ids)
    times = test.horizon_times(np.arange(3))
    assert times.shape == (3, 12)
    np.testing.assert_array_equal(times[:, 0], index["forecast_start"].to_numpy()[:3])
    assert (np.diff(times[0]).astype("timedelta64[h]") == np.timedelta64(1, "h")).all()


def _reference_batches(ws: WindowSet, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool,
                       augment: AugmentConfig | None, by: str) -> list[tuple[np.ndarray, ...]]:
    """The per-step algorithm batches() had before it precomputed each epoch's starts: window
    indices cut into batches, then per batch (and in this rng order) its starts, the jitter and
    the scaling; each window sliced from ``data`` by hand (no gather code)."""
    rng = np.random.default_rng(seed)
    L, H, n_future = ws.input_chunk_length, ws.output_chunk_length, ws.n_future
    if not shuffle:
        order = np.arange(len(ws))
    elif by == "time":
        origin = ws.times[ws.starts(np.arange(len(ws))) + L]
        _, group = np.unique(origin, return_inverse=True)
        order = np.argsort(rng.permutation(group.max() + 1)[group], kind="stable")
    else:
        order = rng.permutation(len(ws))
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    cum = np.concatenate([[0], np.cumsum(ws.segments[:, 3])])
    out = []
    for begin in range(0, stop, batch_size):
        idx = order[begin : begin + batch_size]
        seg = np.searchsorted(cum, idx, side="right") - 1
        starts = ws.segments[seg, 2] + (idx - cum[seg]) * ws.stride
        if augment is not None and augment.window_jitter > 0:
            shift = rng.integers(-augment.window_jitter, augment.window_jitter + 1, size=len(starts))
            lo, hi = ws.segments[seg, 0], ws.segments[seg, 1] - L - H
            starts = np.clip(starts + shift, lo, np.maximum(hi, lo))
        rows = np.stack([ws.data[s : s + L + H] for s in starts])
        if augment is not None and augment.magnitude_scaling > 0:
            factor = (1.0 + rng.normal(0.0, augment.magnitude_scaling, size=len(starts))).astype(np.float32)
            rows[:, :, 0] *= factor[:, None]
        future = rows[:, L:, rows.shape[2] - n_future :] if n_future else rows[:, L:, :0]
        out.append((rows[:, :L], future, ws.static[ws.segments[seg, 4]], rows[:, L:, 0]))
    return out


@pytest.mark.parametrize(
    ("shuffle", "by", "drop_last", "augment"),
    [
        (False, "window", False, None),
        (True, "window", False, None),
        (True, "window", True, None),
        (True, "time", False, None),
        (True, "time", True, None),
        (True, "window", False, AugmentConfig(window_jitter=3, magnitude_scaling=0.2)),
        (True, "time", False, AugmentConfig(window_jitter=2)),
    ],
)
def test_batches_equal_the_per_step_reference(shuffle: bool, by: str, drop_last: bool,
                                              augment: AugmentConfig | None) -> None:
    """Same windows, same order, same values for the same seed as the per-step algorithm: the
    per-epoch precomputation changes speed only (past, future, static and target, every batch)."""
    rng = np.random.default_rng(7)
    lengths, L, H, stride = (41, 29, 41, 35), 6, 4, 2
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    segments = []
    for i, n in enumerate(lengths):  # two segments per series: a gap in the middle, as a split leaves
        half = n // 2
        for lo, hi in ((offsets[i], offsets[i] + half), (offsets[i] + half, offsets[i + 1])):
            count = max(0, (hi - lo - L - H) // stride + 1)
            segments.append([lo, hi, lo, count, i])
    times = np.concatenate([np.arange(n, dtype=np.int64) * 3_600_000_000_000 for n in lengths])
    ws = WindowSet(
        rng.normal(size=(offsets[-1], 3)).astype(np.float32), times, np.asarray(segments),
        np.asarray(["a", "b", "c", "d"], dtype=object), rng.normal(size=(4, 2)),
        input_chunk_length=L, output_chunk_length=H, n_future=1, stride=stride,
    )
    for seed in (0, 1, 5):
        got = list(ws.batches(5, shuffle=shuffle, seed=seed, drop_last=drop_last, augment=augment, by=by))
        want = _reference_batches(ws, 5, shuffle=shuffle, seed=seed, drop_last=drop_last, augment=augment, by=by)
        assert len(got) == len(want) > 1
        for batch, (past, future, static, target) in zip(got, want, strict=True):
            np.testing.assert_array_equal(batch.past.numpy(), past)
            np.testing.assert_array_equal(batch.future.numpy(), future)
            np.testing.assert_array_equal(batch.static.numpy(), static)
            np.testing.assert_array_equal(batch.target.numpy(), target)
