"""Ray Data sharding: two Ray Train workers get equal window counts whose union is every window."""

from __future__ import annotations

import numpy as np
import pytest

from tsdl.data import prepare_data
from tsdl.data.ray_data import decode_rows, encode_rows, windows_from_rows, windows_from_shard
from tsdl.data.windows import WindowSet

from .conftest import make_config


def _config():
    # 3 series dealt to 2 workers: an equal split of *series* could not be balanced.
    return make_config(
        input_chunk_length=12, output_chunk_length=6, stride=2,
        synthetic={"n_series": 3, "n_timesteps": 300, "seed": 1},
    )


def _keys(ws: WindowSet) -> set[tuple[str, int]]:
    """(series id, first forecast timestamp) of every window."""
    return set(zip(ws.series_ids.tolist(), ws.window_times.astype(np.int64).tolist(), strict=True))


def test_rows_roundtrip_to_the_same_windows_without_ray() -> None:
    train = prepare_data(_config()).windows("train")
    rows = encode_rows(train, num_workers=3, rows_per_worker=2)
    sizes = [r["n_windows"] for r in rows]
    assert len(rows) == 6 and max(sizes) - min(sizes) <= 1 and sum(sizes) == len(train)
    rebuilt = windows_from_rows(rows, input_chunk_length=12, output_chunk_length=6, stride=2)
    assert _keys(rebuilt) == _keys(train)
    order = np.argsort(rebuilt.series_ids, kind="stable")
    ref = np.argsort(train.series_ids, kind="stable")
    np.testing.assert_array_equal(
        rebuilt.batch_at(order).target.numpy(), train.batch_at(ref).target.numpy()
    )
    assert decode_rows([])["n_windows"] == 0


@pytest.mark.ray
@pytest.mark.slow(seconds=19)
def test_two_torch_workers_get_balanced_disjoint_windows(ray_local: None, tmp_path) -> None:
    import ray.train
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    prepared = prepare_data(_config())
    datasets = prepared.to_ray_datasets(num_workers=2)

    import ray.train as rt

    @ray.remote
    class _Sink:
        def __init__(self) -> None:
            self.items: list[dict] = []

        def add(self, item: dict) -> None:
            self.items.append(item)

        def get(self) -> list[dict]:
            return self.items

    sink = _Sink.remote()

    def loop_with_sink(config: dict) -> None:
        shard = rt.get_dataset_shard("train")
        ws = windows_from_shard(shard, input_chunk_length=12, output_chunk_length=6, stride=2)
        keys = [f"{s}|{t}" for s, t in zip(ws.series_ids, ws.window_times.astype(np.int64), strict=True)]
        ray.get(config["sink"].add.remote({"rank": rt.get_context().get_world_rank(), "keys": keys}))

    trainer = TorchTrainer(
        loop_with_sink,
        train_loop_config={"sink": sink},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        datasets={"train": datasets["train"]},
        run_config=RunConfig(storage_path=str(tmp_path), name="shards"),
    )
    trainer.fit()
    seen = ray.get(sink.get.remote())
    assert len(seen) == 2
    counts = [len(item["keys"]) for item in seen]
    all_keys = [k for item in seen for k in item["keys"]]
    expected = {f"{s}|{t}" for s, t in _keys(prepared.windows("train"))}
    assert len(all_keys) == len(set(all_keys)), "a window reached two workers"
    assert set(all_keys) == expected
    assert abs(counts[0] - counts[1]) <= 4  # rows differ by <= 1 window, 4 rows per worker
