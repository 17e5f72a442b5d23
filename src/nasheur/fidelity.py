"""Low fidelity (Table 1): layers, channels, batch size and train portion below the baseline.

The first three shape the super-net and the batches, the portion the data split; this module
holds the epoch compensation of the paper's Table 4: "if the number of channels is reduced by
half, we train the model for two times more epochs". Fewer cells, fewer channels and a smaller
train portion each cut an epoch's arithmetic; a smaller batch does not (an epoch still passes
the training share once, up to its last partial batch), so the batch size prolongs nothing. The paper agrees: its Table 4
batch-size cells are the numbers of Table 12's unprolonged batch-size runs.
"""

from __future__ import annotations

from typing import Any

FACTORS = ("layers", "channels", "train_portion")  # the factors that save compute per epoch


def compensation(fidelity: Any) -> float:
    """How many times cheaper the run is than the baseline, factor by factor (1 if none)."""
    ratio = 1.0
    for name in FACTORS:
        base, value = getattr(fidelity.baseline, name), getattr(fidelity, name)
        if value < base:
            ratio *= base / value
    return ratio


def effective_epochs(epochs: int, fidelity: Any) -> int:
    """`protocol.epochs`, prolonged when `fidelity.compensate_epochs` is on."""
    if not fidelity.compensate_epochs:
        return epochs
    return max(1, round(epochs * compensation(fidelity)))
