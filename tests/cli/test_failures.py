"""The one failure line: bounded length, the right out-of-memory hint, SIGTERM told from Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tsdl.cli.failures import MAX_LINE, Terminated, failure_line, sigterm_interrupts
from tsdl.errors import ConfigError


def test_a_huge_message_is_cut_and_keeps_its_fix() -> None:
    line, code = failure_line(ConfigError("bad value " + "x" * 10**6, hint="use a smaller one"))
    assert code == 2 and len(line) <= MAX_LINE
    assert line.endswith("(fix: use a smaller one)") and "chars cut]" in line


@pytest.mark.parametrize(("command", "batch_hint"), [("train", True), ("tune", True), ("config", False),
                                                      ("check-data", False), ("render", False), (None, False)])
def test_out_of_memory_names_batch_size_only_where_batches_exist(command: str | None, batch_hint: bool) -> None:
    line, code = failure_line(MemoryError(), command)
    assert code == 2 and line.startswith("error: out of memory")
    assert ("training.batch_size" in line) is batch_hint


def test_a_sigterm_that_reaches_the_cli_as_a_plain_keyboardinterrupt_is_still_sigterm() -> None:
    """Ray's blocking calls raise KeyboardInterrupt() whatever the signal handler raised."""
    with sigterm_interrupts():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert failure_line(KeyboardInterrupt()) == (
            "terminated (SIGTERM): finished epochs and trials are kept (continue with --resume)", 143)
    with sigterm_interrupts():  # a new command starts clean: Ctrl-C is Ctrl-C
        assert failure_line(KeyboardInterrupt())[1] == 130
