"""The one rule for names that become paths or objects: runs, studies, experiments, RayJobs.

A run name is a directory under ``resources.storage_path`` (and an object-store prefix), a study
name likewise, an experiment name the start of both; on a cluster the RayJob passes its own name
as ``--run-name``/``--study-name``. A name with ``/``, ``..``, a shell character or a space could
leave the storage path (``--run-name ../../x``), break a manifest or a quoted entrypoint, so every
such name, from a YAML file, ``--set`` or a flag, is checked against `NAME_PATTERN` here.

Kubernetes objects (RayJob, namespace) are also checked against Kubernetes' own, narrower rules
(RFC 1123/1035 labels, `tsdl.config.deploy`): every one of those is a valid `NAME_PATTERN` too.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

from tsdl.errors import ConfigError

__all__ = ["NAME_MAX_LENGTH", "NAME_PATTERN", "NAME_RULE", "Name", "check_name"]

NAME_MAX_LENGTH = 128
"""Characters; a run name plus a timestamp suffix stays far below a filesystem's 255 bytes."""
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{NAME_MAX_LENGTH - 1}}}$"
"""ASCII letters and digits, then also ``_ . -``: never ``/``, ``\\``, a space, a shell
character, a leading ``.`` or ``-`` (so never ``.``, ``..`` or something read as a flag)."""
NAME_RULE = f"1-{NAME_MAX_LENGTH} ASCII letters, digits, '_', '.', '-', starting with a letter or digit"
"""`NAME_PATTERN` in words, for error messages and docs."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""A config field holding such a name."""

_NAME = re.compile(NAME_PATTERN)


def check_name(value: str, what: str) -> str:
    """``value`` if it is a valid name, else a one-line ConfigError naming ``what`` (e.g. ``--run-name``).

    Raises:
        ConfigError: the name does not match `NAME_PATTERN`.
    """
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    return _refuse(value, what)


def _refuse(value: object, what: str) -> str:
    from tsdl.config.text import brief

    raise ConfigError(
        f"{what} {brief(value)} is not a valid name: {NAME_RULE}",
        hint="use a name such as etth1-run_2",
    )
