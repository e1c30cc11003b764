"""Ctrl-C and SIGTERM arrive between writes to the tracking store, never inside one.

Python raises ``KeyboardInterrupt`` (and tsdl's CLI raises ``Terminated`` for SIGTERM) wherever the
main thread happens to be. Inside an MLflow write that is half a database transaction: SQLAlchemy
rolls back, a concurrent reader (the MLflow UI, a test polling the run) can leave the sqlite file
locked, and MLflow logs the failed commit with a full traceback before tsdl prints its one line.
Short local writes therefore run with those signals held, and a held signal is delivered as soon
as the write is done, so stopping stays prompt; a second signal is never held. Writes to an HTTP
tracking server are not held at all: the server commits a request whole or not at all, and its
retries could hold the signal past a pod's termination grace period.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["deferred_interrupts", "keep_sigint_handler"]

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; re-raise the first one that came when it ends.

    A second signal during the block acts at once (the user, or a pod's grace period, means it):
    the handlers are put back and it is delivered where the block is. Keep blocks short: local
    writes only (a sqlite commit), never a network call that can retry for minutes.

    Only the main thread can set signal handlers; elsewhere this is a no-op. Nested blocks work:
    the inner one hands a held signal to the outer one, which delivers it last.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python

    def hold(signum: int, frame: FrameType | None) -> None:
        if not held:
            held.append(signum)
            return
        held.clear()  # delivered now, not again when the block ends
        restore()
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            signal.raise_signal(signum)  # the default action

    previous.update({signum: signal.signal(signum, hold) for signum in _HELD})
    try:
        yield
    finally:
        restore()
        if held:
            signal.raise_signal(held[0])  # now handled by the restored handler


@contextmanager
def keep_sigint_handler() -> Iterator[None]:
    """Put back the SIGINT handler the block replaced.

    ``TorchTrainer.fit()`` installs Ray Train's own handler (abort the controller; at the third
    Ctrl-C ``sys.exit(0)``) and never removes it, so a Ctrl-C during evaluation or logging after
    training would exit 0 instead of raising ``KeyboardInterrupt``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
