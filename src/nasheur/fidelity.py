"""Low fidelity (Table 1): layers, channels, batch size and train portion below the baseline.

The first three shape the super-net and the batches, the portion the data split; this module
holds the epoch compensation of the paper's Table 4: "if the number of channels is reduced by
half, we train the model for two times more epochs". Fewer cells, fewer channels and a smaller
train portion each cut an epoch's arithmetic; a smaller batch does not (an epoch still passes
the training share once, up to its last partial batch), so the batch size prolongs nothing. The paper agrees: its Table 4
batch-size cells are the numbers of Table 12's unprolonged batch-size runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FACTORS = ("layers", "channels", "train_portion")  # the factors that save compute per epoch

# A level relative to a space's baseline, as sweeps write them and tables print them: `base`,
# `base-1`, `base+1`, `base/2`, `base*2`.
LEVEL = re.compile(r"base(?:([-+*/])(\d+))?")


def _field(node: Any, name: str) -> Any:
    return node[name] if isinstance(node, Mapping) else getattr(node, name)


def compensation(fidelity: Any) -> float:
    """How many times cheaper the run is than the baseline, factor by factor (1 if none).
    `fidelity`: the config's `fidelity` section, typed or as a record's plain dict."""
    ratio = 1.0
    for name in FACTORS:
        base, value = _field(_field(fidelity, "baseline"), name), _field(fidelity, name)
        if value < base:
            ratio *= base / value
    return ratio


def effective_epochs(epochs: int, fidelity: Any) -> int:
    """`protocol.epochs`, prolonged when `fidelity.compensate_epochs` is on."""
    if not fidelity.compensate_epochs:
        return epochs
    return max(1, round(epochs * compensation(fidelity)))


def resolve_level(text: str, base: int | float) -> int | float:
    """The value that level `text` names against `base` (``base/2`` of 36 is 18, of 0.75 is
    0.375). ValueError for text that is no level, a division by 0, and a whole baseline that
    does not divide: ``base/8`` of 36 names no width, and rounding it would run another
    experiment than the one asked for."""
    match = LEVEL.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a level (base, base-1, base+1, base/2, base*2)")
    op, n = match.group(1), int(match.group(2) or 0)
    if op is None:
        return base
    if op == "/":
        if n == 0:
            raise ValueError(f"{text}: division by 0")
        if isinstance(base, int):
            if base % n:
                raise ValueError(f"{text} of {base} is not a whole number")
            return base // n
        return base / n
    return {"-": base - n, "+": base + n, "*": base * n}[op]


def level_of(value: Any, base: Any, how: str) -> Any:
    """`value` as a level of the whole `base` (``base``, ``base-1``, ``base+1`` where `how` is
    ``-``; ``base/2``, ``base*2`` where it is ``/``), or `value` itself where it is no such
    level of whole positive numbers. The inverse of :func:`resolve_level`."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (value, base)):
        return value
    if value == base:
        return "base"
    if how == "-":
        return f"base{value - base:+d}"
    if base % value == 0:
        return f"base/{base // value}"
    if value % base == 0:
        return f"base*{value // base}"
    return value
