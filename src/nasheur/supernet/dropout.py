"""Dropout (mapping factor): path dropout on the edges of the cells, global dropout before the
classifier. Both act in training only; evaluation never drops anything.

`supernet.path_dropout` is the probability of dropping (not keeping), drawn per sample; kept
outputs are scaled by 1/keep. The paper applies one constant rate at every edge of every cell,
with no schedule over depth or epochs, and so does this.
"""

from __future__ import annotations

import torch


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty(
        (x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype
    ).bernoulli_(keep)
    return x * mask / keep
