"""OFA kernel (mapping factor): ops that differ only in kernel size share one kernel.

The group keeps the largest kernel. A smaller size k is its centre k x k crop times a learnable
k^2 x k^2 matrix, initialised to the identity (Cai et al., "Once for all"), so at
initialisation the small kernel is exactly the centre crop and gradients from every size reach
the shared kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

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


class ConvOps(nn.Module):
    """The conv ops of a position whose ops differ only in kernel size (NB101, NB201): their
    kernels, one OFA kernel for all (``supernet.ofa_kernel``) or one per op, and a BN per op
    (``make_bn``, the space's BN with its WSBN slots)."""

    def __init__(
        self,
        channels: int,
        kernel_of: Mapping[str, int],
        ofa: bool,
        make_bn: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        self.kernel_of = dict(kernel_of)
        self.ofa = ofa  # a flag, not hasattr: a missing module attribute costs an exception
        if ofa:
            self.kernel = OFAKernel(channels, channels, tuple(kernel_of.values()))
        else:
            self.convs = nn.ParameterDict(
                {
                    name: nn.Conv2d(channels, channels, k, bias=False).weight
                    for name, k in kernel_of.items()
                }
            )
        self.bns = nn.ModuleDict({name: make_bn() for name in kernel_of})

    def weight(self, op: str) -> torch.Tensor:
        if self.ofa:
            return self.kernel.kernel(self.kernel_of[op])
        return self.convs[op]
