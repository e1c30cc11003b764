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
   ``overfit_patience`` epochs while the training loss kept falling; or the best epoch is the first
   and the training loss fell by ``min_decrease`` since, however little val rose (it overfits from
   the first epoch: N-HiTS at H=720 on ETTh1, docs/benchmarks.md);
5. underfitting: the best validation loss does not beat the reference forecast (a seasonal-naive
   forecast scored with the run's loss) by ``underfit_skill`` and train and val are close;
6. healthy otherwise.

Every threshold is relative (a share of the curve's own level or of the reference), so the rules
do not depend on the loss's units or on a data set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    curves = _Curves.of(history, reference_loss)
    for rule in _EARLY_RULES:
        if (found := rule(curves, t)) is not None:
            return found
    curves = curves.with_summary()
    for rule in _RULES:
        if (found := rule(curves, t)) is not None:
            return found
    return _healthy(curves, t)


@dataclass(frozen=True)
class _Curves:
    """The per-epoch arrays and the summary numbers the rules read."""

    epochs: np.ndarray
    train: np.ndarray
    val: np.ndarray
    present: np.ndarray
    reference: float | None
    has_val: bool
    i_min: int = 0
    first: float = math.nan
    last: float = math.nan
    low: float = math.nan
    v_min: float = math.nan
    skill: float | None = None

    @classmethod
    def of(cls, history: Sequence[Mapping[str, float]], reference: float | None) -> _Curves:
        val = _column(history, "val_loss")
        return cls(
            epochs=np.asarray([float(row.get("epoch", i + 1)) for i, row in enumerate(history)]),
            train=_column(history, "train_loss"),
            val=val,
            present=np.asarray([row.get("train_loss") is not None for row in history], dtype=bool),
            reference=reference,
            has_val=bool(np.isfinite(val).any()),
        )

    def with_summary(self) -> _Curves:
        """Minimum, first and last train loss, best val loss and skill (finite curves only)."""
        i_min = int(np.argmin(self.train))
        v_min = float(np.nanmin(self.val)) if self.has_val else math.nan
        ref = self.reference
        skill = 1.0 - v_min / ref if self.has_val and ref and ref > 0 else None
        return replace(
            self, i_min=i_min, first=float(self.train[0]), last=float(self.train[-1]),
            low=float(self.train[i_min]), v_min=v_min, skill=skill,
        )

    @property
    def decrease(self) -> float:
        return (self.first - self.low) / abs(self.first) if self.first != 0 else 0.0

    @property
    def reference_line(self) -> tuple[str, ...]:
        if self.skill is None:
            return ()
        return (
            f"best val_loss {_f(self.v_min)} vs reference (seasonal naive) {_f(self.reference)}: "
            f"skill {self.skill:+.0%}",
        )

    def lines(self) -> tuple[str, str]:
        return _curve_line("train_loss", self.train, self.epochs), _curve_line("val_loss", self.val, self.epochs)


_Rule = Callable[[_Curves, CurveThresholds], "CurveDiagnosis | None"]


def _nonfinite(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    bad = ~np.isfinite(c.train) | (~np.isfinite(c.val) if c.has_val else np.zeros_like(c.train, bool))
    nonfinite = bad & c.present
    if not nonfinite.any():
        return None
    first = float(c.epochs[np.argmax(nonfinite)])
    return CurveDiagnosis(
        "divergence",
        f"loss became non-finite (NaN/inf) at epoch {_e(first)}",
        (f"last finite train_loss: {_last_finite(c.train[: int(np.argmax(nonfinite))])}",),
        {"non-finite": first},
    )


def _too_short(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    if len(c.train) >= t.min_epochs:
        return None
    return CurveDiagnosis(
        "too_short", f"only {len(c.train)} epoch(s) logged; at least {t.min_epochs} are needed to read a curve"
    )


def _grew(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    if not (c.last > c.low + (t.divergence_factor - 1.0) * abs(c.low) and c.last > c.first):
        return None
    times = c.last / c.low if c.low > 0 else math.inf
    return CurveDiagnosis(
        "divergence",
        f"train_loss grew to {_f(c.last)} at epoch {_e(c.epochs[-1])}, {times:.1f}x "
        f"its minimum {_f(c.low)} (epoch {_e(c.epochs[c.i_min])}) and above its start {_f(c.first)}",
        (),
        {"train min": float(c.epochs[c.i_min])},
    )


def _oscillating(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    for name, curve in (("train_loss", c.train), ("val_loss", c.val)):
        osc = _oscillation(curve, t)
        if osc is not None:
            reversals, moves, step = osc
            return CurveDiagnosis(
                "oscillating",
                f"{name} reversed direction {reversals} times in {moves} epoch-to-epoch moves, "
                f"median step {step:.0%} of its level",
                c.lines(),
            )
    return None


def _not_decreasing(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    beats_reference = c.skill is not None and c.skill >= t.underfit_skill
    if c.decrease >= t.min_decrease or beats_reference:
        return None
    return CurveDiagnosis(
        "not_decreasing",
        f"train_loss fell only {c.decrease:.1%} over {len(c.train)} epochs "
        f"({_f(c.first)} -> best {_f(c.low)}; needs {t.min_decrease:.0%})",
        c.reference_line,
    )


def _blew_up_early(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    ref = c.reference
    if ref is None or ref <= 0 or c.low <= t.divergence_reference * ref:
        return None
    return CurveDiagnosis(
        "divergence",
        f"train_loss never got below {_f(c.low)}, {c.low / ref:.0f}x the loss of a "
        f"seasonal-naive forecast ({_f(ref)}): the weights blew up early",
        c.lines(),
    )


def _overfitting(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    if not c.has_val:
        return None
    k = int(np.nanargmin(c.val))
    after = len(c.val) - 1 - k
    rise = (float(c.val[-1]) - c.v_min) / abs(c.v_min) if c.v_min != 0 else math.inf
    train_fell = float(c.train[-1]) < float(c.train[k])
    # Best at the first epoch and never again while train_loss kept falling: every update after one
    # pass over the data fit the training windows only, however little val_loss rose since.
    from_the_start = k == 0 and train_fell and (c.train[k] - c.train[-1]) / abs(c.train[k]) >= t.min_decrease
    if not (after >= t.overfit_patience and train_fell and (rise >= t.overfit_rise or from_the_start)):
        return None
    head = (f"val_loss was best after the first epoch and never improved again ({_f(c.v_min)} -> {_f(c.val[-1])} "
            f"at epoch {_e(c.epochs[-1])}) while train_loss fell {_f(c.train[k])} -> {_f(c.train[-1])}: "
            f"it overfits from the first epoch" if k == 0 else
            f"val_loss rose {rise:.0%} after its best at epoch {_e(c.epochs[k])} "
            f"({_f(c.v_min)} -> {_f(c.val[-1])}) while train_loss fell {_f(c.train[k])} -> {_f(c.train[-1])}")
    return CurveDiagnosis(
        "overfitting",
        head,
        (_gap_line(c.train, c.val), *c.reference_line),
        {"val rises": float(c.epochs[k])},
        _plateaued(c.train, t.plateau_share),
    )


def _underfitting(c: _Curves, t: CurveThresholds) -> CurveDiagnosis | None:
    if not c.has_val:
        return None
    gap = (c.v_min - c.low) / abs(c.low) if c.low != 0 else math.inf
    if not (c.skill is not None and c.skill < t.underfit_skill and gap <= t.underfit_gap):
        return None
    plateaued = _plateaued(c.train, t.plateau_share)
    state = "both plateaued" if plateaued else "train_loss still falling slowly"
    return CurveDiagnosis(
        "underfitting",
        f"best val_loss {_f(c.v_min)} beats the seasonal-naive reference {_f(c.reference)} "
        f"by only {c.skill:+.0%}; train and val are close ({gap:+.0%}), {state}",
        c.lines(),
        {"best val": float(c.epochs[int(np.nanargmin(c.val))])},
        plateaued,
    )


def _healthy(c: _Curves, t: CurveThresholds) -> CurveDiagnosis:
    evidence = [f"train_loss fell {c.decrease:.0%} ({_f(c.first)} -> {_f(c.low)})"]
    if c.has_val:
        evidence.append(_gap_line(c.train, c.val))
    evidence += c.reference_line
    if c.reference is None:
        evidence.append("no reference loss: underfitting (a too-high plateau) was not judged")
    marks = {"best val": float(c.epochs[int(np.nanargmin(c.val))])} if c.has_val else {}
    return CurveDiagnosis(
        "healthy", "loss decreased steadily; no sign of a problem", tuple(evidence), marks,
        _plateaued(c.train, t.plateau_share),
    )


# The order of the module docstring; the first rule that matches wins. The early rules run on
# the raw curves, the others once the curves are known to be finite and long enough.
_EARLY_RULES: tuple[_Rule, ...] = (_nonfinite, _too_short)
_RULES: tuple[_Rule, ...] = (_grew, _oscillating, _not_decreasing, _blew_up_early, _overfitting, _underfitting)


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
