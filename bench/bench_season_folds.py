"""Rolling-origin validation on ETTh1's 16 months before its test block: a setting chosen by every season.

ETTh1's official validation block (rows 8640-11519, 2017-06-26 to 2017-10-23: summer and autumn)
does not rank DLinear's settings as its test block (2017-10-24 to 2018-02-20: winter) does
(docs/benchmarks.md section 6: RevIN is 3-17% worse on validation and at or below the paper on
test). Rolling-origin validation (time-series cross-validation; Hyndman & Athanasopoulos,
*Forecasting: Principles and Practice*, 3rd ed., section 5.10) asks every season instead. Fold k
(k = 1, 2, 3) trains on the first 4k months (``split.train_rows`` = 2880 k), validates on the next
4 and would test on the 4 after that; fold 3 is the official split. Scaler, windows and training
are the shipped config's, fold by fold; every fold x seed is tsdl's own loop
(``bench_accuracy.epoch_curve``) and keeps its best validation MSE.

**The rule** (fixed 2026-12-07 before the first run): a candidate's score is the geometric mean over
the folds of its median best-validation MSE over the seeds; the lowest score wins. No test window
is scored: the choice is made on the 16 months before the test block only.

    python bench/bench_season_folds.py --horizons 96 192 336 720 --seeds 42 1 2 3 4 \\
        --candidate model.instance_norm=revin
    python bench/bench_season_folds.py --smoke

The shipped config (``examples/etth1-dlinear-h{H}.yaml``) is always the first candidate; each
``--candidate`` adds one, a space-separated list of ``KEY=VALUE`` overrides on top of it.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any

import _common
from bench_accuracy import epoch_curve

__all__ = ["FOLDS", "fold_overrides", "main", "score"]

FOLDS = (1, 2, 3)
ETTH1_BLOCK_ROWS = 2880  # 4 months of hourly rows: the official val and test blocks
SMOKE_BLOCK_ROWS = 100


def fold_overrides(fold: int, block_rows: int) -> list[str]:
    """Fold ``fold`` trains on ``fold`` blocks, validates on the next and tests on the one after."""
    return ["data.split.method=rows", "data.split.skip_rows=0", f"data.split.train_rows={fold * block_rows}",
            f"data.split.val_rows={block_rows}", f"data.split.test_rows={block_rows}"]


def score(val_by_fold: dict[int, list[float]]) -> float:
    """Geometric mean over folds of the median best-validation MSE over seeds (the rule above).

    Geometric, because the folds' MSEs live on different scales (each fold's scaler is fitted on
    its own train rows, and some seasons are harder): a 5% gain counts the same in every fold.
    """
    medians = [statistics.median(values) for values in val_by_fold.values()]
    return math.exp(sum(math.log(m) for m in medians) / len(medians))


def _config(horizon: int, seed: int, fold: int, overrides: list[str], smoke: bool):
    base = [f"training.seed={seed}", *fold_overrides(fold, SMOKE_BLOCK_ROWS if smoke else ETTH1_BLOCK_ROWS)]
    if smoke:
        return _common.synthetic_config(
            n_series=2, n_timesteps=600, input_chunk_length=48, output_chunk_length=12,
            overrides=["model.name=dlinear", "training.max_epochs=2", "training.batch_size=32", *base, *overrides],
        )
    config = _common.etth1_config(f"etth1-dlinear-h{horizon}.yaml", [*base, *overrides])
    if config is None:
        raise SystemExit(f"bench_season_folds: needs {_common.ETTH1} (the shared ETTh1 copy); --smoke runs without")
    return config


def run_candidate(horizon: int, overrides: list[str], seeds: list[int], smoke: bool) -> dict[str, Any]:
    """Every fold x seed of one candidate: best validation MSE, its epoch, and the epochs trained."""
    label = " ".join(overrides) or "as shipped"
    runs: list[dict[str, Any]] = []
    for fold in FOLDS:
        for seed in seeds:
            started = time.perf_counter()
            curve = epoch_curve(_config(horizon, seed, fold, overrides, smoke), score_test=False)
            best_val = curve["val_per_epoch"][curve["best_epoch"] - 1]
            runs.append({"fold": fold, "seed": seed, "val_mse": best_val, "best_epoch": curve["best_epoch"],
                         "epochs": curve["epochs"], "train_s": round(time.perf_counter() - started, 1)})
            print(f"season-folds H={horizon} {label} fold {fold} seed {seed}: best val MSE {best_val:.4f} "
                  f"(epoch {curve['best_epoch']} of {curve['epochs']}, {runs[-1]['train_s']:.0f} s)", flush=True)
    val_by_fold = {fold: [r["val_mse"] for r in runs if r["fold"] == fold] for fold in FOLDS}
    return {"horizon": horizon, "candidate": label, "overrides": overrides, "runs": runs,
            "fold_median_val_mse": {str(f): statistics.median(v) for f, v in val_by_fold.items()},
            "score": score(val_by_fold)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--horizons", nargs="+", type=int, default=[96, 192, 336, 720], choices=[96, 192, 336, 720])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4], help="training.seed values")
    parser.add_argument("--candidate", action="append", default=[], metavar="'KEY=VALUE ...'",
                        help="overrides on top of the shipped config (repeatable; the shipped config always runs)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.horizons, args.seeds = [12], [0]
        args.candidate = args.candidate or ["model.instance_norm=revin"]
    candidates = [[], *(c.split() for c in args.candidate)]
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    rows: list[dict[str, Any]] = []
    for horizon in args.horizons:
        for overrides in candidates:
            rows.append(run_candidate(horizon, overrides, args.seeds, args.smoke))
            # after every candidate: a long run that is cut short keeps what it measured
            _common.write_results("accuracy-season-folds", {"settings": settings, "results": rows}, args.out,
                                  smoke=args.smoke)
    winners = {h: min((r for r in rows if r["horizon"] == h), key=lambda r: r["score"])["candidate"]
               for h in args.horizons}
    table = [{"H": r["horizon"], "candidate": r["candidate"],
              **{f"fold {f}": round(m, 4) for f, m in r["fold_median_val_mse"].items()},
              "score": round(r["score"], 4), "chosen": "yes" if winners[r["horizon"]] == r["candidate"] else ""}
             for r in rows]
    _common.print_table(table, list(table[0]), title="median best-validation MSE per fold (score: geometric mean)")
    payload = {"settings": settings, "results": rows, "chosen": {str(h): c for h, c in winners.items()}}
    _common.write_results("accuracy-season-folds", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
