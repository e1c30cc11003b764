"""Training throughput: tsdl's full path against a plain PyTorch loop on pre-materialized tensors.

tsdl: ``tsdl.api.train`` (Ray Data shard -> WindowSet -> TorchTrainer worker -> step), windows/s
as the worker measures it over each epoch's training steps. Plain: the same model, loss, AdamW,
gradient clipping, batch size and torch thread count over tensors holding every training window,
indexed by a random permutation per epoch. The two alternate (plain, tsdl, plain, tsdl, ...) in
one process so that load from other jobs on the machine hits both alike. The plain loop runs as
a Ray task with the worker's CPU reservation: Ray starts its workers at nice 15, so a plain loop
in the (nice 0) driver would win every contended time slice and inflate the gap on a shared box.

    python bench/bench_throughput.py [--models dlinear patchtst] [--steps 300] [--repeats 2]
    python bench/bench_throughput.py --smoke
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np
import torch

__all__ = ["main", "plain_loop", "tsdl_loop"]


class _ThreadProbe:
    """Epoch hook that records the worker's torch thread count (thread parity with the plain loop)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == 1 and rank == 0:
            Path(self.path).write_text(str(torch.get_num_threads()))


def tsdl_loop(config, *, storage: Path) -> dict[str, Any]:
    """One ``tsdl.api.train`` run; windows/s and steps/s of its fastest epoch.

    The fastest epoch (not the first) is reported for both paths: the first pays allocator and
    autograd warm-up, and on a shared machine the minimum time is the least disturbed one.
    """
    from tsdl import api

    probe = storage / "threads.txt"
    started = time.perf_counter()
    result = api.train(config, progress=False, epoch_hooks=(_ThreadProbe(str(probe)),))
    wall = time.perf_counter() - started
    best = max(result.history, key=lambda h: h["windows_per_s"])
    batch = config.training.batch_size
    return {
        "windows_per_s": best["windows_per_s"],
        "steps_per_s": best["windows_per_s"] / batch,
        "epoch_s": best["epoch_time_s"],
        "epochs": len(result.history),
        "wall_s": wall,
        "threads": int(probe.read_text()) if probe.exists() else None,
        "test_mse": result.test.model["MSE"],
    }


def plain_loop(config, prepared, *, epochs: int, threads: int) -> dict[str, Any]:
    """The reference: tensors of every training window, ``randperm`` batches, one step each."""
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train import model_dims

    tcfg = config.training
    torch.set_num_threads(threads)
    torch.manual_seed(tcfg.seed)
    windows = prepared.windows("train")
    full = windows.batch_at(np.arange(len(windows)))  # [N, L, F], [N, H, F_fut], [N, S], [N, H]
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **model_dims(prepared), loss=loss_fn)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tcfg.optimizer.lr, weight_decay=tcfg.optimizer.weight_decay
    )
    n, batch = len(windows), tcfg.batch_size
    steps = -(-n // batch)
    if tcfg.limit_train_batches is not None:
        steps = min(steps, tcfg.limit_train_batches)
    epoch_times: list[float] = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n)
        started = time.perf_counter()
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            pred = model(full.past[idx], full.future[idx], full.static[idx])
            loss = loss_fn(pred, full.target[idx])
            loss.backward()
            if tcfg.gradient_clip_val is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.gradient_clip_val)
            optimizer.step()
        epoch_times.append(time.perf_counter() - started)
    fastest = min(epoch_times)
    n_windows = min(n, steps * batch)
    return {
        "windows_per_s": n_windows / fastest,
        "steps_per_s": steps / fastest,
        "epoch_s": fastest,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
    }


def _config(model: str, *, smoke: bool, steps: int | None, epochs: int):
    common = [
        f"model.name={model}",
        f"training.max_epochs={epochs}",
        "training.early_stopping.enabled=false",
        "resources.num_workers=1",
        "resources.cpus_per_worker=1",
        "resources.max_failures=0",
    ]
    if steps is not None:
        common.append(f"training.limit_train_batches={steps}")
    config = None if smoke else _common.etth1_config(overrides=common)
    dataset = "ETTh1 (L=336, H=96, batch 32)"
    if config is None:
        config = _common.synthetic_config(
            n_series=4, n_timesteps=300, overrides=[*common, "training.batch_size=16"]
        )
        dataset = "synthetic 4x300 (L=48, H=12, batch 16)"
    return config, dataset


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=["dlinear", "patchtst"])
    parser.add_argument("--steps", type=int, default=300, help="training steps per epoch (both paths)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the fastest is reported")
    parser.add_argument("--repeats", type=int, default=2, help="alternating plain/tsdl pairs per model")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.epochs, args.repeats, args.models = 4, 1, 1, args.models[:1]

    from tsdl.data import prepare_data
    from tsdl.runtime import ensure_ray

    ensure_ray(num_cpus=2)
    import ray

    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for model in args.models:
        config, dataset = _config(model, smoke=args.smoke, steps=args.steps, epochs=args.epochs)
        prepared = prepare_data(config)
        threads = int(config.resources.cpus_per_worker)
        plain_task = ray.remote(num_cpus=threads)(plain_loop)
        for repeat in range(args.repeats):
            plain = ray.get(plain_task.remote(config, prepared, epochs=args.epochs, threads=threads))
            with tempfile.TemporaryDirectory(prefix="tsdl-bench-") as tmp:
                run_config = config.model_copy(deep=True)
                run_config.resources.storage_path = tmp
                ours = tsdl_loop(run_config, storage=Path(tmp))
            runs += [{"model": model, "repeat": repeat, "path": "plain", **plain},
                     {"model": model, "repeat": repeat, "path": "tsdl", **ours}]
            print(f"{model} repeat {repeat}: plain {plain['windows_per_s']:,.0f} win/s, "
                  f"tsdl {ours['windows_per_s']:,.0f} win/s", flush=True)
        mine = [r for r in runs if r["model"] == model]
        # Headline: the least disturbed (fastest) epoch of each path over all repeats; on a shared
        # machine the minimum time is the best estimate of the undisturbed cost. Medians are kept.
        plain_wps = max(r["windows_per_s"] for r in mine if r["path"] == "plain")
        tsdl_wps = max(r["windows_per_s"] for r in mine if r["path"] == "tsdl")
        medians = {
            f"{path}_median_win_s": statistics.median(r["windows_per_s"] for r in mine if r["path"] == path)
            for path in ("plain", "tsdl")
        }
        rows.append({
            "model": model,
            "dataset": dataset,
            "batch": config.training.batch_size,
            "threads": int(config.resources.cpus_per_worker),
            "plain_win_s": plain_wps,
            "tsdl_win_s": tsdl_wps,
            "plain_steps_s": plain_wps / config.training.batch_size,
            "tsdl_steps_s": tsdl_wps / config.training.batch_size,
            "ratio": tsdl_wps / plain_wps,
            **medians,
            "median_ratio": medians["tsdl_median_win_s"] / medians["plain_median_win_s"],
            "target": ">= 0.9",
        })
    columns = ["model", "batch", "threads", "plain_win_s", "tsdl_win_s", "plain_steps_s", "tsdl_steps_s", "ratio",
               "median_ratio"]
    _common.print_table(rows, columns, title="training throughput (fastest epoch over all repeats; median ratio)")
    payload = {"settings": vars(args) | {"out": str(args.out)}, "summary": rows, "runs": runs}
    _common.write_results("throughput", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
