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
    "ending",
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


MAX_LINE = 1000
"""Characters of the one failure line: a message echoing a huge value is cut, its fix kept."""

TRAINING_COMMANDS = frozenset({"train", "tune", "doctor", "lr-find", "evaluate", "predict"})
"""Commands where running out of memory is about batches and windows (the hint says so)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread so it unwinds like Ctrl-C."""


_sigterm_received = threading.Event()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (no-op in other threads).

    Ray's blocking calls (``ray.get``, ``placement_group.wait``) turn whatever a signal handler
    raised into a plain ``KeyboardInterrupt``; the received SIGTERM is therefore also recorded,
    so `failure_line` still reports it as SIGTERM (exit 143), not as Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _sigterm_received.clear()
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if not _exiting.is_set():
            signal.signal(signal.SIGTERM, previous)


_exiting = threading.Event()


@contextmanager
def ending(*, until_exit: bool) -> Iterator[None]:
    """The command has failed or was stopped and prints its line: SIGINT/SIGTERM are ignored
    meanwhile, so a signal sent twice neither cuts the line nor turns exit 143 into a kill.

    Args:
        until_exit: keep ignoring them after the block, until the process exits (the ``tsdl``
            process itself: interpreter shutdown after a Ray run takes a moment); a library
            caller of `tsdl.cli.main.main` gets its handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if until_exit:
            _exiting.set()
        else:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _sigterm_received.set()
    raise Terminated()


def failure_line(exc: BaseException, command: str | None = None) -> tuple[str, int]:
    """The one line the CLI prints for ``exc`` (at most `MAX_LINE` characters) and the exit code.

    Args:
        command: the sub-command that failed; an out-of-memory hint about batch sizes is given
            only for commands that train or predict (`TRAINING_COMMANDS`).
    """
    line, code = _failure(exc, command)
    return _cut(line), code


def _failure(exc: BaseException, command: str | None) -> tuple[str, int]:
    if isinstance(exc, TsdlError):
        return f"error: {_flat(exc.one_line())}", exc.exit_code
    if isinstance(exc, Terminated) or (isinstance(exc, KeyboardInterrupt) and _sigterm_received.is_set()):
        return f"terminated (SIGTERM): {_RESUME_NOTE}", EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted: {_RESUME_NOTE}", EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        return f"error: {_os_error(exc)}", EXIT_ERROR
    if isinstance(exc, MemoryError):
        if command in TRAINING_COMMANDS:
            fix = "lower training.batch_size or data.input_chunk_length, or run on a machine with more memory"
        else:
            fix = "give a smaller input, or run on a machine with more memory"
        where = f" in `tsdl {command}`" if command else ""
        return f"error: out of memory{where} (fix: {fix})", EXIT_ERROR
    text = _flat(str(exc)) or "(no message)"
    return (
        f"internal error: {type(exc).__name__}: {text[:500]} "
        "(rerun with --debug for the traceback, and please report it)",
        EXIT_INTERNAL,
    )


def _cut(line: str) -> str:
    """At most `MAX_LINE` characters; the message's middle goes, its trailing ``(fix: ...)`` stays."""
    if len(line) <= MAX_LINE:
        return line
    head, sep, fix = line.rpartition(" (fix: ")
    if not sep or len(fix) > MAX_LINE // 2:
        head, sep, fix = line, "", ""
    keep = MAX_LINE - len(sep) - len(fix) - 25
    return f"{head[:keep]} ... [{len(head) - keep} chars cut]{sep}{fix}"


def _os_error(exc: OSError) -> str:
    """``<path>: <reason> (fix: ...)`` from an OSError, whichever of its fields are set."""
    reason = exc.strerror or _flat(str(exc)) or type(exc).__name__
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{where + ': ' if where else ''}{reason} (fix: {os_error_hint(exc)})"


def _flat(text: str) -> str:
    """One line: a multi-line message is joined, runs of whitespace collapsed."""
    return " ".join(text.split())
