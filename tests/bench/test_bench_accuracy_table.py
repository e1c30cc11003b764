"""`bench_accuracy.py --table`: every cell's config is generated and loadable, and the table puts
the published numbers (never invented ones) next to the cells that were not measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tsdl.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_table_writes_every_cell_config_and_prints_the_grid(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_accuracy.py"), "--table", "--print-only", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    configs = sorted((tmp_path / "accuracy-configs").glob("*.yaml"))
    assert len(configs) == 2 * 4 * 4  # ETTh1/ETTh2 x 4 horizons x 4 models
    cell = load_config(tmp_path / "accuracy-configs" / "ETTh2-patchtst-720.yaml")
    assert (cell.data.dataset, cell.data.input_chunk_length, cell.data.output_chunk_length) == ("ETTh2", 336, 720)
    assert cell.model.name == "patchtst" and cell.data.path is None
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ETTh")]
    assert len(rows) == 8
    etth1_96 = [c.strip() for c in rows[0].strip("|").split("|")]
    assert etth1_96[:4] == ["ETTh1", "96", "not run", "0.375 / 0.399"]  # DLinear, Zeng et al. Table 2
    assert "0.329 / -" in rows[6]  # ETTh2 H=336 PatchTST/64: the MAE could not be verified
    stored = json.loads((tmp_path / "accuracy-table.json").read_text())
    assert stored["cells"] == {} and "not run (32 cells)" in done.stdout


def _bench_accuracy():
    import importlib

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        return importlib.import_module("bench_accuracy")
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))


def _cell(mse: float, date: str, epochs: int = 10) -> dict:
    return {"status": "measured", "test_mse": mse, "test_mae": 0.4, "epochs": epochs, "max_epochs": epochs,
            "limit_batches": None, "date_utc": date}


def test_a_rerun_more_than_2_percent_worse_is_a_regression_and_keeps_the_stored_cell() -> None:
    bench = _bench_accuracy()
    stored = _cell(0.4000, "2026-12-06 05:00")
    kept, why = bench.merge_cell(stored, _cell(0.4079, "2026-12-07 05:00"))  # +1.98%: within
    assert why is None and kept["test_mse"] == 0.4079
    kept, why = bench.merge_cell(stored, _cell(0.4100, "2026-12-07 05:00"))  # +2.5%
    assert why is not None and "0.4100" in why and "0.4000" in why
    assert kept["test_mse"] == 0.4000 and kept["regressed"]["test_mse"] == 0.4100
    # Another epoch budget is another measurement, and a first measurement has nothing to regress from.
    assert bench.merge_cell(stored, _cell(0.5, "2026-12-07", epochs=3))[1] is None
    assert bench.merge_cell({"status": "not run", "reason": "x"}, _cell(0.5, "2026-12-07"))[1] is None
    # A changed recipe (the cell's example changed) is a new measurement too; the same recipe is compared.
    assert bench.merge_cell(dict(stored, recipe="a"), dict(_cell(0.5, "2026-12-07"), recipe="b"))[1] is None
    assert bench.merge_cell(dict(stored, recipe="a"), dict(_cell(0.5, "2026-12-07"), recipe="a"))[1] is not None


def test_the_table_dates_every_measured_cell_and_uses_the_per_horizon_dlinear_recipe(tmp_path: Path) -> None:
    store = {"cells": {"ETTh1/dlinear/720": _cell(0.4712, "2026-12-06 05:30")}}
    (tmp_path / "accuracy-table.json").write_text(json.dumps(store))
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_accuracy.py"), "--table", "--print-only", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| ETTh1 | 720 |"))
    assert "0.471 / 0.400 (10 ep, 2026-12-06)" in row
    cell = load_config(tmp_path / "accuracy-configs" / "ETTh1-dlinear-720.yaml")
    assert cell.training.lr_scheduler.name == "step" and cell.data.output_chunk_length == 720


def test_the_shipped_paper_configs_carry_the_authors_recipes() -> None:
    """DLinear (LTSF-Linear's etth1.sh: 32 x 7 windows, lr 5e-3, type1) and PatchTST/42 (etth1.sh:
    128 x 7 windows, lr 1e-4, type3, 100 epochs) per horizon, as `tsdl train -c` loads them."""
    for horizon in (96, 192, 336, 720):
        c = load_config(REPO_ROOT / "examples" / f"etth1-dlinear-h{horizon}.yaml")
        t = c.training
        assert (c.data.input_chunk_length, c.data.output_chunk_length) == (336, horizon)
        assert (c.data.split.train_rows, c.data.split.val_rows, c.data.split.test_rows) == (8640, 2880, 2880)
        assert (t.batch_size, t.optimizer.lr, t.optimizer.weight_decay, t.gradient_clip_val) == (224, 0.005, 0.0, None)
        assert t.batch_by == "time"  # 32 timestamps x 7 channels
        assert (t.max_epochs, t.early_stopping.patience) == (10, 3)
        assert (t.lr_scheduler.name, t.lr_scheduler.factor, t.lr_scheduler.step_start) == ("step", 0.5, 2)
    for horizon in (96, 192):
        c = load_config(REPO_ROOT / "examples" / f"etth1-patchtst-h{horizon}.yaml")
        t = c.training
        assert c.data.output_chunk_length == horizon and c.model.hidden_size == 16
        assert (t.batch_size, t.optimizer.lr, t.max_epochs) == (896, 1e-4, 100)
        assert (t.lr_scheduler.name, t.lr_scheduler.factor, t.lr_scheduler.step_start) == ("step", 0.9, 3)
    # N-HiTS at H=720: input 5 x H, 1000 steps of 256 windows validated every 100 steps.
    c = load_config(REPO_ROOT / "examples" / "etth1-nhits-h720.yaml")
    t = c.training
    assert (c.data.input_chunk_length, c.data.output_chunk_length, c.model.name) == (3600, 720, "nhits")
    assert (t.limit_train_batches, t.max_epochs, t.batch_size) == (100, 10, 256)


def test_the_epoch_curve_replays_tsdls_own_training_loop(tmp_path: Path) -> None:
    """`--epoch-curve` explains a cell by the test MSE of every epoch; it is only evidence if it
    trains exactly as `tsdl train` does: the same val_loss after every epoch, the same kept epoch."""
    from tsdl import api

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    bench = _bench_accuracy()
    config = _common.synthetic_config(n_series=3, n_timesteps=260, input_chunk_length=48, output_chunk_length=24, overrides=[
        "model.name=dlinear", "training.max_epochs=4", "training.batch_size=48", "training.optimizer.lr=0.005",
        "training.gradient_clip_val=null", "training.lr_scheduler.name=step", "training.lr_scheduler.step_start=2",
        "training.early_stopping.patience=2", "training.batch_by=time", "resources.torch_threads=1", "resources.max_failures=0",
        f"resources.storage_path={tmp_path}",
    ])
    trained = api.train(config, progress=False)
    replay = bench.epoch_curve(config)
    val = [h["val_loss"] for h in trained.history]
    assert len(replay["val_per_epoch"]) == len(val) >= 3
    for mine, theirs in zip(replay["val_per_epoch"], val, strict=True):
        assert abs(mine - theirs) <= 1e-5 * theirs
    assert replay["best_epoch"] == int(min(trained.history, key=lambda h: h["val_loss"])["epoch"])
    assert abs(replay["test_mse"] - trained.test.model["MSE"]) <= 1e-5 * trained.test.model["MSE"]
