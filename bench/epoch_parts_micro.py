"""CPU time of a DLinear epoch's parts, tsdl against the plain loop, interleaved in one process.

Wall-clock ratios on a shared 2-core box move by +-15% between runs; the CPU time of one torch
thread moves much less, so this decides whether a change to batch assembly or to the step pays
before the whole-epoch benchmark (``bench_throughput.py``) is run on a quiet box. Per round and
per part, in turn (docs/benchmarks.md section 1):

- **gather**: one epoch of batches. tsdl's ``WindowSet.batches`` (by window, by time, and the
  validation pass's ordered batches) over the flat series, against the plain loop's
  ``windows[order[i:i + B]]`` from one materialized ``[N, L + H]`` tensor (the memory it needs
  is printed next to tsdl's).
- **step** (``--steps``): one training step on the same batch: ``tsdl.train.step.train_step``
  with tsdl's DLinear and loss, against the benchmark's plain DLinear, ``mse_loss``,
  ``clip_grad_norm_`` (tsdl's default clip) and ``AdamW(fused=True)``.

    python bench/epoch_parts_micro.py [--rounds 15] [--threads 1] [--steps]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common
import bench_throughput
import torch


def _cpu_ms(run: Callable[[], None]) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1e3


def gather_parts(config) -> tuple[dict[str, Callable[[int], None]], dict[str, float]]:
    """Per-epoch gather callables (argument: the round, used as the seed) and memory in MiB."""
    from tsdl.data import prepare_data

    prepared = prepare_data(config)
    train, val = prepared.windows("train"), prepared.windows("val")
    batch = config.training.batch_size
    windows, _ = bench_throughput.plain_windows(config)
    L = config.data.input_chunk_length

    def plain(seed: int) -> None:
        order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))
        for begin in range(0, len(windows), batch):
            rows = windows[order[begin : begin + batch]]
            rows[:, :L], rows[:, L:]  # noqa: B018 (the views the plain step reads)

    parts = {
        "plain gather (materialized windows)": plain,
        "tsdl train batches, by window": lambda seed: all(True for _ in train.batches(batch, shuffle=True, seed=seed)),
        "tsdl train batches, by time": lambda seed: all(
            True for _ in train.batches(batch, shuffle=True, seed=seed, by="time")),
        "tsdl validation batches": lambda seed: all(True for _ in val.batches(batch, shuffle=False, seed=0)),
    }
    memory = {"plain windows tensor": windows.numel() * 4 / 2**20, "tsdl series array": train.data.nbytes / 2**20}
    return parts, memory


def step_parts(config, steps: int) -> dict[str, Callable[[int], None]]:
    """Per-round callables running ``steps`` training steps of each side on the same batches."""
    from tsdl.data import Batch
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train.finetune import apply_finetune
    from tsdl.train.precision import MixedPrecision
    from tsdl.train.step import train_step

    L, H, B = config.data.input_chunk_length, config.data.output_chunk_length, config.training.batch_size
    clip = config.training.gradient_clip_val
    windows, _ = bench_throughput.plain_windows(config)
    rows = [windows[torch.randperm(len(windows))[:B]] for _ in range(steps)]
    loss_fn = build_loss(config.loss)
    amp = MixedPrecision("32", torch.device("cpu"))

    def plain(seed: int) -> None:
        torch.manual_seed(seed)
        model = bench_throughput.PlainDLinear(L, H, config.model.moving_avg)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.training.optimizer.lr, fused=True)
        for batch in rows:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(batch[:, :L]), batch[:, L:])
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()

    def tsdl(seed: int) -> None:
        torch.manual_seed(seed)
        model = build_model(config.model, input_chunk_length=L, output_chunk_length=H, n_past_features=1,
                            n_future_features=0, n_static=0, loss=loss_fn)
        plan = apply_finetune(model, config, None)
        plan.start_epoch(1, steps)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.training.optimizer.lr, fused=True)
        empty_future, empty_static = torch.zeros(B, H, 0), torch.zeros(B, 0)
        for batch in rows:
            train_step(model, loss_fn, optimizer, amp,
                       Batch(past=batch[:, :L, None], future=empty_future, static=empty_static, target=batch[:, L:]),
                       clip, plan, with_norm=False)

    return {f"plain step x {steps}": plain, f"tsdl train_step x {steps}": tsdl}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", action="store_true", help="also time the training step of each side")
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data (seconds)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = ["training.batch_size=224"]
    config = None if args.smoke else _common.etth1_config("etth1-dlinear.yaml", overrides=overrides)
    if config is None:
        config, _ = bench_throughput._config("dlinear", smoke=True, workdir=Path(tempfile.mkdtemp()))
    parts, memory = gather_parts(config)
    if args.steps:
        parts |= step_parts(config, 5 if args.smoke else 50)
    times: dict[str, list[float]] = {name: [] for name in parts}
    for round_ in range(args.rounds):
        names = list(parts) if round_ % 2 == 0 else list(parts)[::-1]  # neither side always goes first
        for name in names:
            times[name].append(_cpu_ms(lambda name=name, seed=round_: parts[name](seed)))
    print(f"CPU ms per part, {args.threads} torch thread(s), {args.rounds} rounds "
          f"(batch {config.training.batch_size}, L={config.data.input_chunk_length}, "
          f"H={config.data.output_chunk_length})")
    for name, values in times.items():
        print(f"  {name:38} min {min(values):8.1f}  median {statistics.median(values):8.1f}")
    print("  memory: " + ", ".join(f"{k} {v:,.1f} MiB" for k, v in memory.items()))
    return times


if __name__ == "__main__":
    main()
