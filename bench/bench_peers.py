"""Peers: tsdl against NeuralForecast on the same model, data, batch and number of epochs.

Both train DLinear and PatchTST on ETTh1 (standard split, input 336, horizon 96, MSE loss, 32
windows per step, the same lr and architecture) for the same number of steps, then score every
test window (stride 1) on data normalized with the train rows' mean and std, so test MSE/MAE
are the papers' normalized metrics. Each (framework, model) runs in a fresh process; a sampler
sums the RSS of that process and all its descendants (Ray's processes included) for the peak.

NeuralForecast (the optional ``bench`` extra: ``pip install -e '.[bench]'``) samples 32 random
windows per step instead of walking a permutation, has no validation pass here and keeps the lr
constant; tsdl validates once per epoch (not counted in its windows/s) and halves the lr on
plateaus. Darts is not included (it does not install next to this torch pin).

    python bench/bench_peers.py [--models dlinear patchtst] [--epochs 1]
    python bench/bench_peers.py --smoke
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common

__all__ = ["main"]

_L, _H, _BATCH = 336, 96, 32
_TRAIN, _VAL, _TEST = 8640, 2880, 2880
# Shared hyperparameters: (lr, architecture) per model, as in examples/etth1*.yaml.
_MODELS: dict[str, dict[str, Any]] = {
    "dlinear": {"lr": 0.005, "tsdl": ["model.name=dlinear", "model.moving_avg=25"]},
    "patchtst": {
        "lr": 0.0001,
        "tsdl": ["model.name=patchtst", "model.hidden_size=16", "model.n_heads=4", "model.n_layers=3",
                 "model.ff_size=128", "model.dropout=0.3", "model.patch_len=16", "model.patch_stride=8"],
    },
}


def _tree_rss_mb(root: int) -> float:
    """Summed RSS (MiB) of ``root`` and every descendant, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        node = frontier.pop()
        children = [p for p, pp in parents.items() if pp == node and p not in tree]
        tree.update(children)
        frontier += children
    return sum(rss.get(p, 0) for p in tree) / 2**20


def _run_child(framework: str, model: str, epochs: int, smoke: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", framework, model, "--epochs", str(epochs)]
    cmd += ["--smoke"] if smoke else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{framework}/{model} failed:\n{stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1]) | {"peak_rss_tree_mb": peak[0]}


def _normalized_frame(smoke: bool):
    """Long frame (unique_id, ds, y) normalized with train-row stats, and the split sizes."""
    import numpy as np
    import pandas as pd

    if smoke or not _common.ETTH1.exists():
        rng = np.random.default_rng(0)
        steps = np.arange(400)
        wide = pd.DataFrame({f"s{i}": np.sin(steps / 6 + i) + 0.1 * rng.normal(size=400) for i in range(2)})
        wide.insert(0, "date", pd.date_range("2024-01-01", periods=400, freq="h"))
        sizes = (240, 80, 80)
    else:
        wide = pd.read_csv(_common.ETTH1, parse_dates=["date"])
        sizes = (_TRAIN, _VAL, _TEST)
    values = wide.drop(columns="date")
    train = values.iloc[: sizes[0]]
    values = (values - train.mean()) / train.std(ddof=0)
    long = values.assign(ds=wide["date"]).melt(id_vars="ds", var_name="unique_id", value_name="y")
    return long[["unique_id", "ds", "y"]], sizes, values.shape[1]


def _child_neuralforecast(model: str, epochs: int, smoke: bool) -> dict[str, Any]:
    import numpy as np
    import pytorch_lightning as pl
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import DLinear, PatchTST

    torch.set_num_threads(1)
    frame, (n_train, n_val, n_test), n_series = _normalized_frame(smoke)
    L, H = (48, 12) if smoke else (_L, _H)
    steps = (3 if smoke else -(-(n_train - L - H + 1) * n_series // _BATCH)) * epochs
    times: list[float] = []

    class _StepClock(pl.Callback):
        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter())

    common = dict(
        h=H, input_size=L, loss=MSE(), max_steps=steps, learning_rate=_MODELS[model]["lr"],
        batch_size=n_series, windows_batch_size=_BATCH, val_check_steps=steps + 1, scaler_type="identity",
        random_seed=42, enable_progress_bar=False, enable_model_summary=False, logger=False,
        enable_checkpointing=False, num_sanity_val_steps=0, accelerator="cpu", callbacks=[_StepClock()],
    )
    if model == "dlinear":
        forecaster = DLinear(moving_avg_window=25, **common)
    else:
        forecaster = PatchTST(encoder_layers=3, n_heads=4, hidden_size=16, linear_hidden_size=128, dropout=0.3,
                              patch_len=16, stride=8, revin=True, **common)
    started = time.perf_counter()
    nf = NeuralForecast(models=[forecaster], freq="h")
    cv = nf.cross_validation(frame, val_size=n_val, test_size=n_test, n_windows=None, step_size=1, refit=False)
    wall = time.perf_counter() - started
    column = type(forecaster).__name__
    err = cv[column].to_numpy() - cv["y"].to_numpy()
    warm = min(10, len(times) // 2)
    span = times[-1] - times[warm] if len(times) > warm + 1 else float("nan")
    return {
        "windows_per_s": (len(times) - 1 - warm) * _BATCH / span,
        "steps": len(times),
        "wall_s": wall,
        "test_mse": float(np.mean(err**2)),
        "test_mae": float(np.mean(np.abs(err))),
        "test_windows": int(len(cv) // H),
    }


def _child_tsdl(model: str, epochs: int, smoke: bool) -> dict[str, Any]:
    import tempfile

    import torch

    from tsdl import api
    from tsdl.ray_connection import ensure_ray

    torch.set_num_threads(1)
    overrides = [
        *_MODELS[model]["tsdl"], f"training.optimizer.lr={_MODELS[model]['lr']}", f"training.batch_size={_BATCH}",
        f"training.max_epochs={epochs}", "training.early_stopping.enabled=false", "resources.num_workers=1",
        "resources.max_failures=0",
    ]
    config = None if smoke else _common.etth1_config(overrides=overrides)
    if config is None:
        config = _common.synthetic_config(
            n_series=2, n_timesteps=400, overrides=[*overrides, "training.limit_train_batches=3"]
        )
    ensure_ray(num_cpus=2)
    with tempfile.TemporaryDirectory(prefix="tsdl-peers-") as tmp:
        config.resources.storage_path = tmp
        started = time.perf_counter()
        result = api.train(config, progress=False)
        wall = time.perf_counter() - started
    return {
        "windows_per_s": max(h["windows_per_s"] for h in result.history),
        "steps": sum(round(h["windows_per_s"] * h["epoch_time_s"] / _BATCH) for h in result.history),
        "wall_s": wall,
        "test_mse": result.test.model["MSE"],
        "test_mae": result.test.model["MAE"],
        "test_windows": result.test.n_windows,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=list(_MODELS), choices=list(_MODELS))
    parser.add_argument("--epochs", type=int, default=1, help="epochs (steps = epochs x train windows / 32)")
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=__import__("argparse").SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        framework, model = args.child
        run = _child_tsdl if framework == "tsdl" else _child_neuralforecast
        print(json.dumps(run(model, args.epochs, args.smoke)), flush=True)
        return {}
    try:
        import neuralforecast  # noqa: F401
    except ImportError:
        raise SystemExit("bench_peers needs NeuralForecast: pip install -e '.[bench]'") from None
    if args.smoke:
        args.models = ["dlinear"]
    rows: list[dict[str, Any]] = []
    for model in args.models:
        nf = _run_child("neuralforecast", model, args.epochs, args.smoke)
        ours = _run_child("tsdl", model, args.epochs, args.smoke)
        for framework, run in (("neuralforecast", nf), ("tsdl", ours)):
            rows.append({"model": model, "framework": framework, **run})
        rows[-1]["win_s_ratio"] = ours["windows_per_s"] / nf["windows_per_s"]
        rows[-1]["wall_ratio"] = nf["wall_s"] / ours["wall_s"]
        print(f"{model}: tsdl {ours['windows_per_s']:,.0f} win/s vs NeuralForecast {nf['windows_per_s']:,.0f} "
              f"({rows[-1]['win_s_ratio']:.2f}x)", flush=True)
    columns = ["model", "framework", "windows_per_s", "steps", "wall_s", "peak_rss_tree_mb", "test_mse", "test_mae",
               "test_windows", "win_s_ratio", "wall_ratio"]
    _common.print_table(rows, columns, title=f"peers, {args.epochs} epoch(s), batch {_BATCH}, 1 torch thread")
    payload = {"settings": {"models": args.models, "epochs": args.epochs}, "results": rows}
    _common.write_results("peers", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
