"""A commented default config, generated from the models so docs never drift from code."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from tsdl.config.root import TsdlConfig

__all__ = ["commented_default_yaml"]

_HEADER = """\
# tsdl configuration: every key below is shown with its default.
# Delete what you do not change; unknown keys are errors.
# Validate with: tsdl config show -c THIS_FILE
"""


def commented_default_yaml(config: TsdlConfig | None = None) -> str:
    """YAML for `config` (default: the defaults) with each field's docstring as a comment."""
    config = config or TsdlConfig()
    lines: list[str] = [_HEADER]
    _emit(config, lines, indent=0)
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, lines: list[str], indent: int) -> None:
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        doc = field.description
        if isinstance(value, BaseModel):
            section_doc = (type(value).__doc__ or "").strip().splitlines()
            if section_doc:
                lines.append(f"{pad}# {section_doc[0]}")
            lines.append(f"{pad}{name}:")
            _emit(value, lines, indent + 1)
            continue
        if doc:
            for doc_line in textwrap.wrap(" ".join(doc.split()), width=96 - len(pad)):
                lines.append(f"{pad}# {doc_line}")
        lines.append(_scalar_line(pad, name, value))


def _scalar_line(pad: str, name: str, value: Any) -> str:
    if isinstance(value, dict) and value:
        dumped = {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in value.items()}
        body = yaml.safe_dump(dumped, sort_keys=False, default_flow_style=None).rstrip().splitlines()
        return f"{pad}{name}:\n" + "\n".join(f"{pad}  {line}" for line in body)
    jsonable = TypeAdapter(Any).dump_python(value, mode="json")
    text = yaml.safe_dump({name: jsonable}, sort_keys=False, default_flow_style=True).strip()
    return f"{pad}{text[1:-1]}"
