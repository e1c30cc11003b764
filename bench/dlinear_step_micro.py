"""DLinear's trend decomposition, AvgPool1d vs cumulative sum, timed inside a whole training step.

Both paths of ``tsdl.models.dlinear.SeriesDecomposition`` run interleaved in one process on the
same model and batch (ETTh1 shapes: batch 224, L=336, H=96): forward, MSE, backward; ``--rounds``
rounds of 20 steps each, minimum and median per path (docs/benchmarks.md section 1).

    python bench/dlinear_step_micro.py [--threads 1] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tsdl.config import parse_config
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.models.dlinear import SeriesDecomposition


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = parse_config({"model": {"name": "dlinear", "moving_avg": 25}})
    loss = build_loss(config.loss)
    model = build_model(config.model, input_chunk_length=336, output_chunk_length=96, n_past_features=1,
                        n_future_features=0, n_static=0, loss=loss)
    past, target = torch.randn(224, 336, 1).cumsum(1), torch.randn(224, 96)
    future, static = torch.zeros(224, 96, 0), torch.zeros(224, 0)

    def step() -> None:
        model.zero_grad()
        loss(model(past, future, static), target).backward()

    original = SeriesDecomposition.__dict__["uses_cumsum"]  # the staticmethod itself
    times: dict[str, list[float]] = {"avgpool": [], "cumsum": []}
    try:
        for _ in range(args.rounds):
            for name in times:
                SeriesDecomposition.uses_cumsum = staticmethod(lambda x, _on=name == "cumsum": _on)
                step()
                started = time.perf_counter()
                for _ in range(20):
                    step()
                times[name].append((time.perf_counter() - started) / 20 * 1e6)
    finally:
        SeriesDecomposition.uses_cumsum = original
    for name, values in times.items():
        print(f"DLinear step, batch 224, {args.threads} thread(s), {name:8}: min {min(values):8,.0f} us  "
              f"median {statistics.median(values):8,.0f} us")
    return times


if __name__ == "__main__":
    main()
