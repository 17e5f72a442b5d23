"""f_ws for NAS-Bench-201: the super-net whose single paths are the benchmark's cells.

The macro skeleton is f_proxy's (:mod:`nasheur.spaces.nb201_net`) at the fidelity's channels
and layers. Each cell holds *op sets* (one module per candidate op); `supernet.ops_on` decides
which edges share an op set:

* ``edge``: one op set per edge (6 per cell), the benchmark's own mapping;
* ``node``: one op set per destination node (3 per cell), shared by the node's incoming edges.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from nasheur.spaces.nb201 import EDGES, NONE, OPS, NB201Arch
from nasheur.spaces.nb201_net import ResidualReduction, make_op, stage_widths
from nasheur.supernet.batchnorm import SuperBatchNorm2d

# for each edge (EDGES order), the op set it uses
POSITION_OF_EDGE: dict[str, tuple[int, ...]] = {
    "edge": tuple(range(len(EDGES))),
    "node": tuple(dst - 1 for dst, _ in EDGES),
}


class SuperCell(nn.Module):
    def __init__(self, channels: int, ops_on: str, bn) -> None:
        super().__init__()
        self.position = POSITION_OF_EDGE[ops_on]
        # `none` never runs: its slot holds an Identity so that op indices line up with OPS
        self.op_sets = nn.ModuleList(
            nn.ModuleList(make_op(name, channels, bn) or nn.Identity() for name in OPS)
            for _ in range(max(self.position) + 1)
        )

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        nodes = [x]
        for node in range(1, 4):
            total = None
            for e, (dst, src) in enumerate(EDGES):
                op = arch.ops[e]
                if dst != node or op == NONE:
                    continue
                y = self.op_sets[self.position[e]][op](nodes[src])
                total = y if total is None else total + y
            # a node with only `none` inputs is zero; later ops still run on it, as in f_proxy
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]


class NB201SuperNet(nn.Module):
    def __init__(
        self,
        *,
        channels: int,
        layers: int,
        num_classes: int,
        ops_on: str,
        bn_affine: bool,
        bn_track: bool,
    ) -> None:
        super().__init__()
        bn = partial(SuperBatchNorm2d, affine=bn_affine, track=bn_track)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), bn(channels))
        self.blocks = nn.ModuleList(
            ResidualReduction(*item, bn) if isinstance(item, tuple) else SuperCell(item, ops_on, bn)
            for item in stage_widths(channels, layers)
        )
        width = channels * 4
        self.head = nn.Sequential(
            bn(width), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, arch) if isinstance(block, SuperCell) else block(x)
        return self.classifier(self.head(x))
