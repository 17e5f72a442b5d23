"""OFA kernel (mapping factor): ops that differ only in kernel size share one kernel.

The group keeps the largest kernel. A smaller size k is its centre k x k crop times a learnable
k^2 x k^2 matrix, initialised to the identity (Cai et al., "Once for all"), so at
initialisation the small kernel is exactly the centre crop and gradients from every size reach
the shared kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class OFAKernel(nn.Module):
    def __init__(self, c_out: int, c_in_per_group: int, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.size = max(sizes)
        self.weight = nn.Parameter(torch.empty(c_out, c_in_per_group, self.size, self.size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Conv2d initialises
        self.transforms = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k)) for k in sorted(set(sizes)) if k < self.size}
        )

    def kernel(self, k: int) -> torch.Tensor:
        if k == self.size:
            return self.weight
        s = (self.size - k) // 2
        crop = self.weight[:, :, s : s + k, s : s + k]
        return (crop.reshape(-1, k * k) @ self.transforms[str(k)]).reshape(crop.shape)
