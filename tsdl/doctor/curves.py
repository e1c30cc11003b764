"""Post-mortem diagnosis of learning curves: a pure function of per-epoch train/val losses.

The rules follow the usual debugging playbook (Karpathy's "recipe for training neural nets",
Google's deep-learning tuning playbook) and are checked in this order, the first match wins:

1. divergence: a non-finite loss, or a training loss that ends far above its minimum and above
   where it started (the optimizer made the model worse);
2. oscillating: the training or validation loss keeps reversing direction by large steps;
3. not decreasing: the training loss fell by less than ``min_decrease`` of its first value and
   the model does not beat the reference forecast (if one is given);
   divergence again when even the best training loss is ``divergence_reference`` times the
   reference loss (the weights blew up in the first epoch and never recovered);
4. overfitting: validation loss rose by ``overfit_rise`` above its best epoch ``k`` for at least
   ``overfit_patience`` epochs while the training loss kept falling;
5. underfitting: the best validation loss does not beat the reference forecast (a seasonal-naive
   forecast scored with the run's loss) by ``underfit_skill`` and train and val are close;
6. healthy otherwise.

Every threshold is relative (a share of the curve's own level or of the reference), so the rules
do not depend on the loss's units or on a data set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["CurveDiagnosis", "CurveKind", "CurveThresholds", "classify_curves"]

CurveKind = Literal[
    "healthy",
    "not_decreasing",
    "oscillating",
    "overfitting",
    "underfitting",
    "divergence",
    "too_short",
]


@dataclass(frozen=True, slots=True)
class CurveThresholds:
    """The knobs of :func:`classify_curves`; all shares are relative to the curve's own level."""

    min_epochs: int = 3
    """Fewer finite epochs than this cannot be classified (too_short)."""
    min_decrease: float = 0.05
    """not decreasing: the training loss fell by less than this share of its first value."""
    divergence_factor: float = 1.5
    """divergence: the last training loss is above this multiple of its minimum (and its start)."""
    divergence_reference: float = 10.0
    """divergence: even the best training loss is this multiple of the reference loss."""
    oscillation_step: float = 0.05
    """oscillating: a move counts when it is at least this share of the curve's median level ..."""
    oscillation_reversals: float = 0.4
    """... and at least this share of consecutive counted moves reverse direction (at least 2)."""
    overfit_rise: float = 0.05
    """overfitting: the last val loss is this share above the best val loss ..."""
    overfit_patience: int = 2
    """... at least this many epochs after the best one, while the training loss still fell."""
    underfit_skill: float = 0.1
    """underfitting: the best val loss beats the reference loss by less than this share ..."""
    underfit_gap: float = 0.25
    """... and is at most this share above the best training loss (no generalization gap)."""
    plateau_share: float = 0.02
    """A curve plateaus when its last third improved by less than this share."""


@dataclass(frozen=True, slots=True)
class CurveDiagnosis:
    """What the curves say, with the numbers behind it.

    Attributes:
        kind: the diagnosis.
        summary: one line with the key evidence.
        evidence: further lines of numbers.
        marks: label -> epoch, for drawing on the learning-curve plot.
        plateaued: whether the training loss flattened out over the last third of the run.
    """

    kind: CurveKind
    summary: str
    evidence: tuple[str, ...] = ()
    marks: dict[str, float] = field(default_factory=dict)
    plateaued: bool = False


def classify_curves(
    history: Sequence[Mapping[str, float]],
    *,
    reference_loss: float | None = None,
    thresholds: CurveThresholds | None = None,
) -> CurveDiagnosis:
    """Classify one run's learning curves.

    Args:
        history: one mapping per epoch with ``train_loss`` and ``val_loss`` (``epoch`` optional,
            else 1, 2, ...); a missing or non-finite value is kept as NaN.
        reference_loss: the validation loss of a trivial forecast (seasonal naive) in the same
            units; without it, "high" cannot be judged and underfitting is not diagnosed.
        thresholds: the rules' knobs (defaults: :class:`CurveThresholds`).

    Returns:
        The first matching :class:`CurveDiagnosis` in the order of the module docstring.
    """
    t = thresholds or CurveThresholds()
    epochs = np.asarray([float(row.get("epoch", i + 1)) for i, row in enumerate(history)])
    train = _column(history, "train_loss")
    val = _column(history, "val_loss")
    has_val = bool(np.isfinite(val).any())

    bad = ~np.isfinite(train) | (~np.isfinite(val) if has_val else np.zeros_like(train, bool))
    present = np.asarray([row.get("train_loss") is not None for row in history])
    nonfinite = bad & present
    if nonfinite.any():
        first = float(epochs[np.argmax(nonfinite)])
        return CurveDiagnosis(
            "divergence",
            f"loss became non-finite (NaN/inf) at epoch {_e(first)}",
            (f"last finite train_loss: {_last_finite(train[: int(np.argmax(nonfinite))])}",),
            {"non-finite": first},
        )
    if len(train) < t.min_epochs:
        return CurveDiagnosis(
            "too_short",
            f"only {len(train)} epoch(s) logged; at least {t.min_epochs} are needed to read a curve",
        )

    i_min = int(np.argmin(train))
    first, last, low = float(train[0]), float(train[-1]), float(train[i_min])
    if last > low + (t.divergence_factor - 1.0) * abs(low) and last > first:
        return CurveDiagnosis(
            "divergence",
            f"train_loss grew to {_f(last)} at epoch {_e(epochs[-1])}, {last / low if low > 0 else math.inf:.1f}x "
            f"its minimum {_f(low)} (epoch {_e(epochs[i_min])}) and above its start {_f(first)}",
            (),
            {"train min": float(epochs[i_min])},
        )

    for name, curve in (("train_loss", train), ("val_loss", val)):
        osc = _oscillation(curve, t)
        if osc is not None:
            reversals, moves, step = osc
            return CurveDiagnosis(
                "oscillating",
                f"{name} reversed direction {reversals} times in {moves} epoch-to-epoch moves, "
                f"median step {step:.0%} of its level",
                (_curve_line("train_loss", train, epochs), _curve_line("val_loss", val, epochs)),
            )

    decrease = (first - low) / abs(first) if first != 0 else 0.0
    v_min = float(np.nanmin(val)) if has_val else math.nan
    skill = 1.0 - v_min / reference_loss if has_val and reference_loss and reference_loss > 0 else None
    ref_line = () if skill is None else (
        f"best val_loss {_f(v_min)} vs reference (seasonal naive) {_f(reference_loss)}: skill {skill:+.0%}",
    )
    beats_reference = skill is not None and skill >= t.underfit_skill
    if decrease < t.min_decrease and not beats_reference:
        return CurveDiagnosis(
            "not_decreasing",
            f"train_loss fell only {decrease:.1%} over {len(train)} epochs "
            f"({_f(first)} -> best {_f(low)}; needs {t.min_decrease:.0%})",
            ref_line,
        )

    if reference_loss is not None and reference_loss > 0 and low > t.divergence_reference * reference_loss:
        return CurveDiagnosis(
            "divergence",
            f"train_loss never got below {_f(low)}, {low / reference_loss:.0f}x the loss of a "
            f"seasonal-naive forecast ({_f(reference_loss)}): the weights blew up early",
            (_curve_line("train_loss", train, epochs), _curve_line("val_loss", val, epochs)),
        )

    plateaued = _plateaued(train, t.plateau_share)
    if has_val:
        k = int(np.nanargmin(val))
        after = len(val) - 1 - k
        rise = (float(val[-1]) - v_min) / abs(v_min) if v_min != 0 else math.inf
        if after >= t.overfit_patience and rise >= t.overfit_rise and float(train[-1]) < float(train[k]):
            return CurveDiagnosis(
                "overfitting",
                f"val_loss rose {rise:.0%} after its best at epoch {_e(epochs[k])} "
                f"({_f(v_min)} -> {_f(val[-1])}) while train_loss fell {_f(train[k])} -> {_f(train[-1])}",
                (_gap_line(train, val),),
                {"val rises": float(epochs[k])},
                plateaued,
            )
        gap = (v_min - low) / abs(low) if low != 0 else math.inf
        if skill is not None and skill < t.underfit_skill and gap <= t.underfit_gap:
            state = "both plateaued" if plateaued else "train_loss still falling slowly"
            return CurveDiagnosis(
                "underfitting",
                f"best val_loss {_f(v_min)} beats the seasonal-naive reference {_f(reference_loss)} "
                f"by only {skill:+.0%}; train and val are close ({gap:+.0%}), {state}",
                (_curve_line("train_loss", train, epochs), _curve_line("val_loss", val, epochs)),
                {"best val": float(epochs[k])},
                plateaued,
            )
    evidence = [f"train_loss fell {decrease:.0%} ({_f(first)} -> {_f(low)})"]
    if has_val:
        evidence.append(_gap_line(train, val))
    evidence += ref_line
    if reference_loss is None:
        evidence.append("no reference loss: underfitting (a too-high plateau) was not judged")
    marks = {"best val": float(epochs[int(np.nanargmin(val))])} if has_val else {}
    return CurveDiagnosis("healthy", "loss decreased steadily; no sign of a problem",
                          tuple(evidence), marks, plateaued)


def _column(history: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    values = [row.get(key) for row in history]
    return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _oscillation(curve: np.ndarray, t: CurveThresholds) -> tuple[int, int, float] | None:
    """``(reversals, moves, median step share)`` when ``curve`` zig-zags by large steps."""
    x = curve[np.isfinite(curve)]
    if len(x) < 4:
        return None
    level = float(np.median(np.abs(x)))
    if level == 0:
        return None
    steps = np.diff(x)
    big = steps[np.abs(steps) >= t.oscillation_step * level]
    if len(big) < 3:
        return None
    reversals = int(np.sum(np.sign(big[1:]) != np.sign(big[:-1])))
    if reversals >= max(2, t.oscillation_reversals * (len(steps) - 1)):
        return reversals, len(steps), float(np.median(np.abs(big)) / level)
    return None


def _plateaued(curve: np.ndarray, share: float) -> bool:
    """The last third (at least two epochs) improved by less than ``share`` of its start."""
    tail = curve[-max(2, len(curve) // 3) :]
    start = float(tail[0])
    return start == 0 or (start - float(np.min(tail))) / abs(start) < share


def _gap_line(train: np.ndarray, val: np.ndarray) -> str:
    gap = (float(np.nanmin(val)) - float(np.min(train))) / abs(float(np.min(train)) or 1.0)
    return f"best val_loss {_f(np.nanmin(val))} vs best train_loss {_f(np.min(train))} ({gap:+.0%})"


def _curve_line(name: str, curve: np.ndarray, epochs: np.ndarray) -> str:
    if not np.isfinite(curve).any():
        return f"{name}: not logged"
    shown = ", ".join(f"{_e(e)}: {_f(v)}" for e, v in zip(epochs, curve, strict=True)
                      if math.isfinite(v))
    return f"{name} by epoch: {shown}" if len(curve) <= 12 else (
        f"{name}: first {_f(curve[0])}, min {_f(np.nanmin(curve))}, last {_f(curve[-1])}"
    )


def _last_finite(curve: np.ndarray) -> str:
    finite = curve[np.isfinite(curve)]
    return _f(finite[-1]) if len(finite) else "none"


def _f(value: float) -> str:
    return f"{float(value):.4g}"


def _e(epoch: float) -> str:
    return str(int(epoch)) if float(epoch).is_integer() else f"{epoch:g}"
