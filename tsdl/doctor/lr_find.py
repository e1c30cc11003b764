"""The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017).

The learning rate grows exponentially from ``min_lr`` to ``max_lr`` over a few hundred steps of
the real optimizer (AdamW with the config's weight decay and clipping) on real training batches;
the loss is smoothed with a bias-corrected exponential moving average and the sweep stops once
it exceeds ``diverge_factor`` times its best value.

Suggested lr (the *valley* rule of fastai's ``lr_find``): take the longest stretch over which the
smoothed loss keeps decreasing and pick the point about two thirds of the way down it. It is more
stable than the *steepest descent* point (minimum of d loss / d log10 lr inside the valley, over a
stencil of 5% of the sweep), which is reported too.
The *good range* runs from the lr at which the smoothed loss has fallen by a tenth of its total
drop from its early (median) level (below it, steps barely move the loss) to the lr of its
minimum (beyond it, the loss blows up).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from tsdl.config import TsdlConfig, dump_config
from tsdl.errors import TrainingError
from tsdl.losses import BaseLoss

if TYPE_CHECKING:
    from tsdl.data import Batch, PreparedData

__all__ = ["LRFindResult", "find_lr", "lr_find_png", "lr_range_test", "suggest_lr", "write_config_with_lr"]

_WARMUP_SHARE = 0.1  # the first steps' EMA is dominated by few samples; ignore them for slopes
_RANGE_DROP = 0.1  # the good range starts once the loss has fallen by this share of its total drop


@dataclass(frozen=True, slots=True)
class LRFindResult:
    """The sweep and what it suggests.

    Attributes:
        lrs: ``[S]`` learning rate of each step.
        losses: ``[S]`` raw batch loss of each step.
        smoothed: ``[S]`` bias-corrected EMA of ``losses``.
        suggested_lr: the valley rule's pick.
        steepest_lr: where the smoothed loss falls fastest per decade.
        good_range: ``(low, high)`` learning rates that make progress without blowing up.
        diverged: the sweep stopped early because the loss blew up.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggested_lr: float
    steepest_lr: float
    good_range: tuple[float, float]
    diverged: bool

    def position(self, lr: float) -> Literal["low", "inside", "high"]:
        """Where ``lr`` lies relative to :attr:`good_range`."""
        low, high = self.good_range
        return "low" if lr < low else "high" if lr > high else "inside"


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, float, tuple[float, float]]:
    """The valley and steepest-descent suggestions and the good range of a sweep.

    Args:
        lrs: ``[S]`` increasing learning rates.
        smoothed: ``[S]`` smoothed losses (finite).

    Returns:
        ``(valley_lr, steepest_lr, (low, high))``.
    """
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(smoothed, dtype=np.float64)
    if len(lr) < 5 or len(lr) != len(loss) or not np.isfinite(loss).all():
        raise TrainingError(
            f"the LR range test needs at least 5 finite losses, got {int(np.isfinite(loss).sum())}",
            hint="lower lr_find min_lr or check the first batch with `tsdl doctor -c CONFIG`",
        )
    skip = int(len(lr) * _WARMUP_SHARE)
    start, end = _longest_valley(loss[skip:])
    start, end = start + skip, end + skip
    third = (end - start) / 3
    valley = lr[min(start + int(third) + int(third / 2), len(lr) - 1)]
    steepest = lr[_steepest(loss, lr, start, max(end, start + 1))]
    i_min = int(np.argmin(loss))
    # The starting level is the median of the early sweep, robust to batch-to-batch noise.
    start_level = float(np.median(loss[skip : max(skip + 1, i_min // 4 + 1)]))
    drop = start_level - loss[i_min]
    fallen = np.nonzero(loss[skip : i_min + 1] <= start_level - _RANGE_DROP * drop)[0]
    low = lr[skip + int(fallen[0])] if drop > 0 and len(fallen) else lr[0]
    return float(valley), float(steepest), (float(min(low, valley)), float(lr[i_min]))


def lr_range_test(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    batches: Iterable[Batch],
    *,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_steps: int = 200,
    weight_decay: float = 0.0,
    gradient_clip_val: float | None = None,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFindResult:
    """Sweep the learning rate exponentially and record the loss (the model is trained in place).

    Args:
        model: a freshly initialized forecaster (copy it first to keep its weights).
        loss_fn: the run's loss; ``model`` outputs ``[B, H, loss_fn.n_outputs]``.
        batches: training batches; an iterator is consumed, other iterables are cycled.
        min_lr: first learning rate.
        max_lr: last learning rate (reached only without divergence).
        num_steps: optimizer steps in the sweep.
        weight_decay: AdamW weight decay, as in training.
        gradient_clip_val: global-norm clipping, as in training (None: off).
        beta: EMA factor of the smoothed loss.
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum.

    Returns:
        The sweep and its suggestions.
    """
    if not 0 < min_lr < max_lr:
        raise TrainingError(
            f"lr_find needs 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}",
            hint="e.g. --min-lr 1e-7 --max-lr 1",
        )
    if num_steps < 10:
        raise TrainingError(f"lr_find needs at least 10 steps, got {num_steps}", hint="use --steps 100 or more")
    optimizer = torch.optim.AdamW(model.parameters(), lr=min_lr, weight_decay=weight_decay)
    gamma = (max_lr / min_lr) ** (1.0 / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, diverged = 0.0, math.inf, False
    model.train()
    source = batches if isinstance(batches, Iterator) else itertools.cycle(batches)
    for step in range(num_steps):
        batch = next(source, None)
        if batch is None:
            break
        lr = min_lr * gamma**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch.past, batch.future, batch.static), batch.target)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        loss.backward()
        if gradient_clip_val is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), gradient_clip_val)
        optimizer.step()
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        if step >= 10 and _blew_up(smooth, best, diverge_factor):
            diverged = True
            break
    keep = _until_blowup(smoothed) if diverged else len(smoothed)
    valley, steepest, good = suggest_lr(lrs[:keep], smoothed[:keep])
    return LRFindResult(tuple(lrs), tuple(losses), tuple(smoothed), valley, steepest, good, diverged)


def find_lr(
    config: TsdlConfig,
    *,
    prepared: PreparedData | None = None,
    num_steps: int = 200,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
) -> LRFindResult:
    """The LR range test for ``config`` on one process: real data pipeline, model, loss, optimizer.

    Args:
        config: the experiment config (batch size, weight decay, clipping and seed are used).
        prepared: already prepared data (else :func:`tsdl.data.prepare_data` runs).
        num_steps: optimizer steps in the sweep.
        min_lr: first learning rate.
        max_lr: last learning rate.

    Returns:
        The sweep and its suggestions.
    """
    from tsdl.data import prepare_data
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train import model_dims

    prepared = prepared or prepare_data(config)
    t = config.training
    torch.manual_seed(t.seed)
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **model_dims(prepared), loss=loss_fn)
    return lr_range_test(
        model,
        loss_fn,
        _endless(prepared, config),
        min_lr=min_lr,
        max_lr=max_lr,
        num_steps=num_steps,
        weight_decay=t.optimizer.weight_decay,
        gradient_clip_val=t.gradient_clip_val,
    )


def lr_find_png(result: LRFindResult, path: str | Path, *, configured_lr: float | None = None) -> Path:
    """Loss vs learning rate (log x), the good range shaded and the suggestions marked.

    Args:
        result: the sweep.
        path: where to write the PNG.
        configured_lr: the config's lr, drawn for comparison.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.25, linewidth=1, label="batch loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=2, label="smoothed")
    ax.axvspan(*result.good_range, color="tab:green", alpha=0.12, label="good range")
    ax.axvline(result.suggested_lr, color="tab:green", linestyle="--",
               label=f"suggested (valley) {result.suggested_lr:.2g}")
    ax.axvline(result.steepest_lr, color="tab:orange", linestyle=":",
               label=f"steepest {result.steepest_lr:.2g}")
    if configured_lr is not None:
        ax.axvline(configured_lr, color="tab:red", label=f"configured {configured_lr:.2g}")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite[: max(1, len(finite) // 2)])
        ax.set_ylim(low - 0.1 * abs(high - low), high + 0.5 * abs(high - low) + 1e-12)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test" + (" (stopped: loss diverged)" if result.diverged else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def write_config_with_lr(config: TsdlConfig, lr: float, path: str | Path) -> Path:
    """Write ``config`` (fully resolved) with ``training.optimizer.lr = lr`` to ``path``.

    Args:
        config: the experiment config (the original file is left alone).
        lr: the learning rate to set.
        path: the new YAML file.

    Returns:
        ``path`` as a Path.
    """
    updated = config.model_copy(deep=True)
    updated.training.optimizer.lr = float(f"{lr:.3g}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# written by `tsdl lr-find --apply`: training.optimizer.lr = {lr:.3g}\n"
                   + dump_config(updated))
    return out


def _endless(prepared: PreparedData, config: TsdlConfig) -> Iterator[Batch]:
    """Shuffled training batches, epoch after epoch (a new order each time)."""
    train = prepared.windows("train")
    if len(train) == 0:
        raise TrainingError(
            "the training split has no windows, so the LR range test cannot run",
            hint="lower data.input_chunk_length or data.split fractions",
        )
    for epoch in itertools.count():
        yield from train.batches(config.training.batch_size, shuffle=True, seed=config.training.seed + epoch)


def _longest_valley(loss: np.ndarray) -> tuple[int, int]:
    """Start and end index of the longest strictly decreasing subsequence (fastai's ``valley``)."""
    n = len(loss)
    lds = [1] * n
    best_start, best_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[best_end] < lds[i]:
            best_end = i
            best_start = best_end - lds[best_end]
    return max(best_start, 0), best_end


def _steepest(loss: np.ndarray, lr: np.ndarray, start: int, end: int) -> int:
    """Index of the most negative slope per decade inside the valley, over a 5%-wide stencil."""
    width = max(1, len(loss) // 20)
    x = np.log10(lr)
    best, best_slope = start, math.inf
    for i in range(start, end + 1):
        lo, hi = max(i - width, 0), min(i + width, len(loss) - 1)
        if hi > lo:
            slope = (loss[hi] - loss[lo]) / (x[hi] - x[lo])
            if slope < best_slope:
                best, best_slope = i, slope
    return best


def _blew_up(smooth: float, best: float, factor: float) -> bool:
    """``smooth`` is ``factor`` times above ``best`` (measured by distance for losses <= 0)."""
    return smooth > factor * best if best > 0 else smooth > best + factor * max(abs(best), 1e-12)


def _until_blowup(smoothed: Sequence[float]) -> int:
    """Keep the sweep up to the last point within 2x of the minimum (drop the blow-up tail)."""
    values = np.asarray(smoothed)
    i_min = int(np.argmin(values))
    low = values[i_min]
    limit = 2 * low if low > 0 else low + abs(low)
    tail = np.nonzero(values[i_min:] > limit)[0]
    return i_min + int(tail[0]) if len(tail) else len(values)
