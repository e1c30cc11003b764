"""Ctrl-C and SIGTERM arrive between writes to the tracking store, never inside one.

Python raises ``KeyboardInterrupt`` (and tsdl's CLI raises ``Terminated`` for SIGTERM) wherever the
main thread happens to be. Inside an MLflow write that is half a database transaction: SQLAlchemy
rolls back, a concurrent reader (the MLflow UI, a test polling the run) can leave the sqlite file
locked, and MLflow logs the failed commit with a full traceback before tsdl prints its one line.
Short writes therefore run with those signals held, and a held signal is delivered as soon as the
write is done, so stopping stays prompt.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["deferred_interrupts", "keep_sigint_handler"]

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; re-raise the first one that came when it ends.

    Only the main thread can set signal handlers; elsewhere this is a no-op. Nested blocks work:
    the inner one hands a held signal to the outer one, which delivers it last.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        del frame
        held.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in _HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
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
