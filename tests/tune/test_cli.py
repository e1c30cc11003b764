"""`tsdl tune`: arguments, the demo config, and one-line errors before any Ray work starts."""

from __future__ import annotations

from tsdl.cli.main import build_parser, main
from tsdl.config import TsdlConfig
from tsdl.tune.budget import plan_study
from tsdl.tune.example import example_config
from tsdl.tune.trial import trial_config


def test_tune_is_a_registered_command() -> None:
    args = build_parser().parse_args(["tune", "-c", "cfg.yaml", "--budget", "small", "--final-fit"])
    assert (args.config, args.budget, args.final_fit, args.resume) == ("cfg.yaml", "small", True, None)


def test_resume_of_an_unknown_study_is_a_one_line_error(tmp_path, capsys) -> None:
    (tmp_path / "old-study").mkdir()
    (tmp_path / "old-study" / "study.json").write_text("{}")
    code = main(["tune", "--resume", "nope", "--set", f"resources.storage_path={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no study 'nope'" in err and "old-study" in err


def test_example_runs_on_generated_data_with_the_smoke_budget() -> None:
    config = example_config()
    assert config.data.path is None
    plan = plan_study(config)
    assert plan.budget == "smoke" and plan.stage1_trials + plan.stage2_trials == 8


def test_trial_config_applies_budget_then_params() -> None:
    base = TsdlConfig.model_validate({"data": {"output_chunk_length": 12}, "tracking": {"enabled": True}})
    plan = plan_study(base, "smoke")
    config = trial_config(base, {"data.input_chunk_length": "4x", "training.optimizer.lr": 0.01}, plan)
    assert config.training.max_epochs == plan.max_epochs
    assert config.training.limit_train_batches == plan.limit_train_batches
    assert config.tracking.enabled is False  # the study logs trials from the driver
    assert (config.data.input_chunk_length, config.training.optimizer.lr) == (48, 0.01)


def test_dead_tracking_server_stops_tune_before_the_study(tmp_path, capsys, monkeypatch) -> None:
    """`tune` logs to MLflow only when the study ends: the probe must catch a dead server first."""
    import socket
    import time

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    start = time.monotonic()
    code = main(["tune", "--example", "--study-name", "s", "--set", f"resources.storage_path={tmp_path}",
                 "--set", f"tracking.tracking_uri={dead}"])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: MLflow tracking server {dead} is unreachable (connection refused)")
    assert not (tmp_path / "s").exists()


def test_resume_if_exists_needs_a_study_name(capsys) -> None:
    assert main(["tune", "--example", "--resume-if-exists"]) == 2
    assert "--resume-if-exists needs --study-name" in capsys.readouterr().err
