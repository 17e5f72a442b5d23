"""Progress lines: one per epoch (loss, accuracy, images/s, ETA) and a few during evaluation."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("nasheur")


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class EpochLog:
    def __init__(self, total: int, done: int = 0) -> None:
        self.total = total
        self.done = done
        self.seconds: list[float] = []

    def epoch(self, entry: dict[str, Any]) -> None:
        self.done = entry["epoch"]
        self.seconds.append(entry["seconds"])
        per_epoch = sum(self.seconds) / len(self.seconds)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.2f%%  lr %.5f  %s img/s  %.1f s  eta %s",
            self.done,
            self.total,
            entry["train_loss"],
            100 * entry["train_acc"],
            entry["lr"],
            f"{entry['images_per_s']:,.0f}",
            entry["seconds"],
            _clock(per_epoch * (self.total - self.done)),
        )

    def evaluation(self, total: int) -> Callable[[int], None]:
        start = time.perf_counter()
        marks = {max(1, round(total * q)) for q in (0.25, 0.5, 0.75, 1.0)}

        def report(done: int) -> None:
            if done in marks:
                spent = time.perf_counter() - start
                log.info(
                    "evaluated %d/%d architectures  %.1f s  eta %s",
                    done,
                    total,
                    spent,
                    _clock(spent / done * (total - done)),
                )

        return report
