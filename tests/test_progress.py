"""Progress: plain lines for batch logs, an in-place status line on a terminal only."""

from __future__ import annotations

import io
import logging

import pytest

from nasheur.progress import EpochLog, _clock, interactive


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


def test_the_epoch_line_says_accuracy_in_percent_and_eta_from_the_mean_epoch(caplog):
    """The epoch's log line: accuracy as a percentage, and the ETA as the mean time of the
    epochs done so far times the epochs left (hand count: epochs of 4 s and 8 s, mean 6 s,
    2 of 5 left after epoch 3: 0:00:12)."""
    progress = EpochLog(total=5, done=1, live=False, stream=io.StringIO(), clock=Clock())
    entry = {"train_loss": 1.25, "lr": 0.05, "images_per_s": 1234.4}
    with caplog.at_level(logging.INFO, logger="nasheur"):
        progress.epoch({**entry, "epoch": 2, "seconds": 4.0, "train_acc": 0.5})
        progress.epoch({**entry, "epoch": 3, "seconds": 8.0, "train_acc": 0.625})
    assert caplog.records[-1].getMessage() == (
        "epoch 3/5  loss 1.2500  acc 62.50%  lr 0.05000  1,234 img/s  8.0 s  eta 0:00:12"
    )


def test_the_evaluation_lines_give_the_time_left_not_the_total(caplog):
    """The evaluation's quarter lines: spent / done * (total - done) is left (hand count:
    2 s per architecture, 8 architectures: 12 s left after 2, none after 8)."""
    clock = Clock()
    notes: list[dict] = []
    progress = EpochLog(
        total=1, live=False, stream=io.StringIO(), clock=clock, note=lambda **p: notes.append(p)
    )
    with caplog.at_level(logging.INFO, logger="nasheur"):
        report = progress.evaluation(8)
        for done in range(1, 9):
            clock.now = 2.0 * done
            report(done)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "evaluated 2/8 architectures  4.0 s  eta 0:00:12"
    assert said[-1] == "evaluated 8/8 architectures  16.0 s  eta 0:00:00"
    # and the job's lock file says the same time left, for `results show`
    assert [(n["evaluated"], n["eta_s"]) for n in notes] == [(2, 12.0), (4, 8.0), (6, 4.0), (8, 0)]


def test_a_log_every_line_is_not_repeated_by_the_epochs_last_step(caplog):
    """With run.log_every dividing the steps of an epoch, its last step gets no step line:
    the epoch's own line follows at once."""
    clock = Clock()
    progress = EpochLog(total=1, live=False, stream=io.StringIO(), clock=clock)
    with caplog.at_level(logging.INFO, logger="nasheur"):
        tick = progress.steps(8, log_every=4)
        for step in range(1, 9):
            clock.now = float(step)
            tick(step)
    assert [r.getMessage() for r in caplog.records] == [
        "epoch 1/1  step 4/8  4.0 s  eta 0:00:04 (epoch)"
    ]


def test_the_last_step_is_drawn_however_soon_it_comes():
    """Redraws are rate-limited, but the final count of an epoch (and of an evaluation) is
    always drawn: a status line left at 3/4 would say the work stopped short."""
    out, clock = io.StringIO(), Clock()
    progress = EpochLog(total=1, live=True, stream=out, clock=clock)
    tick = progress.steps(4)
    for step in range(1, 5):
        clock.now = step * 0.01  # far under REDRAW_S apart
        tick(step)
    assert out.getvalue().count("step ") == 2 and "step 4/4" in out.getvalue()
    report = progress.evaluation(3)
    for done in range(1, 4):
        report(done)
    assert "evaluating architecture 3/3" in out.getvalue()


def test_a_dumb_terminal_gets_no_status_line(monkeypatch):
    """TERM=dumb (Emacs shells, some CI consoles) cannot move the cursor back: plain lines."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("TERM", "dumb")
    assert interactive(Tty()) is False


def test_an_estimate_past_a_timedeltas_range_is_said_in_years():
    # protocol.epochs=10**20 is valid config; its first epoch's estimate must not end the job
    assert _clock(3661.4) == "1:01:01"
    assert _clock(1e20) == "3.17e+12 years"
