"""`tsdl doctor -c CONFIG`: the checks to run before spending compute, in order.

1. the data checklist; 2. the first batch (shapes, dtypes, NaN/inf, value scale, the first
forward and backward pass); 3. overfit one batch; 4. gradient health on the first steps; 5. the
LR range test against the configured lr. Everything runs in this process on the real data
pipeline, model and loss; no Ray is needed. A failed data checklist or first batch stops the
later checks, which would only repeat the same problem.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tsdl.config import TsdlConfig
from tsdl.data import Batch, PreparedData
from tsdl.doctor.findings import DoctorReport, Finding, Remedy
from tsdl.doctor.gradients import gradient_findings, probe_gradients
from tsdl.doctor.lr_find import find_lr, lr_find_png
from tsdl.errors import DataError
from tsdl.losses import BaseLoss, build_loss
from tsdl.models import BaseForecaster, build_model

__all__ = ["ModelFactory", "check_first_batch", "overfit_one_batch", "run_preflight"]

ModelFactory = Callable[[], torch.nn.Module]
"""Builds a freshly initialized model (called once per check that trains one)."""

_SCALE_LIMIT = 10.0  # |mean| or std of a scaled channel beyond this looks unscaled or exploding
_OVERFIT_LRS = (1e-2, 3e-3, 1e-3)


def run_preflight(
    config: TsdlConfig,
    *,
    title: str = "tsdl doctor (pre-flight)",
    prepared: PreparedData | None = None,
    make_model: ModelFactory | None = None,
    out_dir: str | Path | None = None,
    overfit_steps: int = 200,
    probe_steps: int = 10,
    lr_steps: int = 150,
) -> DoctorReport:
    """Run the pre-flight checks and collect their findings.

    Args:
        config: the experiment config.
        title: the report's title.
        prepared: already prepared data (else the data checklist and preparation run here).
        make_model: builds a fresh model (default: ``build_model`` from the config).
        out_dir: where to write the grad-norm heatmap and the LR plot (None: no plots).
        overfit_steps: optimizer steps of the overfit-one-batch check (per tried lr).
        probe_steps: first training steps whose gradients are inspected.
        lr_steps: steps of the LR range test (0 skips it).

    Returns:
        The report; ``report.ok`` is False when a check failed.
    """
    from tsdl.data import prepare_data, run_checklist
    from tsdl.train import model_dims

    report = DoctorReport(title)
    if prepared is None:
        try:
            prepared = prepare_data(config)
        except DataError as exc:
            checklist = run_checklist(config)
            report.add(_checklist_finding(checklist.rows, checklist.summary(), exc.one_line()))
            report.notes.append("stopped after the data checklist: the later checks need valid data")
            return report
    report.add(_checklist_finding(prepared.report.rows, prepared.report.summary(), None))

    loss_fn = build_loss(config.loss)
    if make_model is None:
        dims = model_dims(prepared)

        def make_model() -> BaseForecaster:
            return build_model(config.model, **dims, loss=loss_fn)

    train = prepared.windows("train")
    t = config.training
    torch.manual_seed(t.seed)
    first = train.batch_at(np.arange(min(t.batch_size, len(train))))
    findings = check_first_batch(make_model(), loss_fn, first, feature_names=prepared.feature_names,
                                 scaler=config.data.scaler)
    for finding in findings:
        report.add(finding)
    if any(f.status == "fail" for f in findings):
        report.notes.append("stopped after the first batch: training on this input cannot work")
        return report

    torch.manual_seed(t.seed)
    report.add(overfit_one_batch(make_model, loss_fn, first, steps=overfit_steps))

    torch.manual_seed(t.seed)
    batches = itertools.islice(train.batches(t.batch_size, shuffle=True, seed=t.seed), probe_steps)
    probe = probe_gradients(make_model(), loss_fn, batches, lr=t.optimizer.lr,
                            weight_decay=t.optimizer.weight_decay, gradient_clip_val=t.gradient_clip_val)
    for finding in gradient_findings(probe):
        report.add(finding)
    if out_dir is not None and probe.steps and probe.norms:
        from tsdl.tracking.plots import grad_norm_heatmap_png

        path = grad_norm_heatmap_png(probe.norms, probe.steps, Path(out_dir) / "grad_norms.png")
        report.artifacts["grad-norm heatmap"] = str(path)

    if lr_steps > 0:
        report.add(_lr_finding(config, prepared, lr_steps, out_dir, report))
    return report


def check_first_batch(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    batch: Batch,
    *,
    feature_names: dict[str, list[str]] | None = None,
    scaler: str | None = None,
) -> list[Finding]:
    """Inspect one batch and the first forward/backward pass through ``model``.

    Args:
        model: a freshly built forecaster.
        loss_fn: the run's loss.
        batch: past ``[B, L, F]``, future ``[B, H, F_fut]``, static ``[B, S]``, target ``[B, H]``.
        feature_names: channel names per tensor (``past``/``future``/``static``), for evidence.
        scaler: the configured ``data.scaler`` (named in the scale remedy).

    Returns:
        ``first_batch`` (fail on NaN/inf, bad shapes or a non-finite forward/backward) and
        ``value_scale`` (warn on channels that look unscaled or exploding).
    """
    names = feature_names or {}
    evidence = [
        f"{name} {list(t.shape)} {str(t.dtype).removeprefix('torch.')}"
        for name, t in _tensors(batch).items()
    ]
    problems = _shape_problems(batch) + _nonfinite(batch, names)
    if not problems:
        problems += _forward_backward(model, loss_fn, batch, evidence)
    if problems:
        finding = Finding(
            "first_batch", "fail", problems[0], tuple(problems[1:] + evidence),
            (Remedy("find where the NaN/inf or bad shape enters: data.missing fills gaps, "
                    "data.scaler keeps values finite", "data.missing"),
             Remedy("re-run the data checklist: `tsdl check-data -c CONFIG`")),
        )
    else:
        finding = Finding("first_batch", "pass",
                          "shapes, dtypes, values and the first forward/backward pass are fine",
                          tuple(evidence))
    return [finding, _value_scale(batch, names, scaler)]


def overfit_one_batch(
    make_model: ModelFactory,
    loss_fn: BaseLoss,
    batch: Batch,
    *,
    steps: int = 200,
    lrs: tuple[float, ...] = _OVERFIT_LRS,
    target_drop: float = 0.9,
) -> Finding:
    """The model must drive the loss on one small batch close to zero; if not, wiring is broken.

    Dropout is switched off; Adam tries each lr in ``lrs`` until the loss has fallen by
    ``target_drop`` of its initial magnitude (``final <= initial - target_drop * |initial|``).

    Args:
        make_model: builds a fresh model for every tried lr.
        loss_fn: the run's loss.
        batch: the batch to memorize (at most 32 of its windows are used).
        steps: optimizer steps per tried lr.
        lrs: learning rates to try, in order.
        target_drop: the share of the initial loss that must be gone.

    Returns:
        ``overfit_one_batch``: pass, or fail with the losses reached.
    """
    small = Batch(past=batch.past[:32], future=batch.future[:32], static=batch.static[:32],
                  target=batch.target[:32])
    tried = []
    for lr in lrs:
        model = make_model()
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        initial = final = math.nan
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(small.past, small.future, small.static), small.target)
            value = float(loss.detach())
            initial = value if step == 0 else initial
            final = value
            if not math.isfinite(value):
                break
            loss.backward()
            optimizer.step()
        tried.append(f"lr {lr:g}: {initial:.4g} -> {final:.4g} in {steps} steps")
        if math.isfinite(final) and final <= initial - target_drop * abs(initial):
            return Finding("overfit_one_batch", "pass",
                           f"memorized {len(small)} windows: loss {initial:.4g} -> {final:.4g} "
                           f"(Adam lr {lr:g}, {steps} steps)", tuple(tried))
    return Finding(
        "overfit_one_batch", "fail",
        f"could not drive the loss on {len(small)} windows below {1 - target_drop:.0%} of its start",
        tuple(tried),
        (Remedy("check that forward uses its inputs and the loss compares matching shapes "
                "(the model cannot even memorize one batch)"),
         Remedy("see gradient_flow below for disconnected parameters"),
         Remedy("more capacity if the model is tiny", "model.hidden_size")),
    )


def _checklist_finding(rows, summary: str, error: str | None) -> Finding:
    failed = [r for r in rows if r.status == "fail"]
    warned = [r for r in rows if r.status == "warn"]
    evidence = tuple(f"{r.name}: {r.status} - {r.detail}" for r in (*failed, *warned))
    status = "fail" if failed or error else "warn" if warned else "pass"
    remedies = (Remedy("fix the failed checks: `tsdl check-data -c CONFIG` prints each with its fix"),) \
        if status == "fail" else ()
    return Finding("data_checklist", status, error or summary, evidence, remedies)


def _tensors(batch: Batch) -> dict[str, torch.Tensor]:
    return {"past": batch.past, "future": batch.future, "static": batch.static, "target": batch.target}


def _shape_problems(batch: Batch) -> list[str]:
    b = batch.target.shape[0]
    problems = [f"{name} has dtype {t.dtype}, expected float32"
                for name, t in _tensors(batch).items() if t.dtype != torch.float32]
    if batch.past.dim() != 3 or batch.future.dim() != 3 or batch.static.dim() != 2 or batch.target.dim() != 2:
        problems.append("tensor ranks differ from past [B, L, F], future [B, H, F], static [B, S], target [B, H]")
    elif {batch.past.shape[0], batch.future.shape[0], batch.static.shape[0]} != {b} \
            or batch.future.shape[1] != batch.target.shape[1]:
        problems.append("batch or horizon sizes disagree between past, future, static and target")
    return problems


def _nonfinite(batch: Batch, names: dict[str, list[str]]) -> list[str]:
    problems = []
    for name, t in _tensors(batch).items():
        bad = ~torch.isfinite(t)
        if not bad.any():
            continue
        if name == "target":
            where = f"{int(bad.any(dim=1).sum())} of {t.shape[0]} windows"
        else:
            per_channel = bad.reshape(-1, t.shape[-1]).sum(dim=0)
            labels = names.get(name) or [str(i) for i in range(t.shape[-1])]
            where = ", ".join(f"{labels[i] if i < len(labels) else i} ({int(n)})"
                              for i, n in enumerate(per_channel.tolist()) if n)
        problems.append(f"{int(bad.sum())} NaN/inf value(s) in {name}: {where}")
    return problems


def _forward_backward(model: torch.nn.Module, loss_fn: BaseLoss, batch: Batch, evidence: list[str]) -> list[str]:
    model = copy.deepcopy(model)
    model.train()
    pred = model(batch.past, batch.future, batch.static)
    expected = [*batch.target.shape, loss_fn.n_outputs]
    if list(pred.shape) != expected:
        return [f"model output is {list(pred.shape)}, the loss needs {expected}"]
    if not torch.isfinite(pred).all():
        return [f"first forward pass gave {int((~torch.isfinite(pred)).sum())} non-finite output(s)"]
    loss = loss_fn(pred, batch.target)
    evidence.append(f"first loss {float(loss.detach()):.4g}")
    if not torch.isfinite(loss):
        return [f"first loss is {float(loss.detach())}"]
    loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    return [f"first backward pass gave non-finite gradients in {', '.join(bad)}"] if bad else []


def _value_scale(batch: Batch, names: dict[str, list[str]], scaler: str | None) -> Finding:
    rows, flagged = [], []
    for name, t in (("past", batch.past), ("future", batch.future), ("static", batch.static)):
        if t.numel() == 0:
            continue
        flat = t.reshape(-1, t.shape[-1]).double()
        labels = names.get(name) or [str(i) for i in range(t.shape[-1])]
        for i in range(t.shape[-1]):
            col = flat[:, i][torch.isfinite(flat[:, i])]
            if col.numel() == 0:
                continue
            mean, std = float(col.mean()), float(col.std()) if col.numel() > 1 else 0.0
            label = f"{name}:{labels[i] if i < len(labels) else i}"
            rows.append((label, mean, std))
            if abs(mean) > _SCALE_LIMIT or std > _SCALE_LIMIT:
                flagged.append(f"{label} mean {mean:.3g} std {std:.3g}")
    target = batch.target[torch.isfinite(batch.target)].double()
    if target.numel() > 1:
        rows.append(("target", float(target.mean()), float(target.std())))
        if abs(float(target.mean())) > _SCALE_LIMIT or float(target.std()) > _SCALE_LIMIT:
            flagged.append(f"target mean {float(target.mean()):.3g} std {float(target.std()):.3g}")
    shown = "; ".join(f"{label} {m:+.2f}/{s:.2f}" for label, m, s in rows[:8])
    evidence = (f"mean/std per channel: {shown}" + (f" (+{len(rows) - 8} more)" if len(rows) > 8 else ""),)
    if not flagged:
        return Finding("value_scale", "pass",
                       f"all {len(rows)} channels within |mean|, std <= {_SCALE_LIMIT:g} after scaling", evidence)
    return Finding(
        "value_scale", "warn",
        f"{len(flagged)} channel(s) look unscaled or exploding: {'; '.join(flagged[:3])}",
        evidence,
        (Remedy("scale every channel per series", "data.scaler", scaler, "standard"),),
    )


def _lr_finding(config: TsdlConfig, prepared: PreparedData, steps: int, out_dir, report: DoctorReport) -> Finding:
    result = find_lr(config, prepared=prepared, num_steps=steps)
    lr = config.training.optimizer.lr
    low, high = result.good_range
    if out_dir is not None:
        path = lr_find_png(result, Path(out_dir) / "lr_find.png", configured_lr=lr)
        report.artifacts["LR range test"] = str(path)
    evidence = (f"good range {low:.2g} .. {high:.2g}; suggested (valley) {result.suggested_lr:.2g}, "
                f"steepest {result.steepest_lr:.2g}; {len(result.lrs)} steps"
                + (", stopped at divergence" if result.diverged else ""),)
    where = result.position(lr)
    if where == "inside":
        return Finding("lr_range_test", "pass", f"configured lr {lr:.2g} is inside the good range", evidence)
    fix = Remedy("use the LR range test's suggestion (`tsdl lr-find -c CONFIG --apply`)",
                 "training.optimizer.lr", f"{lr:.3g}", f"{result.suggested_lr:.3g}")
    side = "below" if where == "low" else "above"
    return Finding("lr_range_test", "warn" if where == "low" else "fail",
                   f"configured lr {lr:.2g} is {side} the good range {low:.2g} .. {high:.2g}",
                   evidence, (fix,))
