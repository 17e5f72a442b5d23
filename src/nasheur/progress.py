"""Progress lines: one per epoch (loss, accuracy, images/s, ETA) and a few during evaluation.

Those are plain log lines, as batch logs (SLURM) want them. On an interactive terminal a
status line also counts the steps of the running epoch and the architectures evaluated, in
place (carriage return), and is wiped before each log line.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("nasheur")


def _clock(seconds: float) -> str:
    try:
        return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))
    except OverflowError:  # an estimate past timedelta's range (protocol.epochs=10**20)
        return f"{seconds / 86400 / 365.25:.3g} years"


def interactive(stream: TextIO) -> bool:
    """A person watching: a terminal, and not a SLURM job's output (a file even under srun)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and "SLURM_JOB_ID" not in os.environ and os.environ.get("TERM") != "dumb"


class EpochLog:
    # at most this often the status line is redrawn (seconds): cheap even at 100 steps/s
    REDRAW_S = 0.25

    def __init__(
        self,
        total: int,
        done: int = 0,
        *,
        live: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
        note: Callable[..., None] | None = None,
    ) -> None:
        self.total = total
        self.done = done
        self.seconds: list[float] = []
        # where the job records its progress for others to read (jobguard.Holding.note):
        # after each epoch, and at the evaluation's marks
        self.note = note if note is not None else lambda **progress: None
        self.stream = stream if stream is not None else sys.stderr
        self.live = interactive(self.stream) if live is None else live
        self.clock = clock
        self._drawn = False

    def _status(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Wipe the status line (before a log line)."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def _ticker(self, what: str, total: int) -> Callable[[int], None]:
        """A callback ``done -> None`` that redraws ``what done/total  eta`` on a terminal."""
        if not self.live:
            return lambda done: None
        start = self.clock()
        last = [-self.REDRAW_S]

        def tick(done: int) -> None:
            now = self.clock()
            if now - last[0] < self.REDRAW_S and done < total:
                return
            last[0] = now
            eta = (now - start) / max(done, 1) * (total - done)
            self._status(f"  {what} {done}/{total}  eta {_clock(eta)}")

        return tick

    def steps(self, steps_per_epoch: int, log_every: int = 0) -> Callable[[int], None]:
        """The per-step callback of the next epoch (training steps done so far): the status
        line, and a plain log line every ``log_every`` steps (``run.log_every``; 0: none)."""
        epoch = self.done + 1
        tick = self._ticker(f"epoch {epoch}/{self.total}  step", steps_per_epoch)
        if log_every <= 0:
            return tick
        start = self.clock()

        def step(done: int) -> None:
            tick(done)
            if done % log_every == 0 and done < steps_per_epoch:
                self.clear()
                spent = self.clock() - start
                log.info(
                    "epoch %d/%d  step %d/%d  %.1f s  eta %s (epoch)",
                    epoch,
                    self.total,
                    done,
                    steps_per_epoch,
                    spent,
                    _clock(spent / done * (steps_per_epoch - done)),
                )

        return step

    def epoch(self, entry: dict[str, Any], checkpoint: int | None = None) -> None:
        """An epoch ended; `checkpoint`: the epoch the job's checkpoint holds, where that is
        an earlier one (``run.checkpoint_every_s``): where a resume would start."""
        self.clear()
        self.done = entry["epoch"]
        self.seconds.append(entry["seconds"])
        per_epoch = sum(self.seconds) / len(self.seconds)
        left = per_epoch * (self.total - self.done)
        behind = {} if checkpoint in (None, self.done) else {"checkpoint": checkpoint}
        self.note(epoch=self.done, epochs=self.total, eta_s=round(left, 1), **behind)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.2f%%  lr %.5f  %s img/s  %.1f s  eta %s",
            self.done,
            self.total,
            entry["train_loss"],
            100 * entry["train_acc"],
            entry["lr"],
            f"{entry['images_per_s']:,.0f}",
            entry["seconds"],
            _clock(left),
        )

    def evaluation(self, total: int) -> Callable[[int], None]:
        start = self.clock()
        marks = {max(1, round(total * q)) for q in (0.25, 0.5, 0.75, 1.0)}
        tick = self._ticker("evaluating architecture", total)

        def report(done: int) -> None:
            tick(done)
            if done in marks:
                spent = self.clock() - start
                left = spent / done * (total - done)
                self.note(evaluated=done, of=total, eta_s=round(left, 1))
                self.clear()
                log.info(
                    "evaluated %d/%d architectures  %.1f s  eta %s",
                    done,
                    total,
                    spent,
                    _clock(left),
                )

        return report
