"""Under real DDP-style Ray Train workers, only rank 0 writes to the run: nothing is logged twice."""

from __future__ import annotations

import functools
from pathlib import Path

import mlflow  # a core dependency: a broken import must fail, not skip
import pytest

from tsdl.config import parse_config
from tsdl.tracking import MlflowRun, worker_logger


@pytest.mark.ray
@pytest.mark.slow(seconds=20)
def test_two_workers_log_each_epoch_once(ray_local: None, tmp_path: Path) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def loop(loop_config: dict) -> None:  # nested: pickled by value, tests/ is not importable
        import ray.train

        rank = ray.train.get_context().get_world_rank()
        logger = loop_config["logger_factory"](rank=rank)
        for epoch in range(2):
            logger.log_epoch(epoch, {"train_loss": 1.0 + epoch, "rank": float(rank)})
        logger.log_step(10, {"grad_norm/layer": 0.5})
        logger.flush()  # the training loop flushes before it returns; nothing is written at GC

    config = parse_config({"tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    run = MlflowRun.start(config, data_stats={"n_series": 1})
    factory = functools.partial(worker_logger, run.run_id, run.tracking_uri)
    trainer = TorchTrainer(
        loop,
        train_loop_config={"logger_factory": factory},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name="tracking-ddp", storage_path=str(tmp_path / "ray")),
    )
    trainer.fit()
    run.finish()

    client = mlflow.MlflowClient(tracking_uri=run.tracking_uri)
    history = client.get_metric_history(run.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 2.0)]
    assert {m.value for m in client.get_metric_history(run.run_id, "rank")} == {0.0}
    assert len(client.get_metric_history(run.run_id, "grad_norm/layer")) == 1
