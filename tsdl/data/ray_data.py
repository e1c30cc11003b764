"""Window sets as Ray Datasets whose rows hold equal numbers of windows, and back.

This module owns the row format in both directions (`encode_rows`, `windows_from_rows`), so
:mod:`tsdl.data.windows` knows nothing about Ray.

Ray Train shards a dataset by rows (``streaming_split(n, equal=True)``). If a row were a
series, a worker holding the long series would get most of the windows. Here the windows of a
split are dealt into ``num_workers * rows_per_worker`` rows of (almost) equal window count; a
row carries the contiguous data slices its windows read (overlapping neighbours by ``L + H -
stride`` steps), so an equal split of rows is an equal split of windows. The row count is a
multiple of ``num_workers``, so ``equal=True`` never drops a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tsdl.data.windows import WindowSet
from tsdl.errors import DataError

if TYPE_CHECKING:
    import ray.data
    from ray.data import DataIterator

__all__ = ["decode_rows", "encode_rows", "to_ray_dataset", "windows_from_rows", "windows_from_shard"]


def encode_rows(windows: WindowSet, *, num_workers: int, rows_per_worker: int = 4) -> list[dict[str, Any]]:
    """Deal ``windows`` into ``num_workers * rows_per_worker`` rows of near-equal window counts.

    Row sizes differ by at most one window, so worker window counts differ by at most
    ``rows_per_worker``.
    """
    n_rows = num_workers * max(1, rows_per_worker)
    total = len(windows)
    sizes = np.full(n_rows, total // n_rows, np.int64)
    sizes[: total % n_rows] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [_encode_row(windows, int(bounds[r]), int(bounds[r + 1])) for r in range(n_rows)]


def _encode_row(ws: WindowSet, w0: int, w1: int) -> dict[str, Any]:
    span = ws.input_chunk_length + ws.output_chunk_length
    cum = np.concatenate([[0], np.cumsum(ws.segments[:, 3])])
    datas, times, segments, names, static = [], [], [], [], []
    offset = 0
    for g in range(int(np.searchsorted(cum, w0, side="right") - 1), len(ws.segments)) if w1 > w0 else []:
        j0, j1 = int(max(w0 - cum[g], 0)), int(min(w1 - cum[g], ws.segments[g, 3]))
        if j1 <= j0:
            if cum[g] >= w1:
                break
            continue
        lo, hi, first, _, series = (int(v) for v in ws.segments[g])
        a = first + j0 * ws.stride
        b = first + (j1 - 1) * ws.stride + span
        datas.append(ws.data[a:b])
        times.append(ws.times[a:b])
        names.append(str(ws.series_names[series]))
        static.append(ws.static[series].tolist())
        segments.append([int(offset), int(offset + b - a), int(offset), int(j1 - j0), len(names) - 1])
        offset += b - a
    data = np.concatenate(datas) if datas else np.zeros((0, ws.n_features), np.float32)
    meta = {
        "segments": segments,
        "series": names,
        "static": static,
        "n_features": ws.n_features,
        "n_static": int(ws.static.shape[1]),
        "n_future": ws.n_future,
        "stride": ws.stride,
        "input_chunk_length": ws.input_chunk_length,
        "output_chunk_length": ws.output_chunk_length,
        "freq": ws.freq,
    }
    return {
        "data": data.astype(np.float32).tobytes(),
        "times": (np.concatenate(times) if times else np.zeros(0, np.int64)).astype(np.int64).tobytes(),
        "meta": json.dumps(meta),
        "n_windows": int(w1 - w0),
    }


def decode_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate encoded rows into the arrays :class:`WindowSet` is built from."""
    datas, times, segments, static = [], [], [], []
    name_index: dict[str, int] = {}
    offset, n_windows = 0, 0
    info: dict[str, Any] = {"n_features": 1, "n_static": 0, "n_future": 0, "stride": 1, "freq": ""}
    info.update(input_chunk_length=None, output_chunk_length=None)
    for row in rows:
        meta = json.loads(row["meta"])
        info.update({k: meta[k] for k in info})
        data = np.frombuffer(row["data"], np.float32).reshape(-1, meta["n_features"])
        datas.append(data)
        times.append(np.frombuffer(row["times"], np.int64))
        for (lo, hi, first, count, _series), name, stat in zip(
            meta["segments"], meta["series"], meta["static"], strict=True
        ):
            if name not in name_index:
                name_index[name] = len(name_index)
                static.append(stat)
            segments.append([lo + offset, hi + offset, first + offset, count, name_index[name]])
            n_windows += count
        offset += len(data)
    n_features, n_static = info["n_features"], info["n_static"]
    return {
        **info,
        "data": np.concatenate(datas) if datas else np.zeros((0, n_features), np.float32),
        "times": np.concatenate(times) if times else np.zeros(0, np.int64),
        "segments": np.asarray(segments, np.int64).reshape(-1, 5),
        "series_names": np.asarray(list(name_index), dtype=object),
        "static": np.asarray(static, np.float32).reshape(len(name_index), n_static),
        "n_windows": n_windows,
    }


def windows_from_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    input_chunk_length: int,
    output_chunk_length: int,
    stride: int | None = None,
) -> WindowSet:
    """A worker's windows from rows written by :func:`encode_rows` (its shard)."""
    parts = decode_rows(rows)
    if stride is not None and parts["n_windows"] and parts["stride"] != stride:
        raise DataError(
            f"shard windows were cut with stride {parts['stride']}, not {stride}",
            hint="pass the same data.stride to prepare_data and windows_from_shard",
        )
    if parts["input_chunk_length"] not in (None, input_chunk_length) or parts[
        "output_chunk_length"
    ] not in (None, output_chunk_length):
        raise DataError(
            f"shard windows were cut for L={parts['input_chunk_length']}, "
            f"H={parts['output_chunk_length']}, not L={input_chunk_length}, H={output_chunk_length}",
            hint="build the Ray datasets and the worker windows from the same config",
        )
    return WindowSet(
        parts["data"],
        parts["times"],
        parts["segments"],
        parts["series_names"],
        parts["static"],
        input_chunk_length=input_chunk_length,
        output_chunk_length=output_chunk_length,
        n_future=parts["n_future"],
        stride=parts["stride"] if parts["n_windows"] else (stride or 1),
        freq=parts["freq"],
    )


def windows_from_shard(
    shard: DataIterator,
    *,
    input_chunk_length: int,
    output_chunk_length: int,
    stride: int | None = None,
) -> WindowSet:
    """Build a worker's windows from ``ray.train.get_dataset_shard(split)``."""
    return windows_from_rows(
        shard.iter_rows(),
        input_chunk_length=input_chunk_length,
        output_chunk_length=output_chunk_length,
        stride=stride,
    )


def to_ray_dataset(windows: WindowSet, *, num_workers: int, rows_per_worker: int = 4) -> ray.data.Dataset:
    """A Ray Dataset of encoded rows, one block per row so shards split evenly."""
    import ray.data

    rows = encode_rows(windows, num_workers=num_workers, rows_per_worker=rows_per_worker)
    return ray.data.from_items(rows, override_num_blocks=len(rows))
