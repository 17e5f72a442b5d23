"""f_proxy of DARTS-NDS: the DARTS stand-alone network (NetworkCIFAR) of one genotype.

Macro structure: stem conv3x3 (3 -> 3C) + BN; ``layers`` cells, the ones at ``layers // 3``
and ``2 * layers // 3`` reduction cells (stride 2, channels doubled); each cell preprocesses
its two inputs to its width C_cell (the earlier one by a factorized reduce when the cell before
it reduced, else by ReLU-conv1x1-BN; the later one by ReLU-conv1x1-BN), runs the genotype's
8 ops (those reading a cell input of a reduction cell at stride 2) and concatenates the nodes
of ``concat``; global average pool, linear. With ``auxiliary=True`` the DARTS auxiliary head
reads the output of the cell at ``2 * layers // 3`` (ReLU, 5x5 average pool of stride 3,
conv1x1 to 128, BN, ReLU, conv2x2 to 768, BN, ReLU, linear); it expects 8x8 maps there, i.e.
32x32 images. :meth:`DartsNetwork.forward` returns the logits; :meth:`forward_aux` returns the
logits and, in training with the head, the auxiliary logits (DARTS weighs their loss 0.4).
Drop path, which DARTS and NDS used while training, is a regulariser of P_proxy and not part of
the network, so it is not here.

Ops: ``sep_conv_kxk`` is twice ReLU-depthwise kxk-pointwise 1x1-BN (the first depthwise
carries the stride); ``dil_conv_kxk`` ReLU-depthwise kxk of dilation 2-pointwise-BN;
``max_pool_3x3`` and ``avg_pool_3x3`` (padding excluded from the average) have no BN;
``skip_connect`` is the identity, or a factorized reduce at stride 2. Convs have no bias; BN is
affine and tracks statistics. A factorized reduce is ReLU, then two stride-2 conv1x1 to half
the width each, one on the input and one on the input shifted by one pixel, concatenated, BN
(an odd size is zero-padded at the end before the shift so that both halves match; even sizes,
the only ones DARTS meets, are untouched).

Macro settings (:attr:`nasheur.spaces.darts.DartsSpace.macro_defaults`): ``channels=36``,
``layers=20``, ``auxiliary=False``, ``num_classes=10``, the DARTS evaluation network of the
known answer (DARTS-V2 at these settings: 3,349,342 parameters, 3,825,768 with the auxiliary
head). NDS trained its samples with its own width and depth per sample; to rebuild one of
them, pass its width and depth as ``channels`` and ``layers``. The paper's super-net uses
C=36 and 12 cells (conf/fidelity/darts_nds.yaml).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nasheur.spaces.darts_genotype import NODES, Cell, Genotype

BNFactory = Callable[[int], nn.Module]

SEP_KERNEL = {"sep_conv_3x3": 3, "sep_conv_5x5": 5}
DIL_KERNEL = {"dil_conv_3x3": 3, "dil_conv_5x5": 5}
DILATION = 2


def reduction_layers(layers: int) -> tuple[int, ...]:
    """The indices of the reduction cells (DARTS: ``layers // 3`` and ``2 * layers // 3``)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def cell_plan(channels: int, layers: int) -> list[tuple[int, int, int, bool, bool]]:
    """Per cell: (C_prev_prev, C_prev, C_cell, reduction, reduction_prev), for a cell output
    of 4 nodes (the multiplier of the super-net and of the default concat)."""
    plan = []
    c_pp, c_p, c = 3 * channels, 3 * channels, channels
    reduction_prev = False
    reductions = reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        plan.append((c_pp, c_p, c, reduction, reduction_prev))
        c_pp, c_p = c_p, NODES * c
        reduction_prev = reduction
    return plan


def relu_conv_bn(c_in: int, c_out: int, bn: BNFactory) -> nn.Sequential:
    """The preprocessing of a cell input: ReLU-conv1x1-BN."""
    return nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False), bn(c_out))


def shifted(x: torch.Tensor) -> torch.Tensor:
    """The input of the second half of a factorized reduce: shifted by one pixel (odd sizes
    padded at the end so that both halves have the same size)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    return x[:, :, 1:, 1:]


def fr_widths(c_out: int) -> tuple[int, int]:
    return c_out // 2, c_out - c_out // 2


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 conv1x1 (input, input shifted by a pixel) concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, bn: BNFactory) -> None:
        super().__init__()
        a, b = fr_widths(c_out)
        self.conv_1 = nn.Conv2d(c_in, a, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, b, 1, stride=2, bias=False)
        self.bn = bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted(x))], dim=1))


def _dw(c: int, k: int, stride: int, dilation: int = 1) -> nn.Conv2d:
    pad = dilation * (k // 2)
    return nn.Conv2d(c, c, k, stride=stride, padding=pad, dilation=dilation, groups=c, bias=False)


def _pw(c: int) -> nn.Conv2d:
    return nn.Conv2d(c, c, 1, bias=False)


def make_op(name: str, c: int, stride: int, bn: BNFactory) -> nn.Module:
    """One DARTS op at width c (stride 2 on a reduction cell's inputs)."""
    if name in SEP_KERNEL:
        k = SEP_KERNEL[name]
        return nn.Sequential(
            nn.ReLU(inplace=False),
            _dw(c, k, stride),
            _pw(c),
            bn(c),
            nn.ReLU(inplace=False),
            _dw(c, k, 1),
            _pw(c),
            bn(c),
        )
    if name in DIL_KERNEL:
        k = DIL_KERNEL[name]
        return nn.Sequential(nn.ReLU(inplace=False), _dw(c, k, stride, DILATION), _pw(c), bn(c))
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, bn)
    raise ValueError(f"unknown DARTS op {name!r}")


class DartsCell(nn.Module):
    def __init__(
        self,
        cell: Cell,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        bn: BNFactory,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_pp, c, bn) if reduction_prev else relu_conv_bn(c_pp, c, bn)
        )
        self.preprocess1 = relu_conv_bn(c_p, c, bn)
        self.ops = nn.ModuleList(
            make_op(op, c, 2 if reduction and inp < 2 else 1, bn) for op, inp in cell.pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(NODES):
            a, b = 2 * node, 2 * node + 1
            states.append(
                self.ops[a](states[self.cell.pairs[a][1]])
                + self.ops[b](states[self.cell.pairs[b][1]])
            )
        return torch.cat([states[i] for i in self.cell.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary head for CIFAR (8x8 input maps)."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    def __init__(
        self,
        genotype: Genotype,
        channels: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if layers < 1 or channels < 1:
            raise ValueError(f"channels and layers must be >= 1, got {channels}, {layers}")
        bn = nn.BatchNorm2d
        self.genotype = genotype
        self.stem = nn.Sequential(
            nn.Conv2d(3, 3 * channels, 3, padding=1, bias=False), bn(3 * channels)
        )
        self.aux_at = 2 * layers // 3
        cells = []
        c_pp, c_p = 3 * channels, 3 * channels
        aux_width = None
        for i, (_, _, c, reduction, reduction_prev) in enumerate(cell_plan(channels, layers)):
            cell = genotype.reduce if reduction else genotype.normal
            cells.append(DartsCell(cell, c_pp, c_p, c, reduction, reduction_prev, bn))
            c_pp, c_p = c_p, len(cell.concat) * c
            if i == self.aux_at:
                aux_width = c_p
        self.cells = nn.ModuleList(cells)
        self.aux_head = AuxiliaryHead(aux_width, num_classes) if auxiliary else None
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, auxiliary logits); the latter only in training with the head, else None."""
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_at and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        return self.classifier(self.global_pool(s1).flatten(1)), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_aux(x)[0]
