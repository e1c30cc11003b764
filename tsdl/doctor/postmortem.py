"""`tsdl doctor --run-id ID`: read a run's learning curves from MLflow, diagnose, log the verdict back.

A run of ``tsdl train`` has per-epoch metrics ``train_loss`` / ``val_loss`` / ``lr`` /
``grad_norm`` (step = epoch) and a ``config.yaml`` artifact. A Tune study is a parent run whose
trials are child runs (tag ``mlflow.parentRunId``); the doctor then diagnoses the best and the
worst trial by their lowest ``val_loss``. Runs still in progress are read as far as they got; a
run that failed on a NaN/inf loss logged that epoch's ``train_loss`` as NaN (divergence).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tsdl.config import TsdlConfig, load_config
from tsdl.config.tracking import TrackingConfig
from tsdl.doctor.curves import CurveDiagnosis, classify_curves
from tsdl.doctor.findings import DoctorReport, Finding, Status
from tsdl.doctor.remedies import remedies_for
from tsdl.errors import TrackingError, TsdlError
from tsdl.tracking import MlflowRun, connect, resolve_tracking_uri
from tsdl.tracking.mlflow_run import get_run

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["RunDiagnosis", "diagnose_run", "load_history", "reference_loss"]

_EPOCH_METRICS = ("train_loss", "val_loss", "lr", "grad_norm")
_GRAD_PREFIX = "grad_norm/"
_STATUS: dict[str, Status] = {"healthy": "pass", "too_short": "warn", "overfitting": "warn",
                              "underfitting": "warn", "oscillating": "warn"}
_POINT_LOSSES = {"mse", "mae"}  # raw output == point forecast, so a naive forecast can be scored


@dataclass(slots=True)
class RunDiagnosis:
    """One diagnosed run: its curves, the verdict and the finding shown in the report."""

    run_id: str
    run_name: str
    history: list[dict[str, float]]
    diagnosis: CurveDiagnosis
    finding: Finding
    reference_loss: float | None


def diagnose_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    log_to_run: bool = True,
    with_reference: bool = True,
) -> DoctorReport:
    """Diagnose a training run, or the best and worst trials of a Tune study run.

    Args:
        run_id: an MLflow run id (a training run or a study's parent run).
        tracking_uri: the MLflow store (default: $MLFLOW_TRACKING_URI, else the local store).
        out_dir: where to write the report and plots (default: a temporary directory).
        log_to_run: log ``doctor/doctor_report.md``, ``doctor/diagnosis.json`` and the plots to each
            diagnosed run, and tag it ``doctor.diagnosis``.
        with_reference: score a seasonal-naive forecast on the run's validation split (point
            losses only) so underfitting can be judged.

    Returns:
        The report: one ``learning_curve`` finding per diagnosed run.

    Raises:
        TrackingError: the store or the run cannot be found, or the run logged no losses.
    """
    uri = tracking_uri or resolve_tracking_uri(TrackingConfig())
    client = connect(uri)
    run = get_run(client, run_id, uri)
    trials = _trials(client, run)
    report = DoctorReport(f"tsdl doctor (post-mortem) run {run_id}")
    targets = [("run", run)] if not trials else _best_and_worst(client, trials)
    if trials:
        report.notes.append(f"Tune study with {len(trials)} trials: diagnosing the best and worst by val_loss")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(out_dir) if out_dir is not None else Path(tmp)
        for role, target in targets:
            result = _diagnose_one(client, target, role, with_reference=with_reference)
            report.add(result.finding)
            run_dir = base / result.run_id
            paths = _plots(client, result, run_dir)
            markdown = run_dir / "doctor_report.md"
            markdown.write_text(_single(report.title, result).to_markdown())
            if out_dir is not None:
                report.artifacts.update({f"{role} {kind}": str(p) for kind, p in paths.items()})
                report.artifacts[f"{role} report"] = str(markdown)
            if log_to_run:
                _log(client, uri, target, result, [markdown, *paths.values()])
    return report


def load_history(client: MlflowClient, run_id: str) -> list[dict[str, float]]:
    """Per-epoch metrics of a run, one dict per logged epoch (missing values are absent).

    Raises:
        TrackingError: the run logged neither train_loss nor val_loss.
    """
    rows: dict[int, dict[str, float]] = {}
    for key in _EPOCH_METRICS:
        for metric in client.get_metric_history(run_id, key):
            rows.setdefault(int(metric.step), {"epoch": float(metric.step)})[key] = float(metric.value)
    history = [rows[step] for step in sorted(rows)]
    if not any("train_loss" in row or "val_loss" in row for row in history):
        raise TrackingError(
            f"MLflow run {run_id!r} has no train_loss or val_loss metrics to diagnose",
            hint="pass the run id of a `tsdl train` run or a `tsdl tune` study (not a doctor or "
            "lr-find run), or wait until its first epoch has finished",
        )
    return history


def reference_loss(config: TsdlConfig) -> float | None:
    """The run's loss of a seasonal-naive forecast on the validation windows (None if not scorable).

    The season is the data's season length (repeated from each series' history before the
    window, as in test evaluation), or the last value when a series has less than one season.
    Only point losses whose raw output is the forecast (mse, mae) can score it.
    """
    if config.loss.name not in _POINT_LOSSES:
        return None
    import torch

    from tsdl.data import prepare_data
    from tsdl.evaluation.baseline import MetricUnavailable, history_naive
    from tsdl.losses import build_loss

    prepared = prepare_data(config)
    val = prepared.windows("val")
    if len(val) == 0:
        return None
    h = prepared.history("val")

    def naive(season: int) -> np.ndarray:
        return history_naive(h.scaled, h.series_start, h.origin, prepared.output_chunk_length, season, h.series_ids)

    try:
        forecast = naive(prepared.season_length)
    except MetricUnavailable:
        forecast = naive(1)
    pred = torch.from_numpy(forecast.astype(np.float32)).unsqueeze(-1)
    target = val.batch_at(np.arange(len(val))).target
    return float(build_loss(config.loss)(pred, target))


def _diagnose_one(client: MlflowClient, run: Any, role: str, *, with_reference: bool) -> RunDiagnosis:
    run_id = run.info.run_id
    name = run.info.run_name or run_id
    history = load_history(client, run_id)
    config = _config_of(client, run_id)
    reference, evidence = None, []
    if with_reference and config is not None:
        try:
            reference = reference_loss(config)
        except TsdlError as exc:  # the data may not be reachable from here; diagnose without it
            evidence.append(f"no reference loss: {exc.one_line()}")
    diagnosis = classify_curves(history, reference_loss=reference)
    status = _STATUS.get(diagnosis.kind, "fail")
    label = "learning_curve" if role == "run" else f"learning_curve ({role} trial {name})"
    finding = Finding(
        label,
        status,
        f"{diagnosis.kind.replace('_', ' ')}: {diagnosis.summary}",
        (f"run {name} ({run.info.status}), {len(history)} epochs", *diagnosis.evidence, *evidence),
        remedies_for(diagnosis.kind, config, plateaued=diagnosis.plateaued),
    )
    return RunDiagnosis(run_id, name, history, diagnosis, finding, reference)


def _config_of(client: MlflowClient, run_id: str) -> TsdlConfig | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception:  # no artifact (or no artifact store): remedies then carry no values
            return None
        try:
            return load_config(path)
        except TsdlError:
            return None


def _trials(client: MlflowClient, run: Any) -> list[Any]:
    return list(client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        max_results=10_000,
    ))


def _best_and_worst(client: MlflowClient, trials: list[Any]) -> list[tuple[str, Any]]:
    scored = []
    for trial in trials:
        values = [m.value for m in client.get_metric_history(trial.info.run_id, "val_loss")]
        finite = [v for v in values if math.isfinite(v)]
        scored.append((min(finite) if finite else math.inf, trial))
    scored.sort(key=lambda pair: pair[0])
    if not any(math.isfinite(score) for score, _ in scored):
        raise TrackingError(
            "no trial of this study logged a finite val_loss",
            hint="diagnose a single trial with `tsdl doctor --run-id <trial run id>`",
        )
    chosen = [("best", scored[0][1])]
    if len(scored) > 1:
        chosen.append(("worst", scored[-1][1]))
    return chosen


def _plots(client: MlflowClient, result: RunDiagnosis, out: Path) -> dict[str, Path]:
    from tsdl.tracking.plots import grad_norm_heatmap_png, learning_curve_png

    out.mkdir(parents=True, exist_ok=True)
    kind = result.diagnosis.kind
    marks = {f"{kind}: {label}": epoch for label, epoch in result.diagnosis.marks.items()}
    if not marks:
        marks = {kind: result.history[-1]["epoch"]}
    paths = {"learning curve": learning_curve_png(result.history, out / "doctor_learning_curve.png", marks=marks)}
    layers = _per_layer_norms(client, result.run_id)
    if layers is not None:
        norms, steps = layers
        paths["grad-norm heatmap"] = grad_norm_heatmap_png(norms, steps, out / "doctor_grad_norms.png")
    return paths


def _per_layer_norms(client: MlflowClient, run_id: str) -> tuple[dict[str, list[float]], list[int]] | None:
    """``grad_norm/<layer>`` step histories (logged with tracking.log_per_layer_grad_norms)."""
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(_GRAD_PREFIX)]
    if not keys:
        return None
    series = {k.removeprefix(_GRAD_PREFIX): {int(m.step): m.value for m in client.get_metric_history(run_id, k)}
              for k in sorted(keys)}
    steps = sorted(set().union(*(s.keys() for s in series.values())))
    return {k: [v.get(step, 0.0) for step in steps] for k, v in series.items()}, steps


def _single(title: str, result: RunDiagnosis) -> DoctorReport:
    return DoctorReport(f"{title}: {result.run_name}", [result.finding])


def _log(client: MlflowClient, uri: str, run: Any, result: RunDiagnosis, files: list[Path]) -> None:
    handle = MlflowRun(client, run_id=run.info.run_id, experiment_id=run.info.experiment_id, tracking_uri=uri)
    handle.log_json(
        {"kind": result.diagnosis.kind, "summary": result.diagnosis.summary,
         "evidence": list(result.diagnosis.evidence), "marks": result.diagnosis.marks,
         "reference_loss": result.reference_loss,
         "remedies": [r.render() for r in result.finding.remedies]},
        "doctor/diagnosis.json",
    )
    for path in files:
        client.log_artifact(run.info.run_id, str(path), "doctor")
    handle.set_tags({"doctor.diagnosis": result.diagnosis.kind})
