"""Progress inside an epoch: steps done/total, windows/s and the epoch's ETA, live.

An epoch of PatchTST on ETTh1 takes a minute on a laptop and can take an hour on a cluster; one
line per epoch leaves the user staring at nothing until the first one ends. Two halves:

- :class:`StepReporter` (rank 0, in the training loop): called after every step, it sends a
  small message into the run's progress queue at most once a second, so the per-step cost is one
  clock read (the queue is a Ray actor call when the loop runs in a Ray Train worker).
- :class:`LiveLine` (the driver, drawn by :class:`tsdl.train.progress.ProgressPrinter`): on a
  terminal one line rewritten in place (``\\r``), at most once a second, which the epoch's usual
  line replaces; elsewhere (a pod's log, CI) a plain line at most once a minute and once per 10%
  of the epoch, so short epochs add nothing to a log and an hour-long one adds at most 10 lines.

``--quiet`` (no progress queue) and Tune trials (they report one line per trial) get neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["LiveLine", "StepReporter", "format_step"]

EVERY_S = 1.0
"""Rank 0's minimum time between two step messages (tests set it to 0)."""
KIND = "step"
"""The ``kind`` of a step message in the progress queue (epoch messages carry no ``kind``)."""


class StepReporter:
    """Rank 0's in-epoch reporter: at most one queue message per ``every_s`` seconds.

    Args:
        queue: the run's progress queue (``put_nowait``), or None for no reporting.
        epoch, max_epochs: where the run is.
        total_steps: the epoch's training steps.
        world: ranks; windows/s counts all of them (each rank trains as many windows).
        every_s: the minimum time between two messages (default ``EVERY_S``).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, queue: Any | None, *, epoch: int, max_epochs: int, total_steps: int, world: int = 1,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue, self._clock = queue, clock
        self._every = EVERY_S if every_s is None else every_s
        self._fields = {"kind": KIND, "epoch": epoch, "max_epochs": max_epochs, "total": total_steps}
        self._world = world
        self._started = clock()
        self._last = self._started

    def step(self, step: int, n_windows: int) -> None:
        """After step ``step`` (1-based) with ``n_windows`` windows trained so far on this rank."""
        if self._queue is None:
            return
        now = self._clock()
        if now - self._last < self._every or step >= self._fields["total"]:
            return  # the last step is followed by the epoch line itself
        self._last = now
        message = dict(self._fields, step=step, windows=n_windows * self._world, elapsed_s=now - self._started)
        try:
            self._queue.put_nowait(message)
        except Exception:  # a full or closed queue must never stop training
            return


def format_step(message: dict[str, Any]) -> str:
    """``epoch   3/100  step   120/480  25%   12,345 win/s  epoch ETA 0:42``."""
    step, total, elapsed = int(message["step"]), int(message["total"]), float(message["elapsed_s"])
    rate = message["windows"] / max(elapsed, 1e-9)
    left = round(elapsed / max(step, 1) * (total - step))
    return (
        f"epoch {int(message['epoch']):>3}/{int(message['max_epochs'])}  step {step:>{len(str(total))}}/{total}  "
        f"{100 * step / total:3.0f}%  {rate:>9,.0f} win/s  epoch ETA {left // 60}:{left % 60:02d}"
    )


class LiveLine:
    """Draws step messages on ``stream``: rewritten in place on a terminal, plain lines elsewhere.

    Args:
        stream: where it draws (the driver's stdout).
        tty: override terminal detection (tests).
        every_s: a terminal's minimum time between redraws.
        plain_every_s, plain_every_fraction: off a terminal, a line only once both this much
            time and this fraction of the epoch have passed since the epoch began or the last
            line (an epoch under a minute prints none; an hour-long one at most 10).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, stream: TextIO, *, tty: bool | None = None, every_s: float = 1.0,
                 plain_every_s: float = 60.0, plain_every_fraction: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._clock = stream, clock
        self.tty = bool(tty if tty is not None else getattr(stream, "isatty", lambda: False)())
        self._every, self._plain_s, self._plain_fraction = every_s, plain_every_s, plain_every_fraction
        self._last: float | None = None  # terminal: driver time of the last redraw
        self._plain = (0, 0.0, 0)  # off a terminal: (epoch, elapsed_s, step) of the last line
        self._width = 0  # characters of the line now on the terminal (0: none)

    def update(self, message: dict[str, Any]) -> None:
        text = format_step(message)
        if self.tty:
            now = self._clock()
            if self._last is not None and now - self._last < self._every:
                return
            self._last = now
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            epoch, elapsed, step = int(message["epoch"]), float(message["elapsed_s"]), int(message["step"])
            _, last_elapsed, last_step = self._plain if self._plain[0] == epoch else (epoch, 0.0, 0)
            steps_needed = self._plain_fraction * int(message["total"]) - 1e-9  # float-safe "10% of total"
            if elapsed - last_elapsed < self._plain_s or step - last_step < steps_needed:
                return
            self._plain = (epoch, elapsed, step)
            self._stream.write(text + "\n")
        self._stream.flush()

    def clear(self) -> None:
        """Erase the terminal's live line (before the epoch line takes its place)."""
        if self.tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
        self._width = 0
        self._last = None
