"""Error hierarchy: every user-facing failure is a TsdlError with a one-line message and a fix.

The CLI prints ``error: <message>`` (plus ``hint: <fix>``) and exits with code 2; ``--debug``
shows the traceback. Library users can catch the subclasses.
"""

from __future__ import annotations

__all__ = [
    "TsdlError",
    "ConfigError",
    "DataError",
    "TrainingError",
    "TuneError",
    "DeployError",
    "TrackingError",
    "StorageError",
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
