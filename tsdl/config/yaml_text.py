"""YAML as tsdl reads it: bounded in size and expansion, and string fields keep what was written.

PyYAML reads YAML 1.1, which types plain scalars: ``0123`` is the octal 83, ``2024`` an int,
``yes`` a bool, ``1:30`` the sexagesimal 90, ``2020-01-01`` a date. For a field that holds text
(a namespace, a column name, a tag, ``training.precision: 32``) that typing only loses what the
user wrote, so those fields take the scalar's source text instead (`keep_text`), whether the
value came from a config file or a ``--set``.

A config is small; a file over `MAX_CONFIG_BYTES`, or one whose aliases expand past
`MAX_EXPANDED_NODES` (a "billion laughs" bomb that would make validation run out of memory), is
refused before anything is built from it.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel

from tsdl.errors import ConfigError

__all__ = ["LOADER", "MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_EXPANDED_NODES", "check_expansion", "keep_text", "node_at"]

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than 1 MiB is refused (the documented default config is ~10 KiB)."""
MAX_EXPANDED_NODES = 100_000
"""YAML nodes a config may hold with every alias expanded (the default config has ~300)."""

MAX_DEPTH = 32
"""Nesting levels a config may have (the default config has 5)."""
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML has it: linear in nesting depth (the pure-Python scanner is
quadratic: 1000 nested brackets took seconds) and capped at 1000 levels."""

_TYPED = (bool, int, float, dt.date, dt.datetime)

NodeAt = Callable[[Sequence[Any]], "yaml.Node | None"]


def check_expansion(node: yaml.Node | None, source: str) -> None:
    """Refuse a document whose aliases expand beyond `MAX_EXPANDED_NODES` (time bounded by it too)."""
    budget = MAX_EXPANDED_NODES
    stack = [(node, 0)] if node is not None else []
    while stack:
        current, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"{source}: the YAML expands to more than {MAX_EXPANDED_NODES} values "
                "(anchors and aliases nested into each other)",
                hint="write the values out; a tsdl config needs no nested aliases",
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: the YAML is nested more than {MAX_DEPTH} levels deep",
                              hint="fix the YAML structure")
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack += [(key, depth + 1), (value, depth + 1)]
        elif isinstance(current, yaml.SequenceNode):
            stack += [(item, depth + 1) for item in current.value]


def node_at(node: yaml.Node | None, path: Sequence[Any]) -> yaml.Node | None:
    """The node at a dotted path of keys and list indices, or None."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def keep_text(value: Any, annotation: Any, at: NodeAt, path: tuple[Any, ...] = ()) -> Any:
    """``value`` with every YAML-typed scalar under a text field replaced by its source text.

    Args:
        value: the parsed YAML (a mapping for a model).
        annotation: the model or field type ``value`` is validated against.
        at: the YAML node a path was written as (None: no source, the value is kept).
    """
    annotation = _unwrap(annotation)
    if isinstance(value, dict):
        model = _model_for(annotation, value)
        if model is not None:
            fields = model.model_fields
            return {
                k: keep_text(v, fields[k].annotation, at, (*path, k)) if k in fields else v
                for k, v in value.items()
            }
        item = _container_item(annotation, dict)
        if item is not None:
            return {k: keep_text(v, item, at, (*path, k)) for k, v in value.items()}
        return value
    if isinstance(value, list):
        item = _container_item(annotation, list)
        if item is None:
            return value
        return [keep_text(v, item, at, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, _TYPED) and _is_text(annotation):
        node = at(path)
        if isinstance(node, yaml.ScalarNode):
            return node.value
    return value


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [_unwrap(m) for m in typing.get_args(annotation) if m is not type(None)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_for(annotation: Any, value: dict[str, Any]) -> type[BaseModel] | None:
    """The model a mapping is validated as; for a tagged union, the member its tag names."""
    models = [m for m in _members(annotation) if _is_model(m)]
    if len(models) <= 1:
        return models[0] if models else None
    for model in models:
        for name, field in model.model_fields.items():
            tag = _unwrap(field.annotation)
            if typing.get_origin(tag) is Literal and name in value and value[name] in typing.get_args(tag):
                return model
    return None


def _container_item(annotation: Any, kind: type) -> Any:
    for member in _members(annotation):
        if typing.get_origin(member) is kind:
            args = typing.get_args(member)
            return _unwrap(args[-1]) if args else None
    return None


def _is_text(annotation: Any) -> bool:
    """Every scalar form of the field is text: ``str``, ``Literal['a', ...]``, their unions."""
    scalars = [m for m in _members(annotation) if typing.get_origin(m) not in (list, dict) and not _is_model(m)]
    return bool(scalars) and all(
        m is str or (typing.get_origin(m) is Literal and all(isinstance(a, str) for a in typing.get_args(m)))
        for m in scalars
    )
