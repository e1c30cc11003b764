"""Accuracy table: ETTh1 normalized test MSE/MAE of every model in the zoo, next to the papers.

Each model trains with ``tsdl.api.train`` from its config in ``examples/`` (standard 12/4/4-month
split, input 336, scaler fitted on train), and is scored on the test windows at its best
validation epoch. Published numbers: DLinear (Zeng et al., 2023, Table 2) and PatchTST/42 (Nie
et al., 2023, Table 3), same split and lookback; "--" where a paper has no such setting.

    python bench/bench_accuracy.py [--models dlinear dlinear-b224 patchtst nhits rnn] [--horizons 96 192]
                                   [--epochs N] [--limit-batches N] [--tag NAME]
    python bench/bench_accuracy.py --smoke
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import _common

__all__ = ["PUBLISHED", "main"]

# (model, horizon) -> (MSE, MAE) on normalized ETTh1 test windows, input 336.
PUBLISHED: dict[tuple[str, int], tuple[float, float]] = {
    ("dlinear", 96): (0.375, 0.399),
    ("dlinear", 192): (0.405, 0.416),
    ("patchtst", 96): (0.370, 0.400),
    ("patchtst", 192): (0.413, 0.429),
}
# entry -> (model, example config); "dlinear-b224" is DLinear with the paper's 7 x 32 batch.
_EXAMPLES: dict[str, tuple[str, str]] = {
    "dlinear": ("dlinear", "etth1.yaml"),
    "dlinear-b224": ("dlinear", "etth1-dlinear.yaml"),
    "patchtst": ("patchtst", "etth1-patchtst.yaml"),
    "nhits": ("nhits", "etth1-nhits.yaml"),
    "rnn": ("rnn", "etth1-rnn.yaml"),
}


def _config(entry: str, horizon: int, args) -> tuple[Any, str]:
    overrides = ["resources.num_workers=1", "resources.max_failures=0", f"data.output_chunk_length={horizon}"]
    if args.epochs is not None:
        overrides.append(f"training.max_epochs={args.epochs}")
    if args.limit_batches is not None:
        overrides.append(f"training.limit_train_batches={args.limit_batches}")
    example_file = _EXAMPLES[entry][1]
    config = None if args.smoke else _common.etth1_config(example_file, overrides)
    if config is not None:
        return config, f"examples/{example_file}"
    # Smoke (or no ../shared): the example's model and training sections on a tiny synthetic set.
    from tsdl.config import load_config

    example = load_config(_common.EXAMPLES / example_file)
    tiny = _common.synthetic_config(
        n_series=2, n_timesteps=300, input_chunk_length=48, output_chunk_length=12,
        overrides=[*overrides[:2], "training.max_epochs=1", "training.limit_train_batches=3"],
    )
    return tiny.model_copy(update={"model": example.model}), "synthetic 2x300 (smoke)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=list(_EXAMPLES), choices=list(_EXAMPLES))
    parser.add_argument("--horizons", nargs="+", type=int, default=[96])
    parser.add_argument("--epochs", type=int, default=None, help="cap on training.max_epochs (default: the example's)")
    parser.add_argument("--limit-batches", type=int, default=None, help="cap on training batches per epoch")
    parser.add_argument("--tag", default="", help="results go to accuracy-<tag>.json (keeps earlier runs)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.horizons = ["dlinear", "patchtst"], [12]

    from tsdl import api
    from tsdl.runtime import ensure_ray

    ensure_ray(num_cpus=2)
    rows: list[dict[str, Any]] = []
    for horizon in args.horizons:
        for entry in args.models:
            model = _EXAMPLES[entry][0]
            config, source = _config(entry, horizon, args)
            with tempfile.TemporaryDirectory(prefix="tsdl-acc-") as tmp:
                config.resources.storage_path = tmp
                started = time.perf_counter()
                result = api.train(config, progress=False)
                wall = time.perf_counter() - started
            best = min(result.history, key=lambda h: h["val_loss"])
            paper = PUBLISHED.get((model, horizon))
            rows.append({
                "model": entry,
                "horizon": horizon,
                "config": source,
                "epochs": len(result.history),
                "best_epoch": int(best["epoch"]),
                "test_mse": result.test.model["MSE"],
                "test_mae": result.test.model["MAE"],
                "paper_mse": paper[0] if paper else None,
                "paper_mae": paper[1] if paper else None,
                "naive_mse": result.test.baseline.get("MSE"),
                "train_s": wall,
            })
            print(f"{entry} H={horizon}: test MSE {rows[-1]['test_mse']:.4f} MAE {rows[-1]['test_mae']:.4f} "
                  f"({rows[-1]['epochs']} epochs, {wall:.0f} s)", flush=True)
            _write(rows, args)  # after every model: a long run that is cut short keeps what it measured
    columns = ["model", "horizon", "epochs", "best_epoch", "test_mse", "test_mae", "paper_mse", "paper_mae",
               "naive_mse", "train_s"]
    _common.print_table(rows, columns, title="ETTh1 normalized test metrics (best validation epoch)")
    return _write(rows, args)


def _write(rows: list[dict[str, Any]], args) -> dict[str, Any]:
    payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows}
    _common.write_results(f"accuracy-{args.tag}" if args.tag else "accuracy", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
