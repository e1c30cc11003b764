"""In-epoch progress: rank 0's throttled step messages and the driver's live line (fake clocks)."""

from __future__ import annotations

import io

from tsdl.train.progress import ProgressPrinter
from tsdl.train.step_progress import LiveLine, StepReporter, format_step


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _ListQueue(list):
    def put_nowait(self, item) -> None:
        self.append(item)


def _message(step: int, total: int = 100, *, epoch: int = 1, elapsed_s: float = 1.0) -> dict:
    return {"kind": "step", "epoch": epoch, "max_epochs": 5, "step": step, "total": total,
            "windows": step * 32, "elapsed_s": elapsed_s}


def test_reporter_sends_at_most_one_message_a_second_and_none_for_the_last_step() -> None:
    clock, queue = _Clock(), _ListQueue()
    reporter = StepReporter(queue, epoch=2, max_epochs=5, total_steps=50, world=2, clock=clock)
    for step in range(1, 51):  # a step every 0.1 s: 5 s of training
        clock.now = step * 0.1
        reporter.step(step, n_windows=step * 16)
    assert [m["step"] for m in queue] == [10, 20, 30, 40]  # the 50th is the epoch line's job
    times = [m["elapsed_s"] for m in queue]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:], strict=False))
    assert queue[0] == {"kind": "step", "epoch": 2, "max_epochs": 5, "total": 50, "step": 10,
                        "windows": 10 * 16 * 2, "elapsed_s": 1.0}  # windows of every rank


def test_reporter_without_a_queue_or_with_a_broken_one_never_stops_training() -> None:
    StepReporter(None, epoch=1, max_epochs=1, total_steps=3).step(1, 8)

    class Broken:
        def put_nowait(self, item) -> None:
            raise RuntimeError("queue actor died")

    clock = _Clock()
    reporter = StepReporter(Broken(), epoch=1, max_epochs=1, total_steps=9, clock=clock)
    clock.now = 5.0
    reporter.step(1, 8)  # no exception


def test_step_line_shows_steps_rate_and_epoch_eta() -> None:
    line = format_step(_message(25, 100, elapsed_s=10.0))
    assert line == "epoch   1/5  step  25/100   25%         80 win/s  epoch ETA 0:30"


def test_off_a_terminal_a_plain_line_at_most_once_a_minute_and_once_per_tenth() -> None:
    out = io.StringIO()
    live = LiveLine(out, tty=False)
    assert not live.tty
    for second in range(1, 31):  # a 30 s epoch: nothing
        live.update(_message(second * 3, 90, elapsed_s=second))
    assert out.getvalue() == ""
    for second in range(1, 1200):  # a 20-minute epoch, 1000 steps, a message a second (none for the last)
        live.update(_message(second * 1000 // 1200, 1000, epoch=2, elapsed_s=second))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 9, lines  # one per 10% (2 min each); the epoch line is the tenth
    assert lines[0].startswith("epoch   2/5  step  100/1000   10%")
    for second in range(1, 600):  # a 10-minute epoch of 10 steps: every 10% is a minute apart
        live.update(_message(max(1, second // 60), 10, epoch=3, elapsed_s=second))
    third = out.getvalue().splitlines()[9:]
    assert [line.split()[3] for line in third] == [f"{s}/10" for s in range(1, 10)]


def test_on_a_terminal_one_line_redrawn_at_most_once_a_second_then_replaced_by_the_epoch_line() -> None:
    out, clock = io.StringIO(), _Clock()
    live = LiveLine(out, tty=True, clock=clock)
    for tick in range(1, 26):  # messages every 0.2 s for 5 s
        clock.now = tick * 0.2
        live.update(_message(tick, 30, elapsed_s=clock.now))
    drawn = out.getvalue()
    assert "\n" not in drawn and drawn.count("\r") == 5, repr(drawn)
    live.clear()
    assert out.getvalue().endswith("\r" + " " * len(format_step(_message(21, 30, elapsed_s=4.2))) + "\r")


def test_progress_printer_draws_step_messages_live_and_the_epoch_line_replaces_them() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    printer = ProgressPrinter(out, local=True)
    printer._print(_message(10, 40, elapsed_s=2.0))
    printer._print({"epoch": 1, "max_epochs": 5, "train_loss": 0.5, "val_loss": 0.4, "best_epoch": 1,
                    "lr": 1e-3, "windows_per_s": 1000.0, "epoch_time_s": 8.0})
    text = out.getvalue()
    live = format_step(_message(10, 40, elapsed_s=2.0))
    assert text.startswith("\r" + live + "\r" + " " * len(live) + "\r" + "epoch   1/5  train_loss 0.5000")
    assert text.endswith("\n") and text.count("\n") == 1


def test_a_run_sends_rank_0_step_messages_between_its_epoch_lines(make_config, monkeypatch) -> None:
    """The hook in the step loop: every step but the last of each epoch reaches the driver's
    printer (throttle off), before that epoch's line; `progress=False` (--quiet) sends none."""
    from tsdl import api
    from tsdl.train import step_progress

    seen: list[dict] = []
    monkeypatch.setattr(step_progress, "EVERY_S", 0.0)
    monkeypatch.setattr(ProgressPrinter, "_print", lambda self, message: seen.append(message))
    config = make_config(training__max_epochs=2, tracking__enabled=False)
    api.train(config, progress=True)
    kinds = [(m.get("kind", "epoch"), m["epoch"], m.get("step")) for m in seen]
    assert kinds == [*(("step", 1, s) for s in range(1, 8)), ("epoch", 1, None),
                     *(("step", 2, s) for s in range(1, 8)), ("epoch", 2, None)]
    assert all(m["total"] == 8 and m["windows"] == 32 * m["step"] for m in seen if "kind" in m)
    seen.clear()
    api.train(config, progress=False, run_name="quiet")
    assert seen == []
