"""Error hierarchy: every user-facing failure is a TsdlError with a one-line message and a fix.

The CLI prints ``error: <message> (fix: <hint>)`` on one line and exits with ``exit_code`` (2);
``--debug`` shows the traceback. Library users can catch the subclasses.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "TsdlError",
    "ConfigError",
    "DataError",
    "TrainingError",
    "TuneError",
    "DeployError",
    "TrackingError",
    "StorageError",
    "OutputError",
    "os_error_hint",
    "writing",
]


class TsdlError(Exception):
    """Base class. ``message`` says what is wrong and where; ``hint`` says how to fix it."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the fix on one line, as the CLI prints it."""
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(TsdlError):
    """A configuration file or value is invalid."""


class DataError(TsdlError):
    """Input data cannot be read or fails the pre-training checklist."""


class TrainingError(TsdlError):
    """Training could not start or could not finish."""


class TuneError(TsdlError):
    """A tuning study could not start, resume or finish."""


class TrackingError(TsdlError):
    """MLflow tracking could not be reached or read."""


class StorageError(TsdlError):
    """A storage path or object-store URI cannot be reached, read or written."""


class DeployError(TsdlError):
    """Rendering or submitting a Kubernetes RayJob failed."""


class OutputError(TsdlError):
    """A result could not be written: missing directory, disk full, no permission."""


_WRITE_HINTS = {
    errno.ENOSPC: "free space on that filesystem, or write somewhere else",
    errno.EDQUOT: "free space within your quota, or write somewhere else",
    errno.EFBIG: "the file exceeds the allowed file size; write somewhere else",
    errno.EACCES: "check its permissions, or write somewhere else",
    errno.EPERM: "check its permissions, or write somewhere else",
    errno.EROFS: "that filesystem is read-only; write somewhere else",
    errno.ENOENT: "create the directory first, or choose an existing one",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "that path is a directory; give a file name",
}


@contextmanager
def writing(path: object, what: str = "file") -> Iterator[None]:
    """Turn an OSError while writing ``path`` into a one-line `OutputError` naming it and the fix.

    Disk full, a missing directory or a read-only mount are user-fixable; without this they reach
    the user as a traceback from deep inside pyarrow, MLflow or pathlib.
    """
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
        raise OutputError(f"cannot write {what} {path}: {reason}", hint=os_error_hint(exc)) from exc


def os_error_hint(exc: OSError) -> str:
    """What to do about an OSError, by its errno (disk full, permissions, missing directory)."""
    code = exc.errno if exc.errno is not None else _errno_in(str(exc))
    return _WRITE_HINTS.get(code, "check the path and the filesystem")


def _errno_in(text: str) -> int:
    """pyarrow reports errno only inside the text ("... [errno 28] No space left on device")."""
    import re

    match = re.search(r"errno (\d+)", text, flags=re.IGNORECASE)
    return int(match.group(1)) if match else -1
