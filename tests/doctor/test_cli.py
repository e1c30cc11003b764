"""`tsdl lr-find` and `tsdl doctor` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.doctor._runs import train_and_log
from tsdl.cli.main import main
from tsdl.config import dump_config, load_config

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


def test_doctor_preflight_and_postmortem(tmp_path: Path, capsys) -> None:
    cfg = _config_file(tmp_path)
    out_dir = tmp_path / "doc"
    code = main(["doctor", "-c", str(cfg), "--out", str(out_dir), "--lr-steps", "0", "--overfit-steps", "150"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "[PASS] overfit_one_batch" in text and (out_dir / "doctor_report.md").exists()

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(cfg, overrides=[f"tracking.tracking_uri={store}", "training.optimizer.lr=1e-7",
                                         "training.max_epochs=4"])
    (tmp_path / "run.yaml").write_text(dump_config(config))
    run_id = train_and_log(config)
    code = main(["doctor", "--run-id", run_id, "-c", str(tmp_path / "run.yaml"), "--out", str(out_dir)])
    text = capsys.readouterr().out
    assert code == 1  # "not decreasing" is a failed check
    assert "not decreasing" in text and "training.optimizer.lr" in text


def test_doctor_without_config_or_run_is_a_one_line_error(capsys) -> None:
    assert main(["doctor"]) == 2
    assert "needs -c CONFIG" in capsys.readouterr().err
