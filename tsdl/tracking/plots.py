"""Run plots as PNG files: learning curve, forecast vs actual, per-layer gradient norms.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, never through pyplot,
so plotting needs no display and touches no global state shared with a user's notebook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["forecast_png", "grad_norm_heatmap_png", "learning_curve_png"]

_MAX_FORECAST_PANELS = 6
_DPI = 110


def learning_curve_png(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    *,
    marks: Mapping[str, float] | None = None,
) -> Path:
    """Train/val loss per epoch (log scale when positive) above the learning rate.

    Args:
        history: one dict per epoch with ``epoch`` (else its index), ``train_loss``,
            ``val_loss`` and ``lr`` (any may be missing).
        path: where to write the PNG.
        marks: label -> epoch, drawn as vertical lines (e.g. ``{"best": 12}``).

    Returns:
        ``path`` as a Path.
    """
    if not history:
        raise ValueError("learning_curve_png needs at least one epoch of history, but got none")
    fig = _figure(8.0, 6.0)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    epochs = [float(row.get("epoch", i)) for i, row in enumerate(history)]
    positive = True
    for key in ("train_loss", "val_loss"):
        xs, ys = _series(epochs, history, key)
        if xs:
            loss_ax.plot(xs, ys, marker="o", markersize=3, label=key)
            positive &= all(y > 0 for y in ys)
    if positive and loss_ax.lines:
        loss_ax.set_yscale("log")
    xs, ys = _series(epochs, history, "lr")
    if xs:
        lr_ax.plot(xs, ys, color="tab:green", label="lr")
        if all(y > 0 for y in ys):
            lr_ax.set_yscale("log")
    for label, epoch in (marks or {}).items():
        for ax in (loss_ax, lr_ax):
            ax.axvline(epoch, color="grey", linestyle="--", linewidth=1)
        loss_ax.annotate(
            label,
            (epoch, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("learning curve")
    lr_ax.set_ylabel("lr")
    lr_ax.set_xlabel("epoch")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # not for marks alone (a run whose only epoch is NaN)
            ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def forecast_png(examples: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Forecast vs actual for a few windows, one panel each (at most 6).

    Args:
        examples: dicts with ``uid`` (panel title), ``past_t`` / ``past_y`` (``[L]`` lookback),
            ``fut_t`` / ``y_true`` / ``y_pred`` (``[H]`` horizon) and optional ``lo`` / ``hi``
            (``[H]`` interval bounds). Times may be numbers or datetimes.
        path: where to write the PNG.

    Returns:
        ``path`` as a Path.
    """
    if not examples:
        raise ValueError("forecast_png needs at least one example window, but got none")
    shown = list(examples)[:_MAX_FORECAST_PANELS]
    fig = _figure(9.0, 2.4 * len(shown))
    axes = np.atleast_1d(fig.subplots(len(shown), 1, squeeze=False)[:, 0])
    for ax, ex in zip(axes, shown, strict=True):
        ax.plot(ex["past_t"], ex["past_y"], color="black", linewidth=1, label="history")
        ax.plot(ex["fut_t"], ex["y_true"], color="black", linestyle=":", label="actual")
        ax.plot(ex["fut_t"], ex["y_pred"], color="tab:blue", label="forecast")
        if ex.get("lo") is not None and ex.get("hi") is not None:
            ax.fill_between(
                ex["fut_t"], ex["lo"], ex["hi"], color="tab:blue", alpha=0.2, label="interval"
            )
        ax.set_title(str(ex.get("uid", "")), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    axes[0].legend(loc="upper left", fontsize=8, ncols=4)
    return _save(fig, path)


def grad_norm_heatmap_png(
    grad_norms: Mapping[str, Sequence[float]], steps: Sequence[int], path: str | Path
) -> Path:
    """log10 gradient norm per layer (rows) and logged step (columns).

    Vanishing layers show as a dark row, exploding ones as a bright band.

    Args:
        grad_norms: layer name -> norms, one per entry of ``steps``.
        steps: ``[S]`` the global steps at which the norms were logged.
        path: where to write the PNG.

    Returns:
        ``path`` as a Path.
    """
    if not grad_norms or not steps:
        raise ValueError("grad_norm_heatmap_png needs at least one layer and one step")
    bad = {k: len(v) for k, v in grad_norms.items() if len(v) != len(steps)}
    if bad:
        raise ValueError(f"every layer needs one norm per step ({len(steps)}), but got {bad}")
    values = np.asarray([list(v) for v in grad_norms.values()], dtype=np.float64)
    with np.errstate(divide="ignore"):
        image = np.log10(np.where(values > 0, values, np.nan))
    fig = _figure(9.0, 1.5 + 0.25 * len(grad_norms))
    ax = fig.subplots()
    mesh = ax.imshow(image, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(range(len(grad_norms)), list(grad_norms), fontsize=7)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("step")
    ax.set_title("per-layer gradient norm (log10; blank = 0 or non-finite)")
    fig.colorbar(mesh, ax=ax)
    return _save(fig, path)


def _series(
    epochs: Sequence[float], history: Sequence[Mapping[str, float]], key: str
) -> tuple[list[float], list[float]]:
    """The finite values of ``key`` and their epochs (a NaN epoch is a gap, not a crash)."""
    pairs = [
        (x, float(row[key]))
        for x, row in zip(epochs, history, strict=True)
        if row.get(key) is not None and math.isfinite(float(row[key]))
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
