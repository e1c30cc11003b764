"""MLflow for a study: one parent run, one nested child run per trial, logged from the driver.

Trials are logged after each study from Tune's results (per-epoch curves included), so trial
actors need no MLflow access and a resumed study logs every trial exactly once.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsdl.config import TsdlConfig, dump_config
from tsdl.tune.budget import StudyPlan
from tsdl.tune.results import StudyResult, TrialRecord
from tsdl.tune.trial import trial_config

__all__ = ["log_study", "optuna_study", "study_plots"]

_log = logging.getLogger(__name__)


def log_study(
    config: TsdlConfig,
    result: StudyResult,
    plan: StudyPlan,
    spaces: Mapping[str, Mapping[str, Any]],
    data_stats: Mapping[str, Any],
) -> str:
    """Log the study run and its trial children; returns the parent run id.

    Parent: leaderboard CSV, best config YAML, best vs reference, ASHA efficiency, search spaces,
    Optuna importance and history plots. Child (tag ``mlflow.parentRunId``): the trial's params,
    per-epoch curves, its status and the ASHA rung it was stopped at.

    A study is logged once, when it ends, so a resumed study (a RayJob retry) gets one parent
    run with every trial. If a FINISHED parent of the same study name exists already (the
    study had finished, the retry only re-ran the entrypoint), that run is returned instead.
    """
    from tsdl.tracking import MlflowRun

    logged = _finished_study_run(config, result.name)
    if logged is not None:
        return logged
    tags = {"tsdl.study": result.name, "tsdl.kind": "study", "tsdl.budget": plan.budget}
    with MlflowRun.start(config, data_stats=data_stats, run_name=result.name, extra_tags=tags) as parent:
        for record in result.records:
            _log_trial(config, plan, record, parent.run_id, data_stats, result.name)
        parent.log_params({f"tune.param.{p}": "tuned" for p in spaces.get("stage1", {})})
        parent.log_params({f"tune.frozen.{p}": why for p, why in result.frozen.items()})
        parent.log_test_metrics(
            {
                "best_val_loss": result.best_val_loss,
                "reference_val_loss": result.reference_val_loss,
                "asha_efficiency": result.asha.efficiency,
                "asha_epochs_run": float(result.asha.epochs_run),
                "asha_full_budget_epochs": float(result.asha.full_budget_epochs),
            },
            prefix="study_",
        )
        parent.log_text(result.leaderboard.to_csv(index=False), "leaderboard.csv")
        parent.log_text(dump_config(result.best_config), "best_config.yaml")
        parent.log_json(
            {
                "best_val_loss": result.best_val_loss,
                "reference_val_loss": result.reference_val_loss,
                "best_beats_reference": result.best_val_loss <= result.reference_val_loss,
            },
            "best_vs_reference.json",
        )
        parent.log_json(
            {
                "epochs_run": result.asha.epochs_run,
                "full_budget_epochs": result.asha.full_budget_epochs,
                "efficiency": result.asha.efficiency,
                "stopped_trials": result.asha.stopped_trials,
            },
            "asha_efficiency.json",
        )
        parent.log_json(
            {stage: {p: s.model_dump() for p, s in space.items()} for stage, space in spaces.items()},
            "search_space.json",
        )
        with tempfile.TemporaryDirectory() as tmp:
            for png in study_plots(result.records, Path(tmp)):
                parent.log_figure(png)
        return parent.run_id


def _finished_study_run(config: TsdlConfig, name: str) -> str | None:
    """The run id of a FINISHED study parent named ``name`` in the config's experiment, if any."""
    from tsdl.tracking import connect, experiment_name, resolve_tracking_uri

    client = connect(resolve_tracking_uri(config.tracking))
    experiment = client.get_experiment_by_name(experiment_name(config))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`tsdl.study` = '{name}' and tags.`tsdl.kind` = 'study' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def _log_trial(
    config: TsdlConfig,
    plan: StudyPlan,
    record: TrialRecord,
    parent_run_id: str,
    data_stats: Mapping[str, Any],
    study: str,
) -> None:
    from tsdl.tracking import MlflowRun

    tags = {
        "tsdl.study": study,
        "tsdl.kind": "trial",
        "tsdl.stage": record.stage,
        "tsdl.trial_id": record.trial_id,
        "tsdl.status": record.status,
        "tsdl.epochs": str(record.epochs),
        "tsdl.asha_stopped": str(record.status == "asha-stopped").lower(),
        "tsdl.stopped_at_rung": "" if record.stopped_at is None else str(record.stopped_at),
        "tsdl.reference": str(record.reference).lower(),
    }
    child_config = trial_config(config, record.params, plan)
    name = f"{record.stage}-{record.trial_id}"
    with MlflowRun.start(
        child_config, data_stats=data_stats, run_name=name, parent_run_id=parent_run_id, extra_tags=tags
    ) as child:
        child.log_params({f"trial.{k}": v for k, v in record.params.items()})
        for row in record.history:
            epoch = int(row.get("epoch", 0))
            child.log_epoch(epoch, {k: v for k, v in row.items() if k != "epoch" and math.isfinite(v)})
        if record.status == "error":
            child.finish("FAILED")


def optuna_study(records: list[TrialRecord]):
    """An ``optuna.Study`` rebuilt from the trials (for Optuna's plots and importance).

    A param whose values are all numbers becomes a float distribution over the observed range;
    any other (choices such as ``"4x"``) a categorical one over the observed values.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    done = [r for r in records if math.isfinite(r.val_loss)]
    dists: dict[str, Any] = {}
    for key in {k for r in done for k in r.params}:
        values = [r.params[key] for r in done if key in r.params]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = float(min(values)), float(max(values))
            dists[key] = FloatDistribution(low, high if high > low else low + 1e-12)
        else:
            dists[key] = CategoricalDistribution(sorted({str(v) for v in values}))
    study = optuna.create_study(direction="minimize")
    for record in done:
        params = {
            k: (float(v) if isinstance(dists[k], FloatDistribution) else str(v)) for k, v in record.params.items()
        }
        dist = {k: dists[k] for k in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dist, value=record.val_loss))
    return study


def study_plots(records: list[TrialRecord], out_dir: Path) -> list[Path]:
    """Optimization history and PED-ANOVA param importances as PNGs (skipped with a warning if impossible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna_study(records)
    written = []
    plots = {
        "optimization_history.png": lambda: ovm.plot_optimization_history(study),
        "param_importances.png": lambda: ovm.plot_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        ),
    }
    for filename, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = draw()
        except Exception as exc:  # too few trials or no varying param: a plot is not worth failing for
            _log.warning("skipping %s: %s", filename, exc)
            continue
        path = out_dir / filename
        axes.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(path)
    return written
