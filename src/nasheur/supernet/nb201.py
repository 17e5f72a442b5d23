"""f_ws for NAS-Bench-201: the super-net whose single paths are the benchmark's cells.

The macro skeleton is f_proxy's (:mod:`nasheur.spaces.nb201_net`) at the fidelity's channels
and layers. A cell holds *op sets*, one module per candidate op; `supernet.ops_on` decides which
edges share an op set:

* ``edge``: one op set per edge (6 per cell), the benchmark's own mapping;
* ``node``: one op set per destination node (3 per cell), shared by the node's incoming edges.

Within an op set, ``nor_conv_1x1`` and ``nor_conv_3x3`` share one kernel under the OFA kernel,
and their BN keeps one slot per input node under WSBN (with ops on edges every op set reads
from a single node, so WSBN changes nothing there). Path dropout acts on every edge output.
"""

from __future__ import annotations

from functools import cache, partial

import torch
import torch.nn.functional as F
from torch import nn

from nasheur.spaces.nb201 import EDGES, NONE, NUM_NODES, OPS, NB201Arch, live_nodes
from nasheur.spaces.nb201_net import ResidualReduction, avg_pool_3x3, stage_widths
from nasheur.supernet import SupernetSpec
from nasheur.supernet.batchnorm import BNStats, SuperBatchNorm2d, WSBatchNorm, slot_map
from nasheur.supernet.dropout import drop_path
from nasheur.supernet.ofa import ConvOps

# for each edge (EDGES order), the op set it uses
POSITION_OF_EDGE: dict[str, tuple[int, ...]] = {
    "edge": tuple(range(len(EDGES))),
    "node": tuple(dst - 1 for dst, _ in EDGES),
}
CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
CONV_OPS = frozenset(OPS.index(name) for name in CONV_KERNEL)
AVG_POOL = OPS.index("avg_pool_3x3")


class OpSet(ConvOps):
    """The candidate ops of one position: ReLU-Conv-BN 1x1 and 3x3, 3x3 average pool, skip."""

    def __init__(self, channels: int, sources: tuple[int, ...], spec: SupernetSpec) -> None:
        slot, slots = slot_map(sources, spec.wsbn)
        super().__init__(
            channels,
            CONV_KERNEL,
            spec.ofa_kernel,
            partial(WSBatchNorm, channels, slots, affine=spec.bn_affine, track=spec.bn_track),
        )
        self.slot = slot
        # the BN (WSBN slot) of each conv op and input, looked up once: going through the
        # module containers on every op cost 2.4% of a step's host instructions (make
        # host-instructions); a plain dict, so the modules stay registered where they are
        self.bn_at = {
            (name, src): self.bns[name].slots[slot]
            for name in CONV_KERNEL
            for src, slot in self.slot.items()
        }
        self.pool = avg_pool_3x3()

    def forward(
        self, x: torch.Tensor, op: int, src: int, x_relu: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Op `op` on input node `src`; `x_relu`, ReLU(x) if the caller has it already."""
        name = OPS[op]
        if name == "skip_connect":
            return x
        if name == "avg_pool_3x3":
            return self.pool(x)
        y = F.conv2d(
            F.relu(x) if x_relu is None else x_relu,
            self.weight(name),
            padding=CONV_KERNEL[name] // 2,
        )
        return self.bn_at[name, src](y)


@cache  # per arch, mapping and mode; the step's Python is host time a GPU cannot hide
def cell_plan(
    ops: tuple[int, ...], position: tuple[int, ...], skip_dead: bool
) -> tuple[tuple[tuple[int, int, int], ...] | None, ...]:
    """Per node after the input: None for a node skipped as not live (``skip_dead``), else its
    incoming edges to compute, as (source node, op, op set index), `none` left out."""
    live = live_nodes(NB201Arch(ops)) if skip_dead else (True,) * NUM_NODES
    return tuple(
        tuple(
            (src, ops[e], position[e])
            for e, (dst, src) in enumerate(EDGES)
            if dst == node and ops[e] != NONE
        )
        if live[node]
        else None
        for node in range(1, NUM_NODES)
    )


class SuperCell(nn.Module):
    def __init__(self, channels: int, spec: SupernetSpec) -> None:
        super().__init__()
        if spec.ops_on not in POSITION_OF_EDGE:
            raise ValueError(f"ops_on={spec.ops_on!r}: one of {', '.join(POSITION_OF_EDGE)}")
        self.position = POSITION_OF_EDGE[spec.ops_on]
        self.path_dropout = spec.path_dropout
        # A node from which no path without `none` reaches the output changes neither the
        # output nor any gradient, so the forward skips it, except where training updates
        # running BN statistics: there the BNs of its ops see their batches as before.
        self.skip_dead_in_training = not spec.bn_track
        sources: dict[int, list[int]] = {}
        for e, (_, src) in enumerate(EDGES):
            sources.setdefault(self.position[e], []).append(src)
        self.op_sets = nn.ModuleList(
            OpSet(channels, tuple(sources[p]), spec) for p in sorted(sources)
        )

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        plan = cell_plan(arch.ops, self.position, self.skip_dead_in_training or not self.training)
        nodes: list[torch.Tensor | None] = [x]
        # ReLU(node), computed once and shared by every conv reading the node: the same values
        # and, ReLU's backward being a mask, the same gradients, for fewer ops per step; the
        # parameter-free 3x3 pool of a node likewise (its backward then sums the gradients
        # of the edges first: the same gradients up to rounding)
        relu: dict[int, torch.Tensor] = {}
        pooled: dict[int, torch.Tensor] = {}
        op_sets = tuple(self.op_sets)
        # Evaluation knows which nodes are all zero (only `none` inputs, or skips and pools of
        # such nodes; 7.5% of the conv and pool edges over the space) and skips the ops that
        # read them (see `_of_zeros`). Not in training, where the path's parameters must get
        # their (zero) gradients and path dropout draws its masks; not under autocast, where
        # a term's dtype decides the node's.
        zeros: set[int] | None = (
            None if self.training or torch.is_autocast_enabled(x.device.type) else set()
        )
        for node, edges in enumerate(plan, 1):
            if edges is None:
                nodes.append(None)  # not live: only `none` edges and nodes not live read it
                continue
            total = None
            for src, op, position in edges:
                if zeros is not None and src in zeros:
                    y = self._of_zeros(x, nodes, op_sets[position], op, src)
                    if y is None:
                        continue
                elif op == AVG_POOL:
                    if src not in pooled:
                        pooled[src] = op_sets[position](nodes[src], op, src)
                    y = pooled[src]
                else:
                    if op in CONV_OPS and src not in relu:
                        relu[src] = F.relu(nodes[src])
                    y = op_sets[position](nodes[src], op, src, relu.get(src))
                y = drop_path(y, self.path_dropout, self.training)
                total = y if total is None else total + y
            if total is None and zeros is not None:
                zeros.add(node)  # made when an op needs it (`_of_zeros`)
                nodes.append(None)
            elif total is None:
                # a node with only `none` inputs is zero; later ops still run on it, as in f_proxy
                nodes.append(torch.zeros_like(x))
            elif total.shape != x.shape:  # only BN biases (`_of_zeros`): 0 + b is b exactly
                nodes.append(torch.zeros_like(x) + total)
            else:
                nodes.append(total)
        out = nodes[-1]
        return torch.zeros_like(x) if out is None else out

    @staticmethod
    def _of_zeros(
        x: torch.Tensor, nodes: list[torch.Tensor | None], op_set: OpSet, op: int, src: int
    ) -> torch.Tensor | None:
        """What op `op` gives for the all-zero node `src` in evaluation: None for a skip or a
        pool (a zero term, which leaves a sum as it is), and for a conv whose BN normalises
        with batch statistics the BN's bias, as a (1, C, 1, 1) view that the node's sum
        broadcasts (None without affine): the conv of zeros is zero, its batch mean and
        variance are zero, so the BN gives 0 * invstd * weight + bias = bias, bit for bit
        (for finite weights). Other BN modes get the zero node made and the op run."""
        if op not in CONV_OPS:
            return None
        bn = op_set.bn_at[OPS[op], src]
        if bn.stats is BNStats.batch and not bn.training:
            return None if bn.bias is None else bn.bias.view(1, -1, 1, 1)
        if nodes[src] is None:
            nodes[src] = torch.zeros_like(x)
        return op_set(nodes[src], op, src)


class NB201SuperNet(nn.Module):
    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        spec.require_fixed_widths("NB201")
        bn = partial(SuperBatchNorm2d, affine=spec.bn_affine, track=spec.bn_track)
        c = spec.channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), bn(c))
        self.blocks = nn.ModuleList(
            ResidualReduction(*item, bn) if isinstance(item, tuple) else SuperCell(item, spec)
            for item in stage_widths(c, spec.layers)
        )
        self.head = nn.Sequential(
            bn(4 * c), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.dropout = nn.Dropout(spec.global_dropout)
        self.classifier = nn.Linear(4 * c, spec.num_classes)

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, arch) if isinstance(block, SuperCell) else block(x)
        return self.classifier(self.dropout(self.head(x)))
