"""Post-mortem on real `tsdl train` runs (`tsdl.api.train`, one worker in this process) logged to
a tmp MLflow store: each deliberately broken run gets its diagnosis and the playbook's remedy.

Every run is seeded and deterministic (``training.deterministic`` default) and sits far from
the thresholds it trips (see each case's comment), so a wrong rule or threshold fails here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.doctor.conftest import doctor_config
from tsdl import api
from tsdl.doctor.postmortem import diagnose_run
from tsdl.errors import TrackingError
from tsdl.tracking import MlflowRun, connect


@dataclass(frozen=True)
class Case:
    overrides: dict
    kind: str
    remedy: str | None  # the first remedy, as rendered: "... (key: current -> suggested)"
    trial: bool = False  # filed as a trial of the study run (test_study_...)


_OVERFIT = {
    # One series of white noise: nothing to learn, so every step that fits the 46 training
    # windows is memorization and val_loss climbs from epoch 2 (+25% by epoch 6; the rule needs 5%).
    "data__path": "NOISE",
    "data__split": {"val_fraction": 0.3, "test_fraction": 0.1},
    "data__stride": 4,
    "model": {"name": "nhits", "hidden_size": 128, "dropout": 0.0},
    "training__batch_size": 8,
    "training__max_epochs": 6,
    "training__optimizer": {"lr": 3e-3, "weight_decay": 0.0},
    "training__early_stopping": {"enabled": False},
    "training__lr_scheduler": {"enabled": False},
}

CASES = {
    # train 0.85 -> 0.07, val 0.37 -> 0.094 (skill +71% over seasonal naive)
    "healthy": Case({"training__optimizer": {"lr": 3e-3}, "training__max_epochs": 6}, "healthy", None, trial=True),
    # no clipping: train_loss 2.9e4 -> 196, still ~600x the seasonal-naive loss (rule: 10x)
    "lr-too-high": Case(
        {"training__optimizer": {"lr": 10.0}, "training__gradient_clip_val": None, "training__max_epochs": 6},
        "divergence",
        "lower the learning rate 10x (training.optimizer.lr: 10 -> 1)",
    ),
    # train_loss 1.597 -> 1.596 (rule: falls < 5% and no skill over the reference)
    "lr-too-low": Case(
        {"training__optimizer": {"lr": 1e-7}, "training__max_epochs": 4},
        "not_decreasing",
        "run the LR range test and use its suggestion: `tsdl lr-find -c CONFIG --apply` "
        "(training.optimizer.lr)",
        trial=True,
    ),
    "overfitting": Case(_OVERFIT, "overfitting", "more dropout (model.dropout: 0 -> 0.1)"),
    # one unit of width: val 1.07 vs seasonal naive 0.33, train and val 4% apart, still falling
    "too-small-model": Case(
        {
            "model": {"name": "nhits", "hidden_size": 1, "n_blocks": 1, "n_layers": 1, "dropout": 0.0},
            "training__optimizer": {"lr": 3e-3},
            "training__max_epochs": 6,
        },
        "underfitting",
        "train longer (training.max_epochs: 6 -> 12)",
    ),
}


STATUS = {"healthy": "pass", "overfitting": "warn", "underfitting": "warn", "divergence": "fail",
          "not_decreasing": "fail"}


@dataclass(frozen=True)
class Runs:
    store: str
    ids: dict[str, str]
    study_id: str
    root: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Train every case once for the module; the ``trial`` ones as child runs of a study run."""
    root = tmp_path_factory.mktemp("postmortem")
    store = f"sqlite:///{root / 'mlflow.db'}"
    noise = root / "noise.csv"
    y = np.random.default_rng(0).standard_normal(400)
    pd.DataFrame({"unique_id": "noise", "ds": pd.date_range("2024-01-01", periods=400, freq="h"), "y": y}
                 ).to_csv(noise, index=False)
    base = {"resources": {"storage_path": str(root / "results"), "max_failures": 0},
            "tracking": {"tracking_uri": store}}
    study = MlflowRun.start(doctor_config(**base), data_stats={}, run_name="study")
    ids = {}
    for name, case in CASES.items():
        overrides = {k: (str(noise) if v == "NOISE" else v) for k, v in case.overrides.items()}
        tags = {"mlflow.parentRunId": study.run_id} if case.trial else None
        result = api.train(doctor_config(**base, **overrides), run_name=name, progress=False, tags=tags)
        ids[name] = result.mlflow_run_id
    study.finish()
    return Runs(store, ids, study.run_id, root)


@pytest.mark.parametrize("name", list(CASES))
def test_real_runs_get_their_diagnosis_and_remedy(name: str, runs: Runs) -> None:
    case = CASES[name]
    report = diagnose_run(runs.ids[name], tracking_uri=runs.store, log_to_run=False)
    (finding,) = report.findings
    assert finding.summary.split(":")[0] == case.kind.replace("_", " "), report.render()
    assert finding.status == STATUS[case.kind]
    if case.remedy is None:
        assert finding.remedies == ()
    else:
        assert finding.remedies[0].render() == case.remedy, report.render()


def test_overfitting_remedies_name_the_runs_own_settings(runs: Runs) -> None:
    report = diagnose_run(runs.ids["overfitting"], tracking_uri=runs.store, log_to_run=False)
    rendered = [r.render() for r in report.findings[0].remedies]
    assert "stop earlier (training.early_stopping.enabled: false -> true)" in rendered
    assert "a smaller model (model.hidden_size: 128 -> 64)" in rendered


def test_diagnosis_is_logged_back_to_the_run(runs: Runs) -> None:
    run_id, out = runs.ids["lr-too-low"], runs.root / "doctor-out"
    report = diagnose_run(run_id, tracking_uri=runs.store, out_dir=out)
    client = connect(runs.store)
    run = client.get_run(run_id)
    assert run.data.tags["doctor.diagnosis"] == "not_decreasing"
    assert run.info.status == "FINISHED"  # logging the diagnosis does not reopen the run
    logged = {a.path for a in client.list_artifacts(run_id, "doctor")}
    assert {"doctor/doctor_report.md", "doctor/doctor_learning_curve.png", "doctor/diagnosis.json"} <= logged
    markdown = (out / run_id / "doctor_report.md").read_text()
    assert "not decreasing" in markdown and "`training.optimizer.lr`" in markdown
    assert "learning curve" in " ".join(report.artifacts)


def test_study_diagnoses_best_and_worst_trial(runs: Runs) -> None:
    report = diagnose_run(runs.study_id, tracking_uri=runs.store, log_to_run=False)
    assert [f.check for f in report.findings] == [
        "learning_curve (best trial healthy)", "learning_curve (worst trial lr-too-low)",
    ]
    assert [f.summary.split(":")[0] for f in report.findings] == ["healthy", "not decreasing"]
    assert "Tune study with 2 trials" in report.notes[0]


def test_run_without_losses_is_a_clear_error(runs: Runs) -> None:
    run = MlflowRun.start(doctor_config(tracking={"tracking_uri": runs.store}), data_stats={})
    run.finish()
    with pytest.raises(TrackingError, match="no train_loss or val_loss"):
        diagnose_run(run.run_id, tracking_uri=runs.store)
    with pytest.raises(TrackingError, match="not found"):
        diagnose_run("0123456789abcdef", tracking_uri=runs.store)
