"""Leaderboard, best vs reference and ASHA savings from trial records; the Optuna study rebuilt from them."""

from __future__ import annotations

import math

from tsdl.tracking.study import optuna_study, study_plots
from tsdl.tune.results import AshaStats, TrialRecord, leaderboard, render_leaderboard


def _record(tid: str, loss: float, epochs: int, *, status: str = "completed", ref: bool = False, **params) -> TrialRecord:
    stopped = epochs if status == "asha-stopped" else None
    history = [{"epoch": float(e), "val_loss": loss + (epochs - e) * 0.1} for e in range(1, epochs + 1)]
    return TrialRecord(tid, "stage1", params, loss, epochs, stopped, status, ref, history)


RECORDS = [
    _record("t0", 0.50, 4, ref=True, lr=1e-3, lookback="4x"),
    _record("t1", 0.90, 1, status="asha-stopped", lr=3e-2, lookback="2x"),
    _record("t2", 0.40, 4, lr=2e-3, lookback="7x"),
    _record("t3", math.nan, 0, status="error", lr=5e-4, lookback="2x"),
    _record("t4", 0.45, 2, status="early-stopped", lr=1e-4, lookback="4x"),
]


def test_leaderboard_ranks_by_val_loss_and_keeps_failures_last() -> None:
    board = leaderboard(RECORDS)
    assert list(board["trial"]) == ["t2", "t4", "t0", "t1", "t3"]
    assert list(board["rank"]) == [1, 2, 3, 4, 5]
    assert board.loc[board["trial"] == "t1", "stopped_at_rung"].item() == 1
    assert bool(board.loc[board["trial"] == "t0", "reference"].item())
    assert {"lr", "lookback", "val_loss", "epochs", "status"} <= set(board.columns)


def test_rendered_table_always_shows_the_reference() -> None:
    text = render_leaderboard(leaderboard(RECORDS), top=1)
    lines = text.splitlines()
    assert "t2" in lines[1] and any("t0 *" in line for line in lines)
    assert "reference" in lines[-1]


def test_asha_efficiency_is_epochs_run_over_full_budget() -> None:
    stats = AshaStats(epochs_run=sum(r.epochs for r in RECORDS), full_budget_epochs=5 * 4, stopped_trials=1)
    assert stats.efficiency == 11 / 20


def test_optuna_study_and_plots_from_records(tmp_path) -> None:
    study = optuna_study(RECORDS)
    assert len(study.trials) == 4  # the errored trial has no value
    assert study.best_value == 0.40
    assert study.best_params["lookback"] == "7x"
    written = study_plots(RECORDS, tmp_path)
    assert {p.name for p in written} == {"optimization_history.png", "param_importances.png"}
    assert all(p.stat().st_size > 1000 for p in written)
