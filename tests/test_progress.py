"""Progress: plain lines for batch logs, an in-place status line on a terminal only."""

from __future__ import annotations

import io
import logging

import pytest

from nasheur.progress import EpochLog, interactive


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_an_in_place_status_line_with_eta():
    out, clock = io.StringIO(), Clock()
    progress = EpochLog(total=4, done=1, live=True, stream=out, clock=clock)
    tick = progress.steps(10)
    for step in range(1, 11):
        clock.now = step * 0.5  # 0.5 s per step: each step redraws (more than REDRAW_S apart)
        tick(step)
    text = out.getvalue()
    assert text.count("\r") >= 10 and "epoch 2/4  step 4/10  eta 0:00:03" in text
    assert "step 10/10  eta 0:00:00" in text
    progress.epoch(
        {"epoch": 2, "seconds": 5.0, "train_loss": 1.0, "train_acc": 0.5, "lr": 0.1,
         "images_per_s": 100.0}
    )  # fmt: skip
    assert out.getvalue().endswith("\r\033[K")  # wiped before the epoch's log line


def test_redraws_are_rate_limited():
    out, clock = io.StringIO(), Clock()
    tick = EpochLog(total=1, live=True, stream=out, clock=clock).steps(1000)
    for step in range(1, 1001):
        clock.now = step * 0.001  # 1 ms per step: a redraw every 250 steps, and the last
        tick(step)
    assert 4 <= out.getvalue().count("step ") <= 6


def test_batch_logs_get_no_control_characters_but_log_every_lines(caplog):
    out, clock = io.StringIO(), Clock()
    progress = EpochLog(total=2, live=False, stream=out, clock=clock)
    with caplog.at_level(logging.INFO, logger="nasheur"):
        tick = progress.steps(9, log_every=4)
        for step in range(1, 10):
            clock.now = float(step)
            tick(step)
        report = progress.evaluation(8)
        for done in range(1, 9):
            report(done)
    assert out.getvalue() == ""
    steps = [r.getMessage() for r in caplog.records if "step" in r.getMessage()]
    assert steps == [
        "epoch 1/2  step 4/9  4.0 s  eta 0:00:05 (epoch)",
        "epoch 1/2  step 8/9  8.0 s  eta 0:00:01 (epoch)",
    ]
    assert sum("evaluated" in r.getMessage() for r in caplog.records) == 4


@pytest.mark.parametrize(("env", "expected"), [({}, True), ({"SLURM_JOB_ID": "7"}, False)])
def test_only_a_terminal_outside_slurm_is_interactive(monkeypatch, env, expected):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert interactive(Tty()) is expected
    assert interactive(io.StringIO()) is False
