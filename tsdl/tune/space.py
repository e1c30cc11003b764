"""The search space: dotted config paths -> ranges, applied to a base config per trial.

Priority (used to freeze params when the budget is small): lr > input_chunk_length > hidden_size
> batch_size > dropout > everything else (architecture params), in the order they are listed.
``data.input_chunk_length`` choices may be written ``"Nx"``: N times ``output_chunk_length``.

Stage 2 narrows the space around the top-k trials of stage 1:

- float/int ranges: ``[min, max]`` of the top-k values, widened on each side by 25 % of that
  span (in log space for log ranges; by 10 % of the original range when all top-k agree),
  clipped to the original range; ints are rounded outwards;
- choices: the values the top-k used, in their original order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tsdl.config import TsdlConfig
from tsdl.config.tune import ChoiceParam, FloatParam, IntParam, ParamSpec
from tsdl.errors import ConfigError, TuneError

__all__ = [
    "PRIORITY",
    "ActiveSpace",
    "apply_params",
    "narrow_space",
    "reference_point",
    "resolve_value",
    "same_point",
    "select_space",
    "to_tune_space",
]

PRIORITY = (
    "training.optimizer.lr",
    "data.input_chunk_length",
    "model.hidden_size",
    "training.batch_size",
    "model.dropout",
)
"""Playbook order; params not listed here rank after these, in the order given."""

_UNUSED_BY_MODEL = {"dlinear": {"model.hidden_size", "model.dropout"}}
"""Params an architecture ignores: tuning them would only add noise to the search."""

_WIDEN = 0.25
_DEGENERATE = 0.10


@dataclass(frozen=True)
class ActiveSpace:
    """The params a study tunes, and those it keeps at the config's values (with the reason)."""

    params: dict[str, ParamSpec]
    frozen: dict[str, str]


def resolve_value(path: str, value: Any, config: TsdlConfig) -> Any:
    """A sampled value as the config takes it (``"4x"`` -> 4 x output_chunk_length)."""
    if path == "data.input_chunk_length" and isinstance(value, str) and value.endswith("x"):
        try:
            factor = float(value[:-1])
        except ValueError:
            raise TuneError(
                f"tune.search_space: data.input_chunk_length choice {value!r} is not 'Nx' or an int",
                hint="write e.g. '4x' (4 x output_chunk_length) or 96",
            ) from None
        return max(1, int(round(factor * config.data.output_chunk_length)))
    return value


def apply_params(config: TsdlConfig, params: Mapping[str, Any]) -> TsdlConfig:
    """``config`` with each dotted path set to its (resolved) value, validated again."""
    raw = config.model_dump(mode="json")
    for path, value in params.items():
        node = raw
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise TuneError(
                f"tune.search_space: '{path}' is not a field of this config (model '{config.model.name}')",
                hint="use dotted paths shown by `tsdl config init`, e.g. training.optimizer.lr",
            )
        node[leaf] = resolve_value(path, value, config)
    try:
        return TsdlConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"trial params {dict(params)} give an invalid config: {where}: {first['msg']}",
            hint="narrow tune.search_space to values the field accepts",
        ) from None


def select_space(config: TsdlConfig, *, max_params: int | None) -> ActiveSpace:
    """Order the space by priority and freeze what the model ignores and what exceeds the budget."""
    space = dict(config.tune.search_space)
    apply_params(config, {p: _first_value(s) for p, s in space.items()})  # fail early on bad paths
    frozen: dict[str, str] = {}
    for path in sorted(_UNUSED_BY_MODEL.get(config.model.name, set()) & set(space)):
        frozen[path] = f"unused by model '{config.model.name}'"
    ranked = sorted(
        (p for p in space if p not in frozen),
        key=lambda p: (PRIORITY.index(p) if p in PRIORITY else len(PRIORITY), list(space).index(p)),
    )
    keep = ranked if max_params is None else ranked[:max_params]
    for path in ranked[len(keep) :]:
        frozen[path] = f"low priority for a {max_params}-param budget"
    if not keep:
        raise TuneError(
            "tune.search_space has nothing to tune after freezing " + ", ".join(frozen),
            hint="add params to tune.search_space or raise tune.max_params",
        )
    return ActiveSpace({p: space[p] for p in keep}, frozen)


def reference_point(config: TsdlConfig, space: Mapping[str, ParamSpec]) -> tuple[dict[str, Any], dict[str, ParamSpec]]:
    """The config's own values as a point of ``space`` (trial 0), and the space widened to hold it.

    A choice list gains the config's value if it lacks it; a range is stretched to include it.
    """
    point: dict[str, Any] = {}
    widened: dict[str, ParamSpec] = {}
    for path, spec in space.items():
        current = _current_value(config, path)
        if isinstance(spec, ChoiceParam):
            match = next((v for v in spec.values if resolve_value(path, v, config) == current), None)
            point[path] = current if match is None else match
            widened[path] = spec if match is not None else ChoiceParam(values=[*spec.values, current])
        else:
            point[path] = current
            low, high = min(spec.low, current), max(spec.high, current)
            widened[path] = spec.model_copy(update={"low": low, "high": high})
    return point, widened


def same_point(params: Mapping[str, Any], point: Mapping[str, Any]) -> bool:
    """Whether a trial's sampled params are ``point`` (floats compared to 1e-9 relative)."""
    if set(params) != set(point):
        return False
    for key, value in point.items():
        other = params[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, other))
        if not (math.isclose(float(value), float(other), rel_tol=1e-9) if numbers else value == other):
            return False
    return True


def to_tune_space(space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Ray Tune domains (OptunaSearch converts them to Optuna distributions)."""
    from ray import tune

    domains: dict[str, Any] = {}
    for path, spec in space.items():
        if isinstance(spec, FloatParam):
            domains[path] = (tune.loguniform if spec.log else tune.uniform)(spec.low, spec.high)
        elif isinstance(spec, IntParam):
            domains[path] = (tune.lograndint if spec.log else tune.randint)(spec.low, spec.high + 1)
        else:
            domains[path] = tune.choice(list(spec.values))
    return domains


def narrow_space(space: Mapping[str, ParamSpec], top: Sequence[Mapping[str, Any]]) -> dict[str, ParamSpec]:
    """Stage 2's space: each param narrowed around the values of the ``top`` stage-1 trials."""
    if not top:
        return dict(space)
    narrowed: dict[str, ParamSpec] = {}
    for path, spec in space.items():
        values = [t[path] for t in top if path in t]
        if not values:
            narrowed[path] = spec
        elif isinstance(spec, ChoiceParam):
            narrowed[path] = ChoiceParam(values=[v for v in spec.values if v in values])
        else:
            narrowed[path] = _narrow_range(spec, values)
    return narrowed


def _narrow_range(spec: FloatParam | IntParam, values: Sequence[float]) -> ParamSpec:
    fwd, inv = (math.log, math.exp) if spec.log else (float, float)
    lo_t, hi_t = fwd(spec.low), fwd(spec.high)
    vmin, vmax = fwd(min(values)), fwd(max(values))
    pad = (vmax - vmin) * _WIDEN if vmax > vmin else (hi_t - lo_t) * _DEGENERATE
    low, high = inv(max(lo_t, vmin - pad)), inv(min(hi_t, vmax + pad))
    low, high = max(spec.low, low), min(spec.high, high)  # exp(log(x)) round-off
    if isinstance(spec, IntParam):
        low, high = math.floor(low), math.ceil(high)
        if low >= high:
            return ChoiceParam(values=[int(low)])
        return IntParam(low=int(low), high=int(high), log=spec.log)
    return FloatParam(low=low, high=high, log=spec.log)


def _current_value(config: TsdlConfig, path: str) -> Any:
    node: Any = config.model_dump(mode="json")
    for part in path.split("."):
        node = node[part]
    return node


def _first_value(spec: ParamSpec) -> Any:
    return spec.values[0] if isinstance(spec, ChoiceParam) else spec.low
