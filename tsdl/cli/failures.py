"""How a failed command ends: one line on stderr, a documented exit code, never a traceback.

Expected failures are `TsdlError`s and keep their own message and exit code. Anything else is a
bug or an environment problem tsdl did not anticipate; it still gets one line (type and message)
plus the way to see the traceback (``--debug``), so a user is never handed a stack dump.
SIGTERM (``kill``, Kubernetes, a batch scheduler) is turned into `Terminated`, a
`KeyboardInterrupt`, so everything that cleans up after Ctrl-C (MLflow runs end KILLED, temporary
checkpoint copies are removed) also runs when the process is asked to stop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from tsdl.errors import TsdlError, os_error_hint

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "failure_line",
    "sigterm_interrupts",
]

EXIT_ERROR = 2
"""A user error: bad config, data, path, id, credentials (TsdlError's default)."""
EXIT_INTERNAL = 3
"""An unexpected error (a tsdl bug or an unanticipated environment failure)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT)."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + SIGTERM)."""

_RESUME_NOTE = "finished epochs and trials are kept (continue with --resume)"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread so it unwinds like Ctrl-C."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (no-op in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def failure_line(exc: BaseException) -> tuple[str, int]:
    """The one line the CLI prints for ``exc`` and the exit code it returns."""
    if isinstance(exc, TsdlError):
        return f"error: {_flat(exc.one_line())}", exc.exit_code
    if isinstance(exc, Terminated):
        return f"terminated (SIGTERM): {_RESUME_NOTE}", EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted: {_RESUME_NOTE}", EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        return f"error: {_os_error(exc)}", EXIT_ERROR
    if isinstance(exc, MemoryError):
        return (
            "error: out of memory (fix: lower training.batch_size or data.input_chunk_length, "
            "or run on a machine with more memory)",
            EXIT_ERROR,
        )
    text = _flat(str(exc)) or "(no message)"
    return (
        f"internal error: {type(exc).__name__}: {text[:500]} "
        "(rerun with --debug for the traceback, and please report it)",
        EXIT_INTERNAL,
    )


def _os_error(exc: OSError) -> str:
    """``<path>: <reason> (fix: ...)`` from an OSError, whichever of its fields are set."""
    reason = exc.strerror or _flat(str(exc)) or type(exc).__name__
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{where + ': ' if where else ''}{reason} (fix: {os_error_hint(exc)})"


def _flat(text: str) -> str:
    """One line: a multi-line message is joined, runs of whitespace collapsed."""
    return " ".join(text.split())
