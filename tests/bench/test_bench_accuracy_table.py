"""`bench_accuracy.py --table`: every cell's config is generated and loadable, and the table puts
the published numbers (never invented ones) next to the cells that were not measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.scripts import bench_script
from tsdl.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _print_table(out: Path) -> subprocess.CompletedProcess[str]:
    """``bench_accuracy.py --table --print-only`` over the store in ``out``; asserts it exits 0."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_accuracy.py"), "--table", "--print-only", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_table_writes_every_cell_config_and_prints_the_grid(tmp_path: Path) -> None:
    done = _print_table(tmp_path)
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
    return bench_script("bench_accuracy")


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
    done = _print_table(tmp_path)
    row = next(line for line in done.stdout.splitlines() if line.startswith("| ETTh1 | 720 |"))
    assert "0.471 / 0.400 (10 ep, 2026-12-06)" in row
    cell = load_config(tmp_path / "accuracy-configs" / "ETTh1-dlinear-720.yaml")
    assert cell.training.lr_scheduler.name == "step" and cell.data.output_chunk_length == 720
    assert cell.model.instance_norm == "revin"
    # N-HiTS at H=720 is its own example (validated every 100 steps); its other horizons share one
    nhits = {h: load_config(tmp_path / "accuracy-configs" / f"ETTh1-nhits-{h}.yaml") for h in (96, 720)}
    assert (nhits[720].training.limit_train_batches, nhits[720].model.dropout) == (100, 0.5)
    assert nhits[96].training.limit_train_batches is None and nhits[96].data.output_chunk_length == 96


def test_the_shipped_paper_configs_carry_the_authors_recipes() -> None:
    """DLinear (LTSF-Linear's etth1.sh: 32 x 7 windows, lr 5e-3 but at H=96, type1; plus RevIN) and PatchTST/42 (etth1.sh:
    128 x 7 windows, lr 1e-4, type3, 100 epochs) per horizon, as `tsdl train -c` loads them."""
    for horizon in (96, 192, 336, 720):
        c = load_config(REPO_ROOT / "examples" / f"etth1-dlinear-h{horizon}.yaml")
        t = c.training
        assert (c.data.input_chunk_length, c.data.output_chunk_length) == (336, horizon)
        assert (c.data.split.train_rows, c.data.split.val_rows, c.data.split.test_rows) == (8640, 2880, 2880)
        lr = 0.0025 if horizon == 96 else 0.005  # chosen on validation (the headers)
        assert (t.batch_size, t.optimizer.lr, t.optimizer.weight_decay, t.gradient_clip_val) == (224, lr, 0.0, None)
        assert t.batch_by == "time"  # 32 timestamps x 7 channels
        assert (t.max_epochs, t.early_stopping.patience) == (10, 3)
        assert (t.lr_scheduler.name, t.lr_scheduler.factor, t.lr_scheduler.step_start) == ("step", 0.5, 2)
        assert c.model.instance_norm == "revin"  # chosen by rolling-origin validation (bench_season_folds.py)
    for horizon in (96, 192):
        c = load_config(REPO_ROOT / "examples" / f"etth1-patchtst-h{horizon}.yaml")
        t = c.training
        assert c.data.output_chunk_length == horizon and c.model.hidden_size == 16
        assert (t.batch_size, t.optimizer.lr, t.max_epochs) == (896, 1e-4, 100)
        assert (t.lr_scheduler.name, t.lr_scheduler.factor, t.lr_scheduler.step_start) == ("step", 0.9, 3)
    # N-HiTS at H=720: validated every 100 steps (at most 1000), lr 3e-4 decayed per 100 steps, dropout 0.5.
    c = load_config(REPO_ROOT / "examples" / "etth1-nhits-h720.yaml")
    t = c.training
    assert (c.data.input_chunk_length, c.data.output_chunk_length, c.model.name) == (336, 720, "nhits")
    assert (t.limit_train_batches, t.max_epochs, t.batch_size, t.optimizer.lr) == (100, 10, 128, 3e-4)
    assert (c.model.dropout, t.lr_scheduler.name, t.early_stopping.patience) == (0.5, "step", 3)


def test_the_epoch_curve_replays_tsdls_own_training_loop(tmp_path: Path) -> None:
    """`--epoch-curve` explains a cell by the test MSE of every epoch; it is only evidence if it
    trains exactly as `tsdl train` does: the same val_loss after every epoch, the same kept epoch."""
    from tsdl import api

    bench = _bench_accuracy()
    _common = bench._common  # the script's own helpers, imported by it from bench/
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


def test_the_seed_ensemble_scores_the_average_of_the_kept_models_forecasts(tmp_path: Path) -> None:
    """`--seed-ensemble` is evidence about the seed lottery only if each member's forecasts are its
    kept epoch's (the same test MSE as the replayed loop scores) and the ensemble averages them:
    two copies of one seed score as that seed; two seeds score below their mean (convexity) and
    unlike either."""
    bench = _bench_accuracy()
    _common = bench._common

    def config(seed: int):
        return _common.synthetic_config(n_series=3, n_timesteps=200, input_chunk_length=32, output_chunk_length=8,
                                        overrides=["model.name=dlinear", "training.max_epochs=3", "training.batch_size=32",
                                                   "training.optimizer.lr=0.005", f"training.seed={seed}",
                                                   "resources.torch_threads=1", f"resources.storage_path={tmp_path}"])

    member = bench.epoch_curve(config(7), forecasts=True)
    assert abs(bench._mse(member["test_forecast"], member["test_target"]) - member["test_mse"]) <= 1e-5 * member["test_mse"]
    same = bench.seed_ensemble({7: config(7), 8: config(7)})
    assert same["test_mse_ensemble"] == pytest.approx(member["test_mse"], rel=1e-5)
    assert same["val_mse_ensemble"] == pytest.approx(same["val_mse_each"][0], rel=1e-6)
    two = bench.seed_ensemble({1: config(1), 2: config(2)})
    for split in ("val", "test"):
        each = two[f"{split}_mse_each"]
        assert two[f"{split}_mse_ensemble"] < sum(each) / 2
        assert all(abs(two[f"{split}_mse_ensemble"] - e) > 1e-6 for e in each)


def _seeded(mses: list[float], date: str = "2026-12-06 12:00") -> dict:
    """A multi-seed cell as `_run_cell` stores it: the median of per-seed runs (seeds 42, 1, 2, ...)."""
    bench = _bench_accuracy()
    seeds = [42, *range(1, len(mses))]
    runs = {str(s): {"date_utc": date, "epochs": 5 + i, "best_epoch": 2 + i, "test_mse": m, "test_mae": m + 0.01,
                     "train_s": 1.0} for i, (s, m) in enumerate(zip(seeds, mses, strict=True))}
    return {"status": "measured", "recipe": "r", "date_utc": date, "seeds": seeds, "max_epochs": 10,
            "limit_batches": None, **bench.summarize_seeds(runs), "per_seed": runs}


def test_a_multi_seed_cell_is_the_median_with_its_range_and_regresses_on_the_median(tmp_path: Path) -> None:
    bench = _bench_accuracy()
    cell = _seeded([0.50, 0.41, 0.40, 0.43, 0.39])
    assert (cell["test_mse"], cell["test_mse_min"], cell["test_mse_max"]) == (0.41, 0.39, 0.50)
    assert cell["test_mae"] == 0.42 and (cell["epochs"], cell["best_epoch"]) == (6, 3)  # seed 1's run is the median
    assert bench.cell_seeds("dlinear", 42, None) == bench.TABLE_SEEDS["dlinear"] and len(bench.TABLE_SEEDS["dlinear"]) == 15
    assert bench.cell_seeds("nhits", 7, None) == (7,) and bench.cell_seeds("dlinear", 42, [3]) == (3,)
    # One bad seed moves the median little: no regression; a worse median (+2.4%) is one.
    assert bench.merge_cell(cell, _seeded([0.60, 0.41, 0.40, 0.43, 0.39], "2026-12-07 12:00"))[1] is None
    kept, why = bench.merge_cell(cell, _seeded([0.42, 0.42, 0.40, 0.43, 0.42], "2026-12-07 12:00"))
    assert why is not None and "median test MSE of 5 seeds 0.4200" in why and kept["test_mse"] == 0.41
    # A median over other seeds is another measurement, not a rerun.
    other = dict(_seeded([0.5, 0.5, 0.5, 0.5, 0.5]), seeds=[5, 6, 7, 8, 9])
    assert bench.merge_cell(cell, other)[1] is None
    # The table shows the median, its range and the seed count, dated.
    (tmp_path / "accuracy-table.json").write_text(json.dumps({"cells": {"ETTh1/dlinear/192": cell}}))
    done = _print_table(tmp_path)
    row = next(line for line in done.stdout.splitlines() if line.startswith("| ETTh1 | 192 |"))
    assert "0.410 [0.390-0.500] / 0.420 [0.400-0.510] (median of 5 seeds, 2026-12-06)" in row


def test_the_table_exits_1_when_a_remeasured_median_regresses(tmp_path: Path, monkeypatch) -> None:
    bench = _bench_accuracy()
    stored = _seeded([0.41, 0.41, 0.40, 0.43, 0.39])
    (tmp_path / "accuracy-table.json").write_text(json.dumps({"cells": {"ETTh1/dlinear/96": stored}}))
    monkeypatch.setattr(bench, "_run_cell", lambda *a: _seeded([0.45, 0.45, 0.44, 0.46, 0.44], "2026-12-07 12:00"))
    try:
        bench.main(["--table", "--datasets", "ETTh1", "--models", "dlinear", "--horizons", "96", "--out", str(tmp_path)])
    except SystemExit as exc:
        assert "ETTh1/dlinear/96" in str(exc) and "regressed" in str(exc)
    else:
        raise AssertionError("a median 9.8% worse than the stored one did not fail the run")
    kept = json.loads((tmp_path / "accuracy-table.json").read_text())["cells"]["ETTh1/dlinear/96"]
    assert kept["test_mse"] == 0.41 and kept["regressed"]["test_mse"] == 0.45


def test_the_replicas_authors_stream_draws_what_torchs_dataloader_draws() -> None:
    """`--ltsf-replica --authors-stream` claims to replay the authors' DataLoaders' random stream:
    the same epoch orders as torch's shuffled loader, and the same generator state after it."""
    import torch
    from torch.utils.data import DataLoader

    bench = _bench_accuracy()
    n, batch = 1000, 32
    torch.manual_seed(2021)
    mine = [bench.authors_loader_order(n)[: n // batch * batch].tolist() for _ in range(3)]
    bench.global_draw()
    after_mine = torch.rand(3)
    torch.manual_seed(2021)
    theirs = [[i for b in DataLoader(list(range(n)), batch_size=batch, shuffle=True, drop_last=True) for i in b.tolist()]
              for _ in range(3)]
    list(DataLoader(list(range(64)), batch_size=batch, shuffle=False, drop_last=True))  # the test loader's one draw
    assert mine == theirs
    assert torch.equal(after_mine, torch.rand(3))
