"""Gradient health on the first optimizer steps: per-layer norms, missing gradients, dead ReLUs.

A parameter that never receives a gradient is disconnected from the loss (a detached tensor, a
branch unused in ``forward``); a layer whose gradient norm is tiny learns nothing (vanishing);
one whose norm is huge or non-finite destabilizes training (exploding); a ReLU whose units are
zero for every input of several batches passes no gradient at all (dead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from tsdl.data import Batch
from tsdl.doctor.findings import Finding, Remedy
from tsdl.losses import BaseLoss

__all__ = ["GradientProbe", "gradient_findings", "probe_gradients"]


@dataclass(slots=True)
class GradientProbe:
    """Per-parameter gradient norms over the probed steps.

    Attributes:
        steps: ``[S]`` step numbers (1-based).
        norms: parameter name -> ``[S]`` gradient norms (0.0 where the gradient was None).
        no_grad: parameters whose gradient was None or exactly zero on every step.
        dead_relu: ReLU module name -> share of its units that were never positive.
    """

    steps: list[int] = field(default_factory=list)
    norms: dict[str, list[float]] = field(default_factory=dict)
    no_grad: list[str] = field(default_factory=list)
    dead_relu: dict[str, float] = field(default_factory=dict)


def probe_gradients(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    batches: Iterable[Batch],
    *,
    lr: float,
    weight_decay: float = 0.0,
    gradient_clip_val: float | None = None,
) -> GradientProbe:
    """Train ``model`` on ``batches`` (one step each) and record gradient norms before clipping.

    Args:
        model: a freshly initialized forecaster (trained in place).
        loss_fn: the run's loss.
        batches: the first training batches, one optimizer step each.
        lr: AdamW learning rate (the config's).
        weight_decay: AdamW weight decay.
        gradient_clip_val: clipping applied after the norms are recorded, as in training.

    Returns:
        The per-step norms, parameters without gradient and dead-ReLU shares.
    """
    probe = GradientProbe()
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    probe.norms = {name: [] for name in params}
    alive: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(_alive_recorder(name, alive))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ReLU)
    ]
    optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=weight_decay)
    model.train()
    try:
        for step, batch in enumerate(batches, start=1):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch.past, batch.future, batch.static), batch.target)
            loss.backward()
            for name, p in params.items():
                probe.norms[name].append(0.0 if p.grad is None else float(p.grad.detach().norm()))
            if gradient_clip_val is not None:
                torch.nn.utils.clip_grad_norm_(params.values(), gradient_clip_val)
            optimizer.step()
            probe.steps.append(step)
    finally:
        for handle in handles:
            handle.remove()
    probe.no_grad = [name for name, norms in probe.norms.items() if norms and not any(norms)]
    probe.dead_relu = {name: 1.0 - float(mask.float().mean()) for name, mask in alive.items()}
    return probe


def gradient_findings(
    probe: GradientProbe,
    *,
    vanishing: float = 1e-7,
    exploding: float = 1e3,
    dead_share: float = 0.5,
) -> list[Finding]:
    """Verdicts on a probe: gradient flow, gradient scale and (when the model has ReLUs) dead units.

    Args:
        probe: the recorded norms.
        vanishing: a layer whose median norm is below this (but not zero) is vanishing.
        exploding: a layer whose largest norm is above this, or non-finite, is exploding.
        dead_share: a ReLU with more than this share of never-active units is flagged.

    Returns:
        ``gradient_flow``, ``gradient_scale`` and, with ReLUs, ``dead_relu`` findings.
    """
    findings = [_flow(probe), _scale(probe, vanishing, exploding)]
    if probe.dead_relu:
        worst = max(probe.dead_relu, key=probe.dead_relu.__getitem__)
        share = probe.dead_relu[worst]
        shares = ", ".join(f"{k}: {v:.0%}" for k, v in probe.dead_relu.items())
        findings.append(
            Finding("dead_relu", "warn" if share > dead_share else "pass",
                    f"largest share of never-active ReLU units: {share:.0%} ({worst})",
                    (f"per ReLU over {len(probe.steps)} batches: {shares}",),
                    (Remedy("lower the learning rate", "training.optimizer.lr"),) if share > dead_share else ())
        )
    return findings


def _flow(probe: GradientProbe) -> Finding:
    nonfinite = [n for n, v in probe.norms.items() if not all(math.isfinite(x) for x in v)]
    if probe.no_grad or nonfinite:
        evidence = []
        if probe.no_grad:
            evidence.append(f"no gradient on any of {len(probe.steps)} steps: {', '.join(probe.no_grad)} "
                            "(detached from the loss, or unused in forward)")
        if nonfinite:
            evidence.append(f"non-finite gradient: {', '.join(nonfinite)}")
        return Finding(
            "gradient_flow", "fail",
            f"{len(probe.no_grad)} parameter(s) get no gradient, {len(nonfinite)} a non-finite one",
            tuple(evidence),
            (Remedy("find the .detach()/no_grad/unused branch between these parameters and the "
                    "output in the model's forward"),
             Remedy("check the first batch for NaN/inf (see first_batch above)")),
        )
    return Finding("gradient_flow", "pass",
                   f"all {len(probe.norms)} parameters get finite, non-zero gradients "
                   f"on {len(probe.steps)} steps")


def _scale(probe: GradientProbe, vanishing: float, exploding: float) -> Finding:
    finite = {n: np.asarray(v) for n, v in probe.norms.items() if n not in probe.no_grad}
    medians = {n: float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else math.inf
               for n, v in finite.items()}
    small = [n for n, m in medians.items() if 0 < m < vanishing]
    large = [n for n, v in finite.items() if not np.isfinite(v).all() or float(np.max(v)) > exploding]
    ranked = sorted(medians.items(), key=lambda kv: kv[1])
    evidence = [f"median norm per layer, smallest {ranked[0][0]}: {ranked[0][1]:.2e}, "
                f"largest {ranked[-1][0]}: {ranked[-1][1]:.2e}"] if ranked else []
    if small:
        evidence.append(f"vanishing (< {vanishing:g}): {', '.join(small)}")
    if large:
        evidence.append(f"exploding (> {exploding:g} or non-finite): {', '.join(large)}")
    if not small and not large:
        return Finding("gradient_scale", "pass",
                       f"no vanishing (< {vanishing:g}) or exploding (> {exploding:g}) layer",
                       tuple(evidence))
    remedies = [Remedy("clip gradients", "training.gradient_clip_val", None, "1.0")] if large else []
    remedies.append(Remedy("rescale inputs and targets (see value_scale)", "data.scaler", None, "standard"))
    if small:
        remedies.append(Remedy("a shallower model or fewer layers", "model.n_layers"))
    return Finding("gradient_scale", "warn",
                   f"{len(small)} vanishing and {len(large)} exploding layer(s)",
                   tuple(evidence), tuple(remedies))


def _alive_recorder(name: str, alive: dict[str, torch.Tensor]):
    """A forward hook that ORs "this unit was positive for some input" into ``alive[name]``."""

    def hook(module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        positive = (output.detach() > 0).reshape(output.shape[0], -1).any(dim=0)
        alive[name] = positive if name not in alive else alive[name] | positive

    return hook
