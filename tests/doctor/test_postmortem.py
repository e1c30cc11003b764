"""Post-mortem on real runs logged to a tmp MLflow store: each broken run gets its diagnosis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doctor._runs import train_and_log
from tsdl.doctor.postmortem import diagnose_run
from tsdl.errors import TrackingError
from tsdl.tracking import MlflowRun, connect

# Each scenario breaks one thing in an otherwise ordinary config; nothing here is tuned to a result.
CASES = {
    "healthy": ({"training__optimizer": {"lr": 3e-3}, "training__max_epochs": 8}, "healthy"),
    "lr too high": ({"training__optimizer": {"lr": 5.0}, "training__max_epochs": 8}, ("divergence", "oscillating")),
    "lr too low": ({"training__optimizer": {"lr": 1e-7}, "training__max_epochs": 6}, "not_decreasing"),
    "tiny train set, big model": (
        {
            "model": {"name": "nhits", "hidden_size": 512, "dropout": 0.0},
            "data__synthetic": {"n_series": 1, "n_timesteps": 400, "seed": 1},
            "data__split": {"val_fraction": 0.3, "test_fraction": 0.1},
            "data__stride": 8,
            "training__max_epochs": 25,
            "training__optimizer": {"lr": 3e-3, "weight_decay": 0.0},
        },
        "overfitting",
    ),
    "too small model": (
        {
            "model": {"name": "nhits", "hidden_size": 1, "n_blocks": 1, "n_layers": 1, "dropout": 0.0},
            "training__max_epochs": 8,
            "training__optimizer": {"lr": 3e-3},
        },
        "underfitting",
    ),
}


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.mark.parametrize("case", list(CASES))
def test_broken_runs_get_the_right_diagnosis(case, make_config, store) -> None:
    overrides, expected = CASES[case]
    run_id = train_and_log(make_config(tracking={"tracking_uri": store}, **overrides))
    report = diagnose_run(run_id, tracking_uri=store, log_to_run=False)
    (finding,) = report.findings
    kinds = (expected,) if isinstance(expected, str) else expected
    assert finding.summary.split(":")[0].replace(" ", "_") in kinds, report.render()
    assert bool(finding.remedies) == (expected != "healthy")


def test_diagnosis_is_logged_back_to_the_run(make_config, store, tmp_path: Path) -> None:
    config = make_config(tracking={"tracking_uri": store}, training__optimizer={"lr": 1e-7},
                         training__max_epochs=4)
    run_id = train_and_log(config)
    report = diagnose_run(run_id, tracking_uri=store, out_dir=tmp_path / "out")
    client = connect(store)
    run = client.get_run(run_id)
    assert run.data.tags["doctor.diagnosis"] == "not_decreasing"
    assert run.info.status == "FINISHED"  # logging the diagnosis does not reopen the run
    logged = {a.path for a in client.list_artifacts(run_id, "doctor")}
    assert {"doctor/doctor_report.md", "doctor/doctor_learning_curve.png", "doctor/diagnosis.json"} <= logged
    markdown = (tmp_path / "out" / run_id / "doctor_report.md").read_text()
    assert "not decreasing" in markdown and "`training.optimizer.lr`" in markdown
    assert "learning curve" in " ".join(report.artifacts)


def test_study_diagnoses_best_and_worst_trial(make_config, store) -> None:
    config = make_config(tracking={"tracking_uri": store})
    parent = MlflowRun.start(config, data_stats={}, run_name="study")
    for lr in (3e-3, 1e-7):
        trial = MlflowRun.start(config, data_stats={}, run_name=f"trial-{lr:g}", parent_run_id=parent.run_id)
        base = 1.0 if lr < 1e-3 else 0.8
        for epoch in range(1, 6):
            drop = 0.0001 * epoch if lr < 1e-3 else 0.1 * epoch
            trial.log_epoch(epoch, {"train_loss": base - drop, "val_loss": base - drop + 0.01})
        trial.finish()
    parent.finish()
    report = diagnose_run(parent.run_id, tracking_uri=store, log_to_run=False, with_reference=False)
    assert [f.check for f in report.findings] == [
        "learning_curve (best trial trial-0.003)", "learning_curve (worst trial trial-1e-07)",
    ]
    assert report.findings[1].summary.startswith("not decreasing")
    assert "Tune study with 2 trials" in report.notes[0]


def test_run_without_losses_is_a_clear_error(make_config, store) -> None:
    run = MlflowRun.start(make_config(tracking={"tracking_uri": store}), data_stats={})
    run.finish()
    with pytest.raises(TrackingError, match="no train_loss or val_loss"):
        diagnose_run(run.run_id, tracking_uri=store)
    with pytest.raises(TrackingError, match="not found"):
        diagnose_run("0123456789abcdef", tracking_uri=store)
