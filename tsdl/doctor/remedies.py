"""The playbook: for each learning-curve diagnosis, the changes most likely to help, in order.

Remedies name concrete config keys; with the run's config they also carry the current value and
a value to try, so a user can apply one with ``--set key=value``.
"""

from __future__ import annotations

from collections.abc import Callable

from tsdl.config import TsdlConfig
from tsdl.doctor.curves import CurveKind
from tsdl.doctor.findings import Remedy

__all__ = ["remedies_for"]

_MAX_DROPOUT = 0.5


def remedies_for(
    kind: CurveKind, config: TsdlConfig | None = None, *, plateaued: bool = True
) -> tuple[Remedy, ...]:
    """The playbook's steps for ``kind``, most likely to help first.

    Args:
        kind: the diagnosis from :func:`tsdl.doctor.classify_curves`.
        config: the run's config; without it remedies name keys but no values.
        plateaued: for underfitting, whether training had flattened out (else "train longer"
            comes first).

    Returns:
        The remedies (empty for ``healthy``); never one whose value to try is the run's value
        already (more dropout at the cap, grad-norm logging that is on).
    """
    playbook = _PLAYBOOK.get(kind)
    if playbook is None:
        return ()
    return tuple(r for r in playbook(config, plateaued) if not r.changes_nothing)


def _for_divergence(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    """Full precision is a step only for a mixed-precision run (or an unknown config)."""
    remedies = [
        _scale("lower the learning rate 10x", "training.optimizer.lr", c, 0.1),
        _clip(c),
        Remedy("inspect the first batch and the first backward pass for NaN/inf: "
               "`tsdl doctor -c CONFIG`"),
    ]
    if c is None or c.training.precision != "32":
        remedies.append(Remedy("use full precision while debugging", "training.precision",
                               _val(c, lambda c: c.training.precision), '"32"'))
    return tuple(remedies)


def _for_not_decreasing(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    return (
        Remedy("run the LR range test and use its suggestion: `tsdl lr-find -c CONFIG --apply`",
               "training.optimizer.lr", _val(c, lambda c: c.training.optimizer.lr)),
        Remedy("log per-layer gradient norms to find vanishing or disconnected layers",
               "tracking.log_per_layer_grad_norms",
               _val(c, lambda c: c.tracking.log_per_layer_grad_norms), "true"),
        Remedy("inspect a batch and overfit one batch (shapes, scale, wiring): "
               "`tsdl doctor -c CONFIG`"),
    )


def _for_oscillating(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    return (
        _scale("lower the learning rate 3x", "training.optimizer.lr", c, 1 / 3),
        _scale("use a larger batch (less gradient noise)", "training.batch_size", c, 2, integer=True),
        _clip(c),
    )


def _for_overfitting(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    remedies = [
        Remedy("more dropout", "model.dropout", _val(c, lambda c: c.model.dropout),
               None if c is None else f"{min(c.model.dropout + 0.1, _MAX_DROPOUT):.2g}"),
        _scale("more weight decay", "training.optimizer.weight_decay", c, 10.0, floor=1e-4),
    ]
    if c is None or c.model.name != "dlinear":
        remedies.append(_scale("a smaller model", "model.hidden_size", c, 0.5, integer=True))
    horizon = None if c is None else max(1, c.data.output_chunk_length // 4)
    remedies += [
        Remedy("window jitter augmentation (random shift of training window starts)",
               "training.augment.window_jitter",
               _val(c, lambda c: c.training.augment.window_jitter),
               None if horizon is None else str(horizon)),
        Remedy("magnitude-scaling augmentation", "training.augment.magnitude_scaling",
               _val(c, lambda c: c.training.augment.magnitude_scaling), "0.1"),
        _early_stopping(c),
    ]
    return tuple(remedies)


def _for_underfitting(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    """More capacity and context first; "train longer" first when training had not flattened."""
    linear = c is not None and c.model.name == "dlinear"
    capacity = [] if linear else [_scale("more capacity", "model.hidden_size", c, 2, integer=True)]
    if linear:
        capacity.append(Remedy("a model with hidden layers (DLinear is linear)", "model.name", "dlinear", "nhits"))
    longer = _scale("train longer", "training.max_epochs", c, 2, integer=True)
    steps = [
        *capacity,
        _scale("a longer lookback", "data.input_chunk_length", c, 2, integer=True),
        Remedy("add calendar or external covariates", "data.covariates.calendar",
               _val(c, lambda c: c.data.covariates.calendar), "[hour, dayofweek]"),
    ]
    steps = [longer, *steps] if not plateaued else [*steps, longer]
    if c is not None and c.model.dropout > 0:
        steps.append(Remedy("less regularization", "model.dropout", str(c.model.dropout), "0.0"))
    return tuple(steps)


def _for_too_short(c: TsdlConfig | None, plateaued: bool) -> tuple[Remedy, ...]:
    return (_scale("log more epochs before diagnosing", "training.max_epochs", c, 2, integer=True),)


_PLAYBOOK: dict[str, Callable[[TsdlConfig | None, bool], tuple[Remedy, ...]]] = {
    "divergence": _for_divergence,
    "not_decreasing": _for_not_decreasing,
    "oscillating": _for_oscillating,
    "overfitting": _for_overfitting,
    "underfitting": _for_underfitting,
    "too_short": _for_too_short,
}


def _val(config: TsdlConfig | None, get) -> str | None:
    return None if config is None else _text(get(config))


def _text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def _scale(
    action: str,
    key: str,
    config: TsdlConfig | None,
    factor: float,
    *,
    integer: bool = False,
    floor: float = 0.0,
) -> Remedy:
    """``key`` multiplied by ``factor`` (rounded for integers, at least ``floor``)."""
    if config is None:
        return Remedy(action, key)
    obj: object = config
    for part in key.split("."):
        obj = getattr(obj, part)
    value = max(float(obj) * factor, floor)
    new = str(max(1, round(value))) if integer else f"{value:.3g}"
    return Remedy(action, key, _text(obj), new)


def _clip(config: TsdlConfig | None) -> Remedy:
    current = None if config is None else config.training.gradient_clip_val
    suggested = "1.0" if current is None else f"{current / 2:.3g}"
    return Remedy("clip gradients (tighter)", "training.gradient_clip_val",
                  None if config is None else _text(current), None if config is None else suggested)


def _early_stopping(config: TsdlConfig | None) -> Remedy:
    if config is not None and not config.training.early_stopping.enabled:
        return Remedy("stop earlier", "training.early_stopping.enabled", "false", "true")
    return _scale("stop earlier", "training.early_stopping.patience", config, 0.5, integer=True)
