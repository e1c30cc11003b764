"""From Tune's results to a study's answer: leaderboard, best vs reference, ASHA savings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tsdl.config import TsdlConfig
from tsdl.tune.space import same_point

if TYPE_CHECKING:
    import pandas as pd
    from ray.tune import ResultGrid

__all__ = ["AshaStats", "StudyResult", "TrialRecord", "leaderboard", "render_leaderboard", "trial_records"]


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial.

    ``stopped_at`` is the ASHA rung (epoch) at which the trial was cut, None when it ran to the
    end or stopped early by itself (``early_stopped``).
    """

    trial_id: str
    stage: str
    params: dict[str, Any]
    val_loss: float
    epochs: int
    stopped_at: int | None
    status: str
    reference: bool
    history: list[dict[str, float]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class AshaStats:
    """Epochs the study ran vs. a search that trains every trial to the full budget."""

    epochs_run: int
    full_budget_epochs: int
    stopped_trials: int

    @property
    def efficiency(self) -> float:
        """Share of the full budget actually used (lower is a bigger saving)."""
        return self.epochs_run / self.full_budget_epochs if self.full_budget_epochs else math.nan


@dataclass
class StudyResult:
    """What ``run_study`` returns."""

    name: str
    path: str
    leaderboard: pd.DataFrame
    best_config: TsdlConfig
    best_val_loss: float
    reference_val_loss: float
    asha: AshaStats
    frozen: dict[str, str]
    records: list[TrialRecord] = field(repr=False, default_factory=list)
    mlflow_run_id: str | None = None
    final_fit: Any = None


def trial_records(
    grid: ResultGrid, *, stage: str, max_epochs: int, reference: Mapping[str, Any] | None = None
) -> list[TrialRecord]:
    """Read Tune's ``ResultGrid`` of one stage.

    The trial whose params equal ``reference`` (the point evaluated first) is the reference.

    Errored trials without a reported epoch are kept (status ``error``, val_loss NaN) so the
    leaderboard shows them instead of dropping them silently.
    """
    records: list[TrialRecord] = []
    for result in grid:
        frame = result.metrics_dataframe
        rows = [] if frame is None or "val_loss" not in frame else frame.to_dict("records")
        history = [
            {k: float(v) for k, v in row.items() if k in _CURVE_KEYS and _is_number(v)} for row in rows
        ]
        losses = [h["val_loss"] for h in history if "val_loss" in h and math.isfinite(h["val_loss"])]
        epochs = int(max((h.get("epoch", 0) for h in history), default=0))
        early = bool(rows and rows[-1].get("early_stopped"))
        if result.error is not None or not losses:
            status, stopped = "error", None
        elif epochs >= max_epochs:
            status, stopped = "completed", None
        elif early:
            status, stopped = "early-stopped", None
        else:
            status, stopped = "asha-stopped", epochs
        records.append(
            TrialRecord(
                trial_id=_trial_id(result),
                stage=stage,
                params=dict(result.config or {}),
                val_loss=min(losses) if losses else math.nan,
                epochs=epochs,
                stopped_at=stopped,
                status=status,
                reference=reference is not None
                and not any(r.reference for r in records)
                and same_point(result.config or {}, reference),
                history=history,
            )
        )
    return records


def leaderboard(records: list[TrialRecord]) -> pd.DataFrame:
    """All trials, best val_loss first (errored ones last): trial, stage, params, outcome."""
    import pandas as pd

    rows = []
    for r in records:
        row: dict[str, Any] = {"trial": r.trial_id, "stage": r.stage, "reference": r.reference}
        row.update(r.params)
        row.update(
            {"val_loss": r.val_loss, "epochs": r.epochs, "stopped_at_rung": r.stopped_at, "status": r.status}
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values("val_loss", na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def render_leaderboard(frame: pd.DataFrame, *, top: int = 10) -> str:
    """The terminal table: top ``top`` trials, the reference marked with ``*``."""
    if frame.empty:
        return "(no trials)"
    shown = frame.head(top).copy()
    reference = frame[frame["reference"]]
    if not reference.empty and not shown["reference"].any():
        import pandas as pd

        shown = pd.concat([shown, reference])  # the reference row is always shown
    marks = zip(shown["trial"], shown["reference"], strict=True)
    shown["trial"] = [f"{t}{' *' if ref else ''}" for t, ref in marks]
    shown["stopped_at_rung"] = [("-" if _missing(v) else str(int(v))) for v in shown["stopped_at_rung"]]
    columns = [c for c in shown.columns if c not in ("reference",)]
    text = shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return text + "\n(* = reference trial: the config's own values, trial 0)"


_CURVE_KEYS = (
    "epoch", "train_loss", "val_loss", "best_val_loss", "lr", "grad_norm", "epoch_time_s", "val_time_s"
)


def _trial_id(result: Any) -> str:
    metrics = result.metrics or {}
    if metrics.get("trial_id"):
        return str(metrics["trial_id"])
    return str(result.path).rstrip("/").rsplit("/", 1)[-1]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
