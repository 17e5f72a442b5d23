"""f_ws for DARTS-NDS: the super-net whose single paths are DARTS genotypes.

The macro skeleton is f_proxy's (:mod:`nasheur.spaces.darts_net`) at the fidelity's channels
(``spec.channels``, the initial C) and depth (``spec.layers``, the total number of cells, the
ones at ``layers // 3`` and ``2 * layers // 3`` reducing): stem conv3x3 (3 -> 3C) + BN, cells
with their own weights (every layer its own normal or reduction cell, as a path of a DARTS
network has), global pool, global dropout, linear. There is no auxiliary head.

A cell preprocesses its two inputs as f_proxy does and holds *op sets*, each with all 7 DARTS
ops; ``supernet.ops_on`` decides which op set a term ``op(input)`` of a node uses:

* ``edge``: one op set per input -> node edge; node i has i + 2 possible inputs, so a cell has
  2 + 3 + 4 + 5 = 14 op sets (DARTS's own search network);
* ``node``: one op set per op slot (two per node, 8 per cell), serving whatever input the slot
  reads. In a reduction cell a slot's convs then run at stride 2 on the cell inputs and at
  stride 1 on intermediate nodes, with the same weights; the stride-2 skip (a factorized
  reduce) is used on the cell inputs only.

Which slot is which is the order of the genotype's terms: :meth:`Genotype.key` order for
parsed keys (the pool), the drawn order for sampled ones (see :mod:`nasheur.spaces.darts`).
A node that reads one input twice uses that edge's op set twice with ops on edges (with the
same op: the same weights twice).

Pools carry **no BN**. DARTS's search network appends a non-affine BN to its pools to balance
the parameter-free ops inside a softmax-weighted mixture of all ops; a single-path super-net
has no mixture, and without that BN every path computes exactly its f_proxy network (the
tests copy a path's weights into f_proxy and get the same outputs, with either mapping). The
super-net always concatenates the four nodes, so that widths stay fixed; nodes outside a
genotype's ``concat`` contribute zeros (in the NDS DARTS space every cell concatenates nodes
2..5, so this does not arise on its ground truth).

Factors, each at one place:

* OFA kernel: ``sep_conv_3x3``/``sep_conv_5x5`` share their convs (each of the two depthwise
  kernels is an :class:`OFAKernel` of sizes 3 and 5, and the two pointwise convs are common),
  and so do ``dil_conv_3x3``/``dil_conv_5x5``; BNs stay per op, as in the NB201 super-net.
* WSBN: every BN of an op (the two of a sep conv, the one of a dil conv, the one of the
  stride-2 skip) keeps one slot, affine parameters and statistics, per input id that the op
  set serves. With ops on edges every op set serves a single input, so WSBN changes nothing
  there (the paper's best DARTS-NDS setting, Table 14, has WSBN on with ops on edges); the
  job notes it in its log at info level, not as a warning.
* Path dropout (``drop_path``) on every op output, per sample, training only, scaled by 1/keep;
  global dropout before the classifier.
* ``bn_affine`` / ``bn_track`` on every BN (stem, preprocessing, ops): each is a
  :class:`SuperBatchNorm2d`.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from nasheur.spaces.darts import SLOTS, as_genotype
from nasheur.spaces.darts_genotype import DEFAULT_CONCAT, NODES, Cell
from nasheur.spaces.darts_net import (
    DIL_KERNEL,
    DILATION,
    SEP_KERNEL,
    FactorizedReduce,
    cell_plan,
    fr_widths,
    relu_conv_bn,
    shifted,
)
from nasheur.supernet import SupernetSpec
from nasheur.supernet.batchnorm import SuperBatchNorm2d, WSBatchNorm, slot_map
from nasheur.supernet.dropout import drop_path
from nasheur.supernet.ofa import OFAKernel

CELL_INPUTS = (0, 1)
SEP_PARTS = ("dw1", "pw1", "dw2", "pw2")
OFA_SIZES = (3, 5)


def edge_index(node: int, inp: int) -> int:
    """The edge input -> node in the order (node 0: inputs 0, 1; node 1: 0, 1, 2; ...)."""
    return node * (node + 3) // 2 + inp


NUM_EDGES = edge_index(NODES, 0)  # 14


def position_sources(ops_on: str) -> list[tuple[int, ...]]:
    """For each op set of a cell, the inputs it may read."""
    if ops_on == "edge":
        return [(inp,) for node in range(NODES) for inp in range(node + 2)]
    if ops_on == "node":
        return [tuple(range(slot // 2 + 2)) for slot in range(SLOTS)]
    raise ValueError(f"ops_on={ops_on!r}: one of edge, node")


# the BNs of the conv ops: a sep conv has two (after each pointwise conv), a dil conv one
BN_PARTS = {**{name: ("1", "2") for name in SEP_KERNEL}, **{name: ("",) for name in DIL_KERNEL}}


def position_of(ops_on: str, slot: int, inp: int) -> int:
    """The op set used by op slot `slot` (node slot // 2) when it reads input `inp`."""
    return edge_index(slot // 2, inp) if ops_on == "edge" else slot


def _conv_weight(c_out: int, c_in_per_group: int, k: int) -> nn.Parameter:
    """A conv weight initialised as nn.Conv2d initialises it (depthwise: c_in_per_group 1)."""
    weight = nn.Parameter(torch.empty(c_out, c_in_per_group, k, k))
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight


class OpSet(nn.Module):
    """The 7 DARTS ops of one position at width c, for the inputs `sources`; the ones in
    `strided` (a reduction cell's inputs) are read at stride 2."""

    def __init__(
        self, c: int, sources: tuple[int, ...], strided: tuple[int, ...], spec: SupernetSpec
    ) -> None:
        super().__init__()
        self.channels = c
        self.strided = frozenset(strided)

        self.slot, n_slots = slot_map(sources, spec.wsbn)
        bn = partial(WSBatchNorm, c, affine=spec.bn_affine, track=spec.bn_track)
        self.ofa = spec.ofa_kernel
        if self.ofa:
            self.sep_dw = nn.ModuleList(OFAKernel(c, 1, OFA_SIZES) for _ in range(2))
            self.dil_dw = OFAKernel(c, 1, OFA_SIZES)
            self.pw = nn.ParameterDict(
                {
                    "sep_conv_pw1": _conv_weight(c, c, 1),
                    "sep_conv_pw2": _conv_weight(c, c, 1),
                    "dil_conv_pw": _conv_weight(c, c, 1),
                }
            )
        else:
            convs: dict[str, nn.Parameter] = {}
            for name, k in SEP_KERNEL.items():
                for part in SEP_PARTS:
                    depthwise = part.startswith("dw")
                    convs[f"{name}_{part}"] = _conv_weight(
                        c, 1 if depthwise else c, k if depthwise else 1
                    )
            for name, k in DIL_KERNEL.items():
                convs[f"{name}_dw"] = _conv_weight(c, 1, k)
                convs[f"{name}_pw"] = _conv_weight(c, c, 1)
            self.convs = nn.ParameterDict(convs)
        self.bns = nn.ModuleDict(
            {
                f"{name}_bn{which}": bn(n_slots)
                for name, parts in BN_PARTS.items()
                for which in parts
            }
        )
        reduced = tuple(s for s in sources if s in self.strided)
        if reduced:  # the stride-2 skip: a factorized reduce, BN slots per strided input
            self.fr_slot, n_fr = slot_map(reduced, spec.wsbn)
            a, b = fr_widths(c)
            self.fr_convs = nn.ParameterDict(
                {"conv_1": _conv_weight(a, c, 1), "conv_2": _conv_weight(b, c, 1)}
            )
            self.fr_bn = bn(n_fr)
        # the BN (WSBN slot) of each op, part and input, looked up once, as in NB201's op sets
        self.bn_at: dict[tuple[str, str, int], nn.Module] = {
            (name, which, src): self.bns[f"{name}_bn{which}"].slots[self.slot[src]]
            for name, parts in BN_PARTS.items()
            for which in parts
            for src in sources
        }
        for src in reduced:
            self.bn_at["skip_connect", "", src] = self.fr_bn.slots[self.fr_slot[src]]

    def weight(self, name: str, part: str) -> torch.Tensor:
        """The conv weight of `part` (dw1, pw1, dw2, pw2 of a sep conv; dw, pw of a dil conv)."""
        if not self.ofa:
            return self.convs[f"{name}_{part}"]
        family = "sep_conv" if name in SEP_KERNEL else "dil_conv"
        if part.startswith("pw"):
            return self.pw[f"{family}_{part}"]
        k = SEP_KERNEL.get(name) or DIL_KERNEL[name]
        kernel = self.dil_dw if family == "dil_conv" else self.sep_dw[int(part[-1]) - 1]
        return kernel.kernel(k)

    def bn_of(self, name: str, src: int, which: str = "") -> nn.Module:
        """The BN slot that op `name` uses reading input `src` (which: 1 or 2 for sep convs)."""
        return self.bn_at[name, which, src]

    def reads_relu(self, name: str, src: int) -> bool:
        """Whether op `name` starts with ReLU of its input `src` (the convs, the strided skip)."""
        return (
            name in SEP_KERNEL
            or name in DIL_KERNEL
            or (name == "skip_connect" and src in self.strided)
        )

    def forward(
        self, x: torch.Tensor, name: str, src: int, x_relu: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Op `name` on input `src`; `x_relu`, ReLU(x) if the caller has it already."""
        stride = 2 if src in self.strided else 1
        c = self.channels
        if x_relu is None and self.reads_relu(name, src):
            x_relu = F.relu(x)
        if name in SEP_KERNEL:
            k = SEP_KERNEL[name]
            y = F.conv2d(x_relu, self.weight(name, "dw1"), stride=stride, padding=k // 2, groups=c)
            y = self.bn_at[name, "1", src](F.conv2d(y, self.weight(name, "pw1")))
            y = F.conv2d(F.relu(y), self.weight(name, "dw2"), padding=k // 2, groups=c)
            return self.bn_at[name, "2", src](F.conv2d(y, self.weight(name, "pw2")))
        if name in DIL_KERNEL:
            k = DIL_KERNEL[name]
            y = F.conv2d(
                x_relu,
                self.weight(name, "dw"),
                stride=stride,
                padding=DILATION * (k // 2),
                dilation=DILATION,
                groups=c,
            )
            return self.bn_at[name, "", src](F.conv2d(y, self.weight(name, "pw")))
        if name == "max_pool_3x3":
            return F.max_pool2d(x, 3, stride=stride, padding=1)
        if name == "avg_pool_3x3":
            return F.avg_pool2d(x, 3, stride=stride, padding=1, count_include_pad=False)
        if name == "skip_connect":
            if stride == 1:
                return x
            x = x_relu
            y = torch.cat(
                [
                    F.conv2d(x, self.fr_convs["conv_1"], stride=2),
                    F.conv2d(shifted(x), self.fr_convs["conv_2"], stride=2),
                ],
                dim=1,
            )
            return self.bn_at[name, "", src](y)
        raise ValueError(f"unknown DARTS op {name!r}")


class SuperCell(nn.Module):
    def __init__(
        self,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        spec: SupernetSpec,
    ) -> None:
        super().__init__()
        bn = partial(SuperBatchNorm2d, affine=spec.bn_affine, track=spec.bn_track)
        self.reduction = reduction
        self.ops_on = spec.ops_on
        self.path_dropout = spec.path_dropout
        self.preprocess0 = (
            FactorizedReduce(c_pp, c, bn) if reduction_prev else relu_conv_bn(c_pp, c, bn)
        )
        self.preprocess1 = relu_conv_bn(c_p, c, bn)
        strided = CELL_INPUTS if reduction else ()
        self.op_sets = nn.ModuleList(
            OpSet(c, sources, tuple(s for s in sources if s in strided), spec)
            for sources in position_sources(spec.ops_on)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: Cell) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        # ReLU(state), computed once and shared by every op that starts with it: the same
        # values and, ReLU's backward being a mask, the same gradients, for fewer ops per step
        relu: dict[int, torch.Tensor] = {}
        op_sets = tuple(self.op_sets)
        for node in range(NODES):
            total = None
            for slot in (2 * node, 2 * node + 1):
                op, inp = cell.pairs[slot]
                op_set = op_sets[position_of(self.ops_on, slot, inp)]
                if inp not in relu and op_set.reads_relu(op, inp):
                    relu[inp] = F.relu(states[inp])
                y = op_set(states[inp], op, inp, relu.get(inp))
                y = drop_path(y, self.path_dropout, self.training)
                total = y if total is None else total + y
            states.append(total)
        if cell.concat == DEFAULT_CONCAT:
            return torch.cat(states[2:], dim=1)
        return torch.cat(
            [
                s if i in cell.concat else torch.zeros_like(s)
                for i, s in enumerate(states)
                if i >= 2
            ],
            dim=1,
        )


class DartsSuperNet(nn.Module):
    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        spec.require_fixed_widths("DARTS-NDS")
        bn = partial(SuperBatchNorm2d, affine=spec.bn_affine, track=spec.bn_track)
        c = spec.channels
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False), bn(3 * c))
        plan = cell_plan(c, spec.layers)
        self.cells = nn.ModuleList(SuperCell(*item, spec) for item in plan)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.global_dropout)
        self.classifier = nn.Linear(NODES * plan[-1][2], spec.num_classes)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        genotype = as_genotype(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, genotype.reduce if cell.reduction else genotype.normal)
        return self.classifier(self.dropout(self.global_pool(s1).flatten(1)))
