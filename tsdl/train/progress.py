"""Live per-epoch progress on the driver, fed by rank 0 through a Ray queue (or a local one
when the run trains in the driver itself, see ``tsdl.train.in_process``).

Workers' stdout is not forwarded to the terminal (Ray's own actor logs are noise for a CLI user),
so the driver prints the lines itself: epoch, losses, lr, throughput and an ETA; inside an epoch,
rank 0's step messages draw a live line (``tsdl.train.step_progress``).
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any, TextIO

from tsdl.train.step_progress import KIND as STEP_KIND
from tsdl.train.step_progress import LiveLine

__all__ = ["ProgressPrinter", "format_epoch"]


def format_epoch(metrics: dict[str, Any], mean_epoch_s: float) -> str:
    """One progress line; `*` marks a new best val_loss."""
    max_epochs = int(metrics["max_epochs"])
    epoch = int(metrics["epoch"])
    eta_min = mean_epoch_s * (max_epochs - epoch) / 60
    best = " *" if int(metrics["best_epoch"]) == epoch else "  "
    return (
        f"epoch {epoch:>3}/{max_epochs}  train_loss {metrics['train_loss']:.4f}  "
        f"val_loss {metrics['val_loss']:.4f}{best}  lr {metrics['lr']:.2e}  "
        f"{metrics['windows_per_s']:>9,.0f} win/s  {metrics['epoch_time_s']:5.1f}s  "
        f"ETA <= {eta_min:.1f} min"
    )


class ProgressPrinter:
    """Drains a ``ray.util.queue.Queue`` in a background thread and prints each epoch.

    Args:
        stream: where lines go (stdout).
        local: the workers run in this process: use a ``queue.Queue`` (no Ray needed).
    """

    def __init__(self, stream: TextIO | None = None, *, local: bool = False) -> None:
        if local:
            self.queue: Any = queue.Queue()
        else:
            from ray.util.queue import Queue

            self.queue = Queue(actor_options={"num_cpus": 0})
        self._stream = stream or sys.stdout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tsdl-progress", daemon=True)
        self._epoch_times: list[float] = []
        self._live = LiveLine(self._stream)  # in-epoch progress (tsdl.train.step_progress)

    def __enter__(self) -> ProgressPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()
        self._live.clear()
        if hasattr(self.queue, "shutdown") and not isinstance(self.queue, queue.Queue):
            self.queue.shutdown()

    def _run(self) -> None:
        empty: tuple[type[BaseException], ...] = (queue.Empty,)
        if not isinstance(self.queue, queue.Queue):
            from ray.util.queue import Empty

            empty = (Empty, queue.Empty)
        while not self._stop.is_set():
            try:
                self._print(self.queue.get(timeout=0.5))
            except empty:
                continue
            except Exception:  # the queue actor went away with Ray; nothing left to print
                return

    def _drain(self) -> None:
        try:
            while not self.queue.empty():
                self._print(self.queue.get_nowait())
        except Exception:
            return

    def _print(self, metrics: dict[str, Any]) -> None:
        if metrics.get("kind") == STEP_KIND:
            self._live.update(metrics)
            return
        self._live.clear()  # the epoch's line takes the live line's place
        self._epoch_times.append(float(metrics["epoch_time_s"]))
        mean = sum(self._epoch_times) / len(self._epoch_times)
        print(format_epoch(metrics, mean), file=self._stream, flush=True)
