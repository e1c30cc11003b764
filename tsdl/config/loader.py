"""YAML <-> TsdlConfig, with errors that name the file, line, field path, bad value and range."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tsdl.config.names import NAME_PATTERN, NAME_RULE
from tsdl.config.root import TsdlConfig
from tsdl.config.text import brief, cut
from tsdl.config.yaml_text import LOADER, MAX_CONFIG_BYTES, check_expansion, keep_text, node_at
from tsdl.errors import ConfigError

__all__ = [
    "apply_overrides",
    "config_hash",
    "dump_config",
    "load_config",
    "parse_config",
    "to_flat_dict",
]


def load_config(path: str | Path | None = None, overrides: Iterable[Override] = ()) -> TsdlConfig:
    """Read a YAML config (or the defaults when `path` is None) and apply `key.path=value` overrides."""
    if path is None:
        return parse_config({}, overrides=overrides)
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"config file {path} does not exist", hint="run `tsdl config init -o config.yaml`"
        )
    if not path.is_file():
        raise ConfigError(f"config {path} is not a file", hint="give the YAML file itself, e.g. -c config.yaml")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is {size} bytes; a tsdl config is at most {MAX_CONFIG_BYTES} bytes",
            hint="give the YAML config itself, not a data file",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte offset {exc.start})",
            hint="give a YAML config; save it as UTF-8",
        ) from None
    node = _compose(text, str(path))
    raw = _construct(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping of sections, got {type(raw).__name__}",
            hint="start from `tsdl config init`",
        )
    return parse_config(_relative_to(raw, path.parent), overrides=overrides, source=str(path), node=node)


def _relative_to(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A relative ``data.path`` in a config file starts at the file's directory, not the cwd.

    So ``tsdl train -c examples/x.yaml`` reads the same file from any working directory. URIs
    (``s3://...``) and absolute paths are kept; command-line overrides stay cwd-relative.
    """
    data = raw.get("data")
    value = data.get("path") if isinstance(data, dict) else None
    if isinstance(value, str) and value and "://" not in value and not Path(value).expanduser().is_absolute():
        data["path"] = os.path.normpath(base.absolute() / value)
    return raw


Override = str | tuple[str, Any]
"""``"a.b=value"`` (value read as YAML, like ``--set``) or ``("a.b", value)`` (value as is: what a
dedicated flag such as ``-n NAMESPACE`` or a positional FILE gives, never typed by YAML)."""


def _compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node tree, refused when malformed, nested too deeply or an alias bomb."""
    try:
        node = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: invalid YAML: {cut(problem)}", hint="fix the YAML syntax") from None
    except RecursionError:  # the pure-Python loader, without libyaml
        raise ConfigError(f"{source}: the YAML is nested too deeply", hint="fix the YAML structure") from None
    check_expansion(node, source)
    return node


def _construct(text: str, source: str) -> Any:
    """Python values of YAML already composed by `_compose` (only tags can still fail here)."""
    try:
        return yaml.load(text, Loader=LOADER)  # noqa: S506 - a safe loader (C or Python)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: unsupported YAML: {cut(problem)}", hint="write plain values") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{source}: unreadable YAML value: {cut(str(exc))}", hint="write plain values") from None


def parse_config(
    raw: Mapping[str, Any],
    *,
    overrides: Iterable[Override] = (),
    source: str = "<config>",
    node: yaml.Node | None = None,
) -> TsdlConfig:
    """Validate a plain mapping; the first error becomes a one-line ConfigError.

    Text fields keep the text written in ``node`` (the file) or an override, not YAML's typing.
    """
    written: list[tuple[list[str], yaml.Node | None]] = []
    data = _apply(dict(raw), overrides, written)

    def at(path: Any) -> yaml.Node | None:
        for parts, value_node in reversed(written):  # the last override of a path wins
            if list(path[: len(parts)]) == parts:
                return node_at(value_node, path[len(parts):])
        return node_at(node, path)

    data = keep_text(data, TsdlConfig, at)
    try:
        return TsdlConfig.model_validate(data)
    except ValidationError as exc:
        raise _to_config_error(exc, source=source, node=node) from None
    except RecursionError:
        raise ConfigError(f"{source}: the config is nested too deeply", hint="fix its structure") from None


def apply_overrides(raw: dict[str, Any], overrides: Iterable[Override]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (value parsed as YAML) or ``(key, value)`` pairs, in order."""
    return _apply(raw, overrides, [])


def _apply(
    raw: dict[str, Any], overrides: Iterable[Override], written: list[tuple[list[str], yaml.Node | None]]
) -> dict[str, Any]:
    for item in overrides:
        if isinstance(item, tuple):
            key, value, node = item[0], item[1], None
        else:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(
                    f"override {brief(item)} is not of the form key.path=value",
                    hint="write e.g. --set training.optimizer.lr=3e-4",
                )
            where = f"--set {brief(key.strip(), 60)}"
            node = _compose(text, where) if text.strip() else None
            value = _construct(text, where) if text.strip() else None
        parts = key.strip().split(".")
        cursor: dict[str, Any] = raw
        for part in parts[:-1]:
            nxt = cursor.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                cursor[part] = nxt
            cursor = nxt
        cursor[parts[-1]] = value
        written.append((parts, node))
    return raw


def dump_config(config: TsdlConfig) -> str:
    """The fully resolved config as YAML (the form `load_config` reads back)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def to_flat_dict(config: TsdlConfig) -> dict[str, Any]:
    """Dotted keys -> scalar values (lists as JSON), e.g. for MLflow params."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            flat[prefix] = json.dumps(value)
        else:
            flat[prefix] = value

    walk("", config.model_dump(mode="json"))
    return flat


def config_hash(config: TsdlConfig) -> str:
    """A stable content hash of the resolved config (sha256 of canonical JSON)."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


REMOVED_KEYS = {
    "training.num_workers": "batches are slices of windows already in memory, so there were never "
    "loader threads to set (DDP ranks are resources.num_workers)",
}
"""Keys older configs may still hold, with why they went: a clearer error than 'unknown key'."""


def _to_config_error(exc: ValidationError, *, source: str, node: yaml.Node | None) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not _is_union_tag(p)]
    dotted = ".".join(str(p) for p in loc) or "<root>"
    dotted = dotted if len(dotted) <= 120 else f"{dotted[:117]}..."
    line = _line_of(node, loc)
    where = f"{source}:{line}" if line else source
    kind = err["type"]
    if kind == "extra_forbidden" and dotted in REMOVED_KEYS:
        return ConfigError(f"{where}: '{dotted}' was removed: {REMOVED_KEYS[dotted]}", hint="delete it")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return ConfigError(
            f"{where}: unknown key '{dotted}'",
            hint=f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it",
        )
    if kind == "missing":
        return ConfigError(f"{where}: '{dotted}' is required", hint="add it to the config")
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {brief(value)})"
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
        return ConfigError(
            f"{where}: {dotted}: not a valid name: {NAME_RULE}{shown}", hint="use a name such as etth1-run_2"
        )
    if not loc:  # a rule across sections: its message names the fields and the fix
        return ConfigError(f"{where}: {message}", hint="change one of the fields it names")
    return ConfigError(f"{where}: {dotted}: {message}{shown}", hint=_hint_for(loc, kind))


def _is_union_tag(part: Any) -> bool:
    """Pydantic puts the discriminator value in the location of union members; drop it."""
    return isinstance(part, str) and part in {"dlinear", "nhits", "rnn", "patchtst", "float", "int", "choice"}


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if key is None:
                break
            line, node = key.start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _allowed_keys(loc: list[Any]) -> list[str]:
    from pydantic import BaseModel

    model: Any = TsdlConfig
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            model = annotation if isinstance(annotation, type) else None
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _hint_for(loc: list[Any], kind: str) -> str:
    if kind.startswith("literal") or kind == "union_tag_invalid":
        return "use one of the allowed values listed"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "use a value inside the allowed range"
    return "see `tsdl config init` for the documented defaults"
