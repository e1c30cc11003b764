"""Values shown in one-line messages: never longer than a line, whatever the input held."""

from __future__ import annotations

import reprlib

__all__ = ["BRIEF_LIMIT", "brief", "cut"]

BRIEF_LIMIT = 80
"""Characters of a value an error message shows."""

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = BRIEF_LIMIT
_REPR.maxother = BRIEF_LIMIT
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 4)


def brief(value: object, limit: int = BRIEF_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters (with ``...`` and the full length).

    Bounded in time and memory too: a nested or self-referencing value (a YAML alias bomb, a
    10 MB string) is walked only a few levels and items deep before anything is joined.
    """
    if isinstance(value, str):
        text = " ".join(repr(value[: limit + 1]).split())
        if len(value) <= limit and len(text) <= limit:
            return text
        size = f"... ({len(value)} chars)"
        return " ".join(repr(value[: max(8, limit - len(size) - 2)]).split()) + size
    text = " ".join(_REPR.repr(value).split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def cut(text: str, limit: int = 200) -> str:
    """A message text on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else f"{flat[: limit - 3]}..."
