"""f_proxy of NAS-Bench-201: the stand-alone network the benchmark trained for each cell.

Stem conv3x3 + BN; N cells at C channels, a residual reduction block, N cells at 2C, a
reduction block, N cells at 4C; BN-ReLU, global average pool, linear. Conv ops are
ReLU-Conv-BN. Its parameter count equals the benchmark's for every cell (1,531,546 for
all-`nor_conv_3x3`, 73,306 for all-`none`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasheur.spaces.nb201 import EDGES, NONE, OPS, NB201Arch

BNFactory = Callable[[int], nn.Module]


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, bn: BNFactory) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        bn(c_out),
    )


def avg_pool_3x3() -> nn.Module:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def make_op(name: str, channels: int, bn: BNFactory) -> nn.Module | None:
    """One cell op at stride 1 and constant width; None for `none` (contributes nothing)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return avg_pool_3x3()
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[name]
    return relu_conv_bn(channels, channels, kernel, 1, bn)


class ResidualReduction(nn.Module):
    """The reduction block between stages: a stride-2 basic residual block."""

    def __init__(self, c_in: int, c_out: int, bn: BNFactory) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(c_in, c_out, 3, 2, bn)
        self.conv_b = relu_conv_bn(c_out, c_out, 3, 1, bn)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def stage_widths(channels: int, layers: int) -> list[int | tuple[int, int]]:
    """The macro skeleton: an int is a cell of that width, a pair a reduction (in, out)."""
    plan: list[int | tuple[int, int]] = []
    for stage in range(3):
        width = channels * 2**stage
        if stage:
            plan.append((width // 2, width))
        plan.extend([width] * layers)
    return plan


class NB201Cell(nn.Module):
    def __init__(self, arch: NB201Arch, channels: int, bn: BNFactory) -> None:
        super().__init__()
        self.arch = arch
        self.edges = nn.ModuleList(
            [make_op(OPS[o], channels, bn) or nn.Identity() for o in arch.ops]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, 4):
            total = torch.zeros_like(x)
            for e, (dst, src) in enumerate(EDGES):
                if dst == node and self.arch.ops[e] != NONE:
                    total = total + self.edges[e](nodes[src])
            nodes.append(total)
        return nodes[-1]


class NB201Network(nn.Module):
    def __init__(
        self, arch: NB201Arch, channels: int = 16, layers: int = 5, num_classes: int = 10
    ) -> None:
        super().__init__()
        bn = nn.BatchNorm2d
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), bn(channels))
        blocks: list[nn.Module] = []
        for item in stage_widths(channels, layers):
            blocks.append(
                ResidualReduction(*item, bn)
                if isinstance(item, tuple)
                else NB201Cell(arch, item, bn)
            )
        self.blocks = nn.Sequential(*blocks)
        width = channels * 4
        self.head = nn.Sequential(
            bn(width), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))
