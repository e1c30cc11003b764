"""Instance normalization (`model.instance_norm`) on ETTh1: test MSE of each option, side by side.

Every option trains the same model from the same seed on the same windows (ETTh1, L=336, H=96,
the 12/4/4-month split, the seven channels as univariate series, standard scaler fitted on
train, MSE loss, batch 224), in one process without Ray so the comparison is not blurred by
scheduling; the number reported is the normalized test MSE at the best validation epoch. The
defaults in ``tsdl/config/model.py`` follow this table (docs/models.md).

    python bench/bench_instance_norm.py [--models dlinear nhits] [--epochs N] [--limit-batches N]
    python bench/bench_instance_norm.py --smoke
"""

from __future__ import annotations

import sys
import time
from typing import Any

import _common

__all__ = ["main"]

_OPTIONS = ("none", "revin", "mean_std", "robust")
_SETTINGS: dict[str, dict[str, Any]] = {
    # DLinear as in its paper (lr 5e-3 halved every epoch); N-HiTS with NeuralForecast's lr 1e-3.
    "dlinear": {"model": {"name": "dlinear", "moving_avg": 25}, "lr": 0.005, "decay": 0.5},
    "nhits": {
        "model": {"name": "nhits", "hidden_size": 256, "n_blocks": 3, "dropout": 0.0},
        "lr": 0.001,
        "decay": 0.5,
    },
    "rnn": {
        "model": {"name": "rnn", "hidden_size": 64, "n_layers": 1, "dropout": 0.0},
        "lr": 0.001,
        "decay": 0.5,
    },
    "patchtst": {
        "model": {
            "name": "patchtst",
            "hidden_size": 16,
            "n_heads": 4,
            "n_layers": 3,
            "ff_size": 128,
            "dropout": 0.3,
        },
        "lr": 0.0001,
        "decay": 1.0,
    },
}


def _score(model, windows, batch_size: int = 2048) -> float:
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in windows.batches(batch_size, shuffle=False, seed=0):
            pred = model(batch.past, batch.future, batch.static)[..., 0]
            total += float(((pred - batch.target) ** 2).sum())
            count += batch.target.numel()
    return total / count


def run_one(
    prepared, name: str, option: str, *, epochs: int, limit_batches: int | None, seed: int = 2021
) -> dict:
    import torch
    from pydantic import TypeAdapter

    from tsdl.config.model import ModelConfig
    from tsdl.losses import MSELoss
    from tsdl.models import build_model
    from tsdl.train import model_dims

    settings = _SETTINGS[name]
    torch.manual_seed(seed)
    config = TypeAdapter(ModelConfig).validate_python(
        {**settings["model"], "instance_norm": option}
    )
    loss = MSELoss()
    model = build_model(config, **model_dims(prepared), loss=loss)
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    train, val, test = (prepared.windows(s) for s in ("train", "val", "test"))
    scores, started = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for step, batch in enumerate(train.batches(224, shuffle=True, seed=seed + epoch)):
            if limit_batches is not None and step >= limit_batches:
                break
            opt.zero_grad()
            loss(model(batch.past, batch.future, batch.static), batch.target).backward()
            opt.step()
        for group in opt.param_groups:
            group["lr"] *= settings["decay"]
        scores.append((_score(model, val), _score(model, test), epoch + 1))
    best_val, test_mse, best_epoch = min(scores)
    return {
        "model": name,
        "instance_norm": option,
        "val_mse": best_val,
        "test_mse": test_mse,
        "best_epoch": best_epoch,
        "epochs": epochs,
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = _common.base_parser(__doc__)
    parser.add_argument(
        "--models", nargs="+", default=["dlinear", "nhits"], choices=sorted(_SETTINGS)
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-batches", type=int, default=None)
    args = parser.parse_args(argv)

    from tsdl.data import prepare_data

    if args.smoke:
        config = _common.synthetic_config(n_series=2, n_timesteps=300)
        args.models, args.epochs, args.limit_batches = ["dlinear"], 1, 2
    else:
        config = _common.etth1_config("etth1-dlinear.yaml")
        if config is None:
            print("ETTh1 not found at ../shared/data/ETTh1.csv", file=sys.stderr)
            return 2
    prepared = prepare_data(config)
    rows = []
    for name in args.models:
        for option in _OPTIONS:
            rows.append(
                run_one(
                    prepared, name, option, epochs=args.epochs, limit_batches=args.limit_batches
                )
            )
            print(
                f"{name:9s} {option:9s} test MSE {rows[-1]['test_mse']:.4f} (val {rows[-1]['val_mse']:.4f})",
                flush=True,
            )
    _common.print_table(
        rows,
        ["model", "instance_norm", "val_mse", "test_mse", "best_epoch", "epochs", "seconds"],
        title="ETTh1 L=336 H=96, normalized MSE at the best validation epoch",
    )
    _common.write_results(
        "instance_norm",
        {
            "command": " ".join(
                ["python", "bench/bench_instance_norm.py", *(argv or sys.argv[1:])]
            ),
            "rows": rows,
        },
        args.out,
        smoke=args.smoke,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
