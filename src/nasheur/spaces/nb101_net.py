"""f_proxy of NAS-Bench-101: the stand-alone network the benchmark trained for each cell.

Stem conv3x3 (3 -> C) + BN + ReLU; 3 stacks of `layers` cells; a 2x2 max-pool between stacks,
the channels doubled by the first cell of stacks 2 and 3; global average pool; linear. In a
cell of c_in -> c_out channels the interior vertex widths follow the NB101 rule
(:func:`nasheur.spaces.nb101_cell.vertex_widths`); a vertex sums its inputs, those from the cell
input projected by conv1x1-BN-ReLU to its width, those from other vertices truncated to it
(their first channels), then applies its op (conv-BN-ReLU, or a 3x3 max-pool that keeps the
width); the output concatenates the vertices feeding it and adds the projected input when
input->output is an edge (or is that projection alone when no interior vertex feeds it).
Convolutions have no bias; BN uses PyTorch's defaults (momentum 0.1, eps 1e-5), as the
super-net's BNs do. The benchmark's TF code decays its running statistics by 0.997 per batch,
PyTorch's momentum 0.003; passing 0.997 to PyTorch, as the authors' super-net code did, would
keep little more than the last batch (spec section 7). The trainable-parameter
counts equal the benchmark's: 2,694,282 and 6,315,018 for the two specs of spec section 1.
"""

from __future__ import annotations

import torch
from torch import nn

from nasheur.spaces.nb101_cell import (
    CONV1X1,
    CONV3X3,
    MAXPOOL3X3,
    NB101Spec,
    output_feeders,
    vertex_widths,
)

CONV_KERNEL = {CONV3X3: 3, CONV1X1: 1}


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),
    )


def max_pool_3x3() -> nn.Module:
    # stride 1, 'same' padding; PyTorch pads a max-pool with -inf, as TF's 'same' does
    return nn.MaxPool2d(3, stride=1, padding=1)


def downsample() -> nn.Module:
    """The 2x2 max-pool between stacks ('same' padding: odd sizes round up)."""
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


def stack_plan(channels: int, layers: int) -> list[tuple[int, int] | None]:
    """The macro skeleton: a pair is a cell (c_in, c_out), None the max-pool between stacks."""
    plan: list[tuple[int, int] | None] = []
    c_in = channels
    for stack in range(3):
        c_out = channels * 2**stack
        if stack:
            plan.append(None)
        for _ in range(layers):
            plan.append((c_in, c_out))
            c_in = c_out
    return plan


def predecessors(spec: NB101Spec, v: int) -> list[int]:
    return [u for u in range(v) if spec.matrix[u][v]]


class NB101Cell(nn.Module):
    def __init__(self, spec: NB101Spec, c_in: int, c_out: int) -> None:
        super().__init__()
        self.spec = spec
        n = spec.num_vertices
        self.widths = vertex_widths(spec.matrix, c_in, c_out)
        self.proj = nn.ModuleDict(
            {
                str(v): conv_bn_relu(c_in, self.widths[v], 1)
                for v in range(1, n)
                if spec.matrix[0][v]
            }
        )
        self.ops = nn.ModuleDict(
            {
                str(v): max_pool_3x3()
                if spec.ops[v] == MAXPOOL3X3
                else conv_bn_relu(self.widths[v], self.widths[v], CONV_KERNEL[spec.ops[v]])
                for v in range(1, n - 1)
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec, n = self.spec, self.spec.num_vertices
        outs = [x]
        for v in range(1, n - 1):
            width = self.widths[v]
            total = None
            for u in predecessors(spec, v):
                term = self.proj[str(v)](x) if u == 0 else outs[u][:, :width]
                total = term if total is None else total + term
            outs.append(self.ops[str(v)](total))
        parts = [outs[v] for v in output_feeders(spec.matrix)]
        if not parts:
            return self.proj[str(n - 1)](x)
        y = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        if spec.matrix[0][n - 1]:
            y = y + self.proj[str(n - 1)](x)
        return y


class NB101Network(nn.Module):
    def __init__(
        self, spec: NB101Spec, channels: int = 128, layers: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, channels, 3)
        self.blocks = nn.Sequential(
            *(
                downsample() if item is None else NB101Cell(spec, *item)
                for item in stack_plan(channels, layers)
            )
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))))
