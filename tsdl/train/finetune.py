"""Fine-tuning on the training path: load a parent's weights, freeze by pattern, per-part lrs, warm-up.

`apply_finetune` runs on every worker right after the model is built (before DDP wraps it) and
returns a `FinetunePlan` whose hooks the loop calls: `param_groups` for the optimizer,
`start_epoch` for the unfreeze schedule and `before_step` between backward and the optimizer step.
With the default (empty) `finetune` section the plan is a no-op: one parameter group, nothing frozen.

Freezing drops the gradients of frozen parameters after backward instead of setting
``requires_grad=False``: DDP fixes the set of parameters it synchronizes when it wraps the model,
so parameters unfrozen later would never be all-reduced. With ``grad=None`` AdamW skips them
entirely (no update, no weight decay), on one worker or many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch

from tsdl.config import TsdlConfig
from tsdl.errors import ConfigError
from tsdl.train.pretrained import (
    ParentCheckpoint,
    WeightLoad,
    check_architecture,
    load_weights,
    prepare_finetune_data,
    resolve_init_from,
)

__all__ = [
    "DEFAULT_HEADS",
    "FinetunePlan",
    "FinetuneSetup",
    "apply_finetune",
    "check_finetune",
    "head_patterns",
    "lineage",
    "lineage_tags",
    "match",
]

DEFAULT_HEADS: dict[str, tuple[str, ...]] = {
    "dlinear": ("seasonal", "trend", "covariates"),
    "nhits": ("blocks.*.forecast",),
    "patchtst": ("head", "covariates"),
    "rnn": ("decoder",),
}
"""The output layers of each architecture (DLinear is all head: two linear maps over the lookback)."""

_HEAD, _BACKBONE = "head", "backbone"
_MAX_TAG_CHARS = 5000  # MLflow's tag value limit


@dataclass
class _Group:
    name: str
    part: str
    params: list[str]
    lr: float
    first_epoch: int | None
    """The epoch whose first step is this group's first optimizer step (warm-up restarts there)."""


@dataclass
class FinetunePlan:
    """Which parameters are head, frozen and in which optimizer group; the loop's per-step hooks.

    Attributes:
        head: parameter names of the head.
        frozen: parameter names frozen until `unfreeze_epoch` (or for the whole run).
        unfreeze_epoch: first epoch in which `frozen` trains too; None: never.
        warmup_steps: linear warm-up length, per group from its first step.
        load: what the parent weight load did (None when training from scratch).
    """

    head: list[str]
    frozen: list[str]
    unfreeze_epoch: int | None
    warmup_steps: int
    load: WeightLoad | None = None
    _groups: list[_Group] = field(default_factory=list, repr=False)
    _frozen_now: set[str] = field(default_factory=set, repr=False)
    _step: int = field(default=0, repr=False)
    _steps_per_epoch: int = field(default=1, repr=False)

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """AdamW parameter groups ``{"params", "lr", "name"}``: head first, then backbone."""
        params = dict(_unwrap(model).named_parameters())
        return [
            {"params": [params[n] for n in g.params], "lr": g.lr, "name": g.name}
            for g in self._groups
        ]

    def frozen_at(self, epoch: int) -> set[str]:
        """Parameter names that do not train in `epoch` (1-based)."""
        if self.unfreeze_epoch is not None and epoch >= self.unfreeze_epoch:
            return set()
        return set(self.frozen)

    def start_epoch(self, epoch: int, steps_per_epoch: int) -> None:
        """Apply the unfreeze schedule; every epoch runs exactly `steps_per_epoch` steps."""
        self._frozen_now = self.frozen_at(epoch)
        self._steps_per_epoch = steps_per_epoch
        self._step = (epoch - 1) * steps_per_epoch

    def before_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Between backward and ``optimizer.step``: drop frozen gradients, advance the warm-up."""
        self._step += 1
        if self._frozen_now:
            for name, param in _unwrap(model).named_parameters():
                if name in self._frozen_now:
                    param.grad = None
        if self.warmup_steps:
            for group, spec in zip(optimizer.param_groups, self._groups, strict=True):
                if spec.first_epoch is not None:
                    k = self._step - (spec.first_epoch - 1) * self._steps_per_epoch
                    group["lr"] *= _warmup_ratio(k, self.warmup_steps)

    def summary(self) -> dict[str, Any]:
        """Plain JSON for the lineage record: frozen modules, groups, what was loaded."""
        out: dict[str, Any] = {
            "frozen_modules": modules_of(self.frozen),
            "unfreeze_epoch": self.unfreeze_epoch,
            "head_modules": modules_of(self.head),
            "param_groups": {
                g.name: {"lr": g.lr, "n_tensors": len(g.params)} for g in self._groups
            },
            "warmup_steps": self.warmup_steps,
        }
        if self.load is not None:
            out |= {
                "loaded": len(self.load.loaded),
                "reset": modules_of(self.load.reset),
                "skipped": dict(self.load.skipped),
            }
        return out


def apply_finetune(
    model: torch.nn.Module, config: TsdlConfig, init_state: dict[str, torch.Tensor] | None = None
) -> FinetunePlan:
    """Load the parent weights into `model` (in place) and plan freezing, lrs and warm-up.

    Call it on the unwrapped model, before `ray.train.torch.prepare_model`, so DDP broadcasts the
    loaded weights. Every rank computes the same plan from the same config.

    Args:
        model: the freshly built forecaster.
        config: the run's config (`finetune` and `training.optimizer.lr` are read).
        init_state: the parent's state dict, or None to train from the fresh init.

    Raises:
        ConfigError: a pattern matches no parameter, or the parent's weights do not fit.
    """
    ft, base_lr = config.finetune, config.training.optimizer.lr
    names = [n for n, _ in _unwrap(model).named_parameters()]
    head_list = head_patterns(config)
    if ft.head is not None:
        head = match(names, head_list, field="finetune.head")
    else:  # architecture defaults may name optional modules (covariates) this model lacks
        head = [n for n in names if _matches_any(n, head_list)]
    if not head and (ft.head_lr is not None or ft.reset_head):
        raise ConfigError(
            f"finetune.head_lr / reset_head need the head's parameters, and model {config.model.name!r} "
            "has no default head",
            hint="list them in finetune.head (parameter-name globs or module prefixes)",
        )
    frozen = _expand(names, ft.freeze, head)
    if frozen and len(frozen) == len(names) and ft.unfreeze_epoch is None:
        raise ConfigError(
            f"finetune.freeze {ft.freeze} freezes every parameter and unfreeze_epoch is null: nothing would train",
            hint="freeze only part of the model (e.g. [backbone]) or set finetune.unfreeze_epoch",
        )
    load = None
    if init_state is not None:
        reset = [
            n for n in _unwrap(model).state_dict() if ft.reset_head and _matches_any(n, head_list)
        ]
        load = load_weights(
            _unwrap(model),
            init_state,
            strict=ft.strict,
            reset=reset,
            parent=f"finetune.init_from {ft.init_from!r}",
        )
    lrs = {_HEAD: ft.head_lr or base_lr, _BACKBONE: ft.backbone_lr or base_lr}
    head_set, frozen_set = set(head), set(frozen)
    groups = []
    for part in (_HEAD, _BACKBONE):
        for is_frozen in (False, True):
            members = [
                n
                for n in names
                if (n in head_set) == (part == _HEAD) and (n in frozen_set) == is_frozen
            ]
            if members:
                first = ft.unfreeze_epoch if is_frozen else 1
                groups.append(
                    _Group(f"{part}_frozen" if is_frozen else part, part, members, lrs[part], first)
                )
    return FinetunePlan(
        head=head,
        frozen=frozen,
        unfreeze_epoch=ft.unfreeze_epoch,
        warmup_steps=ft.warmup_steps,
        load=load,
        _groups=groups,
    )


def check_finetune(
    config: TsdlConfig, dims: dict[str, int], parent: ParentCheckpoint | None
) -> FinetunePlan:
    """Dry-run `apply_finetune` on the driver, so bad patterns or shapes fail before Ray starts.

    Args:
        config: the child run's config.
        dims: `model_dims` of the child's data.
        parent: the resolved parent, or None.

    Returns:
        The plan every worker will compute (for logging and lineage).
    """
    from tsdl.losses import build_loss
    from tsdl.models import build_model

    if parent is not None:
        check_architecture(config, parent)
    model = build_model(config.model, **dims, loss=build_loss(config.loss))
    return apply_finetune(model, config, parent.weights if parent is not None else None)


@dataclass(frozen=True)
class FinetuneSetup:
    """A run's fine-tuning setup, resolved once on the driver before Ray starts.

    `resolve` is the one place that turns ``--init-from`` / `finetune.init_from` into everything
    the run needs: the config that records the parent, the parent checkpoint, the data scaled per
    `finetune.scalers`, the plan every worker will compute (dry-run here, so a bad pattern or shape
    fails in seconds), and the lineage record with its MLflow tags. A run without a parent gets
    the same object with ``parent=None`` (plain data, no lineage).
    """

    config: TsdlConfig
    parent: ParentCheckpoint | None
    prepared: Any  # tsdl.data.PreparedData
    plan: FinetunePlan
    lineage: dict[str, Any] | None
    tags: dict[str, str]

    @classmethod
    def resolve(
        cls,
        config: TsdlConfig,
        init_from: str | None = None,
        *,
        download: Callable[[str], tuple[Path, str]] | None = None,
    ) -> FinetuneSetup:
        """Resolve the parent, prepare the data, dry-run the plan, record the lineage.

        Args:
            config: the run's config.
            init_from: ``--init-from`` (a run id or checkpoint directory); None uses the config's.
            download: ``run_id -> (local checkpoint dir, checkpoint URI)`` for MLflow run ids.

        Raises:
            ConfigError / DataError: the parent cannot be found, does not fit, or its scalers do
                not cover the data; a pattern matches nothing.
        """
        config, parent = resolve_init_from(config, init_from, download=download)
        prepared = prepare_finetune_data(config, parent)
        plan = check_finetune(config, prepared.model_dims, parent)
        record = lineage(parent, plan) if parent is not None else None
        return cls(config, parent, prepared, plan, record, lineage_tags(record))

    @property
    def init_state(self) -> dict[str, torch.Tensor] | None:
        """The parent's weights for the workers (`build_trainer`'s ``init_state``), or None."""
        return self.parent.weights if self.parent is not None else None


def head_patterns(config: TsdlConfig) -> list[str]:
    """`finetune.head`, else the architecture's `DEFAULT_HEADS` entry (empty when it has none)."""
    if config.finetune.head is not None:
        return list(config.finetune.head)
    return list(DEFAULT_HEADS.get(config.model.name, ()))


def match(names: list[str], patterns: list[str], *, field: str) -> list[str]:
    """Names matched by any pattern (glob over the full name, or a module prefix), in model order.

    Raises:
        ConfigError: a pattern matches nothing (a typo would otherwise freeze nothing silently).
    """
    for pattern in patterns:
        if not any(_matches(n, pattern) for n in names):
            raise ConfigError(
                f"{field} pattern {pattern!r} matches no parameter of this model",
                hint=f"use names like {', '.join(modules_of(names)[:6])} (globs such as 'encoder.*' work)",
            )
    return [n for n in names if _matches_any(n, patterns)]


def lineage(parent: ParentCheckpoint | None, plan: FinetunePlan) -> dict[str, Any]:
    """The child run's lineage record (MLflow tags and the manifest's ``lineage`` entry)."""
    record: dict[str, Any] = {
        "parent_run_id": None,
        "parent_checkpoint_uri": None,
        "init_from": None,
    }
    if parent is not None:
        record |= {
            "parent_run_id": parent.run_id,
            "parent_checkpoint_uri": parent.checkpoint_uri,
            "init_from": parent.source,
            "parent_best_epoch": parent.best_epoch,
            "parent_best_val_loss": parent.best_val_loss,
        }
    return record | plan.summary()


def lineage_tags(record: dict[str, Any] | None) -> dict[str, str]:
    """MLflow tags of a lineage record: parent run id, checkpoint URI, frozen modules."""
    if record is None:
        return {}
    frozen = ",".join(record["frozen_modules"]) or "none"
    if len(frozen) > _MAX_TAG_CHARS:  # the full list is in manifest.json
        frozen = frozen[: _MAX_TAG_CHARS - 40] + f"... ({len(record['frozen_modules'])} modules)"
    tags = {
        "tsdl.parent_run_id": record["parent_run_id"] or "none",
        "tsdl.parent_checkpoint_uri": record["parent_checkpoint_uri"],
        "tsdl.frozen_modules": frozen,
    }
    return {k: str(v) for k, v in tags.items()}


def modules_of(names: list[str]) -> list[str]:
    """Parameter names -> their module names (``encoder.linear1.weight`` -> ``encoder.linear1``)."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name.rsplit(".", 1)[0] if "." in name else name, None)
    return list(seen)


def _expand(names: list[str], patterns: list[str], head: list[str]) -> list[str]:
    """Freeze patterns with the reserved names ``head`` and ``backbone`` resolved."""
    chosen: set[str] = set()
    plain = [p for p in patterns if p not in (_HEAD, _BACKBONE)]
    if _HEAD in patterns or _BACKBONE in patterns:
        if not head:
            raise ConfigError(
                "finetune.freeze uses 'head'/'backbone' but this model has no default head",
                hint="list the head's parameters in finetune.head",
            )
        chosen |= set(head) if _HEAD in patterns else set()
        chosen |= {n for n in names if n not in set(head)} if _BACKBONE in patterns else set()
    chosen |= set(match(names, plain, field="finetune.freeze"))
    return [n for n in names if n in chosen]


def _matches(name: str, pattern: str) -> bool:
    return fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*")


def _matches_any(name: str, patterns: list[str]) -> bool:
    return any(_matches(name, p) for p in patterns)


def _warmup_ratio(k: int, warmup: int) -> float:
    """Multiplier taking step ``k - 1``'s lr to step ``k``'s on the ramp ``lr * k / warmup``.

    Multiplicative, so plateau reductions made meanwhile are kept; 1 outside ``[1, warmup]``.
    """
    if k < 1 or k > warmup:
        return 1.0
    return 1.0 / warmup if k == 1 else k / (k - 1)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)
