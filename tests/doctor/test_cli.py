"""`tsdl lr-find` and `tsdl doctor` through the real CLI entry point, on a real `tsdl train` run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tsdl.cli.main import main
from tsdl.config import load_config
from tsdl.tracking import connect
from tsdl.train import RunRecord

REPO_ROOT = Path(__file__).resolve().parents[2]

SMALL = {
    "data": {
        "synthetic": {"n_series": 4, "n_timesteps": 360, "seed": 1},
        "input_chunk_length": 48,
        "output_chunk_length": 12,
        "stride": 2,
    },
    "training": {"batch_size": 32, "optimizer": {"lr": 0.003}},
}


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


def test_lr_find_writes_plot_and_applied_config(tmp_path: Path, capsys) -> None:
    cfg = _config_file(tmp_path)
    code = main(["lr-find", "-c", str(cfg), "--steps", "80", "--plot", str(tmp_path / "lr.png"), "--apply"])
    out = capsys.readouterr().out
    assert code == 0
    assert "suggested lr (valley)" in out and (tmp_path / "lr.png").exists()
    applied = load_config(tmp_path / "cfg.lr-find.yaml")
    suggested = float(out.split("suggested lr (valley):")[1].split()[0])
    assert applied.training.optimizer.lr == suggested
    assert applied.data.input_chunk_length == 48
    assert load_config(cfg).training.optimizer.lr == 0.003  # the original file is untouched


def test_doctor_preflight(tmp_path: Path, capsys) -> None:
    cfg = _config_file(tmp_path)
    out_dir = tmp_path / "doc"
    code = main(["doctor", "-c", str(cfg), "--out", str(out_dir), "--lr-steps", "0", "--overfit-steps", "150"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "[PASS] overfit_one_batch" in text and (out_dir / "doctor_report.md").exists()


def test_doctor_diagnoses_a_tsdl_train_run_that_blew_up(tmp_path: Path, capsys) -> None:
    """`tsdl train` (a real process) with lr 5 on an MLP: the loss is inf by step 10 and the run
    fails; `tsdl doctor --run-id` then reads the NaN epoch the run logged before failing."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {**SMALL, "model": {"name": "nhits", "hidden_size": 64},
           "training": {**SMALL["training"], "max_epochs": 3, "seed": 7, "optimizer": {"lr": 5.0}},
           "resources": {"storage_path": str(tmp_path / "results"), "max_failures": 0},
           "tracking": {"tracking_uri": store}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "tsdl.cli.main", "train", "-c", "run.yaml", "--run-name", "blew-up", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    run_id = RunRecord.load(str(tmp_path / "results"), "blew-up").mlflow_run_id
    assert "training loss became non-finite" in line, proc.stderr
    # One fix, and a useful one: the config change and the doctor for this run (not --resume).
    assert line.count("(fix:") == 1 and "lower training.optimizer.lr (now 5)" in line, line
    assert f"`tsdl doctor --run-id {run_id}`" in line and "--resume" not in line, line

    code = main(["doctor", "--run-id", run_id, "-c", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "doc")])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "[FAIL] learning_curve  divergence: loss became non-finite (NaN/inf) at epoch 1" in text
    assert "1. lower the learning rate 10x (training.optimizer.lr: 5 -> 0.5)" in text
    run = connect(store).get_run(run_id)
    assert run.info.status == "FAILED"  # logging the diagnosis does not reopen the run
    assert run.data.tags["doctor.diagnosis"] == "divergence"


def test_doctor_without_config_or_run_is_a_one_line_error(capsys) -> None:
    assert main(["doctor"]) == 2
    assert "needs -c CONFIG" in capsys.readouterr().err
