"""Argument types shared by the project's command lines (`argparse` names the option in the
error it prints, and exits with status 2)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def at_least(low: int) -> Callable[[str], int]:
    """An integer option's type: an integer >= ``low``."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return integer


# a 95% percentile interval's ends are the 2.5% and 97.5% quantiles of the resamples: with
# fewer than 40 neither has a resample beyond it, and with 1 the "interval" is that one value
MIN_BOOTSTRAP = 40


def bootstrap_count(text: str) -> int:
    """The ``--bootstrap`` option's type: 0 (no interval) or at least :data:`MIN_BOOTSTRAP`."""
    value = at_least(0)(text)
    if 0 < value < MIN_BOOTSTRAP:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no interval) or at least {MIN_BOOTSTRAP} (a 95% interval's ends need "
            f"resamples beyond them), got {value}"
        )
    return value


def _number(text: str, ok: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def rate(text: str) -> float:
    """A weight decay: a finite number >= 0."""
    return _number(text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def learning_rate(text: str) -> float:
    """A learning rate: a finite number > 0 (at 0 nothing trains), as ``protocol.lr``."""
    return _number(text, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def bin_width(text: str) -> float:
    """A sparse Kendall tau bin width: a fraction in (0, 1), as ``metrics.skdt_threshold``."""
    # accuracies are fractions: a bin of 1 holds them all
    return _number(text, lambda v: 0 < v < 1, "a fraction in (0, 1)")


def _under_a_folder(text: str) -> None:
    # the first of the path's parents that exists must be a folder (else nothing is writable)
    for parent in Path(text).parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            return


def file_path(text: str) -> str:
    """A file to write: not empty, not an existing folder, not inside a file. A leading ``~``
    is the home folder, as where a shell expands it (``--out=~/x`` it leaves as it is)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expects a file path, got an empty one")
    text = os.path.expanduser(text)
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    _under_a_folder(text)
    return text


def folder_path(text: str) -> str:
    """A folder to write into (made if missing): not empty, not an existing file, not inside
    a file. A leading ``~`` is the home folder (:func:`file_path`)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expects a folder, got an empty path")
    text = os.path.expanduser(text)
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    _under_a_folder(text)
    return text
