"""HPO efficiency: ASHA + TPE vs full-budget TPE vs random search, equal trial counts.

Three one-stage studies of ``tsdl.tune.run_study`` on the same config, space, seed and trial
count, differing only in the scheduler and sampler:

    asha_tpe   TPE (random startup trials first), ASHA cuts trials at rungs grace * factor^k
    full_tpe   the same TPE, every trial trains max_epochs (ASHA grace = max_epochs: no cut)
    random     every trial sampled at random (all trials are TPE startup trials), full budget

Training's own early stopping is off, so only ASHA saves epochs. Each study's trials are laid
out in trial order to give best val loss vs cumulative epochs (plot). Reported: ASHA's saved
share of the full budget, and the cumulative epochs each study needed to reach (a) the reference
trial's val loss (the config's own values, trial 0 of every study, at full budget) and (b) within
1% of the best val loss full-budget TPE found. Target: (a) with <= 1/3 of the full-budget epochs.

    python bench/bench_hpo.py [--trials 8] [--max-epochs 9] [--limit-batches 40]
    python bench/bench_hpo.py --smoke
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common

__all__ = ["main"]

_STUDIES = ("asha_tpe", "full_tpe", "random")


def _config(study: str, args, storage: str):
    grace = 1 if study == "asha_tpe" else args.max_epochs
    startup = args.trials if study == "random" else max(1, args.trials // 3)
    overrides = [
        "tune.stage2_trials=0", f"tune.stage1_trials={args.trials}", f"tune.startup_trials={startup}",
        f"tune.max_params={args.max_params}", f"tune.asha.max_epochs={args.max_epochs}",
        f"tune.asha.grace_period={grace}", "tune.asha.reduction_factor=3", "tune.seed=7",
        "training.early_stopping.enabled=false", f"training.limit_train_batches={args.limit_batches}",
        "resources.num_workers=1", "resources.max_failures=0", f"resources.storage_path={storage}",
        "tracking.enabled=false",
    ]
    config = None if args.smoke else _common.etth1_config(overrides=overrides)
    return config or _common.synthetic_config(n_series=2, n_timesteps=400, overrides=overrides)


def _curve(records: list[Any]) -> list[tuple[int, float]]:
    """(cumulative epochs, best val loss so far) after every epoch, trials in trial order."""
    points, spent, best = [], 0, math.inf
    for record in records:
        for epoch in sorted(record.history, key=lambda h: h.get("epoch", 0)):
            spent += 1
            best = min(best, epoch.get("val_loss", math.inf))
            points.append((spent, best))
    return points


def _epochs_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((spent for spent, best in curve if best <= target), None)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--limit-batches", type=int, default=40, help="training batches per epoch")
    parser.add_argument("--max-params", type=int, default=2, help="tune the first N params of the default space")
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.max_epochs, args.limit_batches = 3, 3, 3

    from tsdl.tune import run_study

    studies: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tsdl-hpo-") as tmp:
        for study in _STUDIES:
            result = run_study(_config(study, args, str(Path(tmp) / study)), progress=False)
            # Tune lists trials in creation order; the reference trial is evaluated first.
            records = sorted((r for r in result.records if r.history), key=lambda r: not r.reference)
            studies[study] = {
                "best_val_loss": result.best_val_loss,
                "reference_val_loss": result.reference_val_loss,
                "epochs_run": result.asha.epochs_run,
                "full_budget_epochs": result.asha.full_budget_epochs,
                "stopped_trials": result.asha.stopped_trials,
                "curve": _curve(records),
            }
            print(f"{study}: best val_loss {result.best_val_loss:.4f}, {result.asha.epochs_run} epochs", flush=True)
    reference = studies["full_tpe"]["reference_val_loss"]
    near_best = studies["full_tpe"]["best_val_loss"] * 1.01
    rows = []
    for study, s in studies.items():
        to_ref, to_best = _epochs_to(s["curve"], reference), _epochs_to(s["curve"], near_best)
        full = s["full_budget_epochs"]
        rows.append({
            "study": study,
            "trials": args.trials,
            "best_val_loss": s["best_val_loss"],
            "epochs_run": s["epochs_run"],
            "full_budget_epochs": full,
            "compute_saved": 1.0 - s["epochs_run"] / full if full else None,
            "epochs_to_reference": to_ref,
            "to_reference_share": to_ref / full if to_ref is not None and full else None,
            "epochs_to_1pct_of_best": to_best,
        })
    columns = ["study", "trials", "best_val_loss", "epochs_run", "full_budget_epochs", "compute_saved",
               "epochs_to_reference", "to_reference_share", "epochs_to_1pct_of_best"]
    _common.print_table(rows, columns, title=f"HPO efficiency (reference val_loss {reference:.4f}; target share <= 0.33)")
    payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "reference_val_loss": reference,
               "summary": rows, "curves": {k: v["curve"] for k, v in studies.items()}}
    _common.write_results("hpo", payload, args.out, smoke=args.smoke)
    _plot(payload, args.out / f"hpo{'.smoke' if args.smoke else ''}.png")
    return payload


def _plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for study, curve in payload["curves"].items():
        if curve:
            ax.step([c[0] for c in curve], [c[1] for c in curve], where="post", label=study)
    ax.axhline(payload["reference_val_loss"], color="k", ls=":", label="reference trial")
    ax.set_xlabel("cumulative training epochs")
    ax.set_ylabel("best val loss so far")
    ax.set_title("HPO efficiency at equal trial counts")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
