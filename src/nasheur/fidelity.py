"""Low fidelity (Table 1): layers, channels, batch size and train portion below the baseline.

The first three shape the super-net and the batches, the portion the data split; this module
holds the one rule they share, the epoch compensation of the paper's Table 4: "if the number of
channels is reduced by half, we train the model for two times more epochs".
"""

from __future__ import annotations

from typing import Any

FACTORS = ("layers", "channels", "batch_size", "train_portion")


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
