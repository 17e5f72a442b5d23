"""f_ws for NAS-Bench-101: the super-net whose single paths are the benchmark's cells.

The macro skeleton is f_proxy's (:mod:`nasheur.spaces.nb101_net`) at the fidelity's channels
(``spec.channels``, the stem width, 128 in the benchmark) and layers (``spec.layers``, cells per
stack, 3). Ops sit on nodes (the only mapping NB101 has): every cell holds 5 *positions*, one
per interior vertex index of a pruned spec (vertex v uses position v - 1), each with

* the candidate ops conv3x3-BN-ReLU and conv1x1-BN-ReLU (one kernel each, or one shared
  :class:`~nasheur.supernet.ofa.OFAKernel` with ``ofa_kernel``) and the 3x3 max-pool,
* the conv1x1-BN-ReLU projection of the cell input into that vertex,

all at the position's C_max channels; the cell also holds the projection of its input into the
output (c_in -> c_out). Each sampled spec gets the NB101 widths
(:func:`nasheur.spaces.nb101_cell.vertex_widths`), and ``dynamic_channels`` decides how a vertex of
width C uses its position's C_max channels (:mod:`nasheur.supernet.channels`):

* ``fixed`` / ``shuffle`` / ``interpolate``: C_max is the cell's output width (a vertex has it
  when it alone feeds the output), so every architecture is a path;
* ``disabled``: the super-net of sub-space k (``spec.subspace``; the spec's k must match, or
  ValueError) has C_max = ceil(c_out / k), the width every vertex of the sub-space has. C is
  not asserted to be divisible by k: the paper's C = 128 is not divisible by 3, and the NB101
  rule then gives widths 43/43/42 itself; a 42-wide vertex uses the first 42 channels of its
  43 (a warning says so when the super-net is built).

WSBN: in NB101 an op follows the sum of its vertex's inputs, so "one BN per incoming edge"
becomes one BN (affine parameters and statistics) per *set* of incoming vertices: position v
keeps 2^v - 1 slots per conv op, one for each non-empty subset of the vertices 0..v-1 it can
read from; what the op normalises is the sum of exactly that set. Path dropout drops every
incoming edge term before the sum of a vertex (the projected input or a truncated vertex), and
every edge into the output (the concatenated vertices and the projected input), per sample
and in training only; global dropout acts before the classifier. Every BN (stem, projections,
ops) is a :class:`~nasheur.supernet.batchnorm.SuperBatchNorm2d` built with the BN switches.
Single path: a step gives gradients only to the positions, ops, BN slots and projections the
sampled spec uses (with ``fixed``, ``shuffle`` and ``disabled`` only to the slices it uses:
the rest of such a tensor gets a zero gradient, not none, so SGD's weight decay and momentum
still move it, as they do in any super-net of sliced weights updated by a plain optimizer).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache, partial

import torch
from torch import nn

from nasheur.spaces.nb101_cell import (
    CONV1X1,
    CONV3X3,
    MAX_VERTICES,
    MAXPOOL3X3,
    SUBSPACES,
    NB101Spec,
    output_feeders,
    valid_pruned,
    vertex_widths,
)
from nasheur.spaces.nb101_net import downsample, max_pool_3x3, stack_plan
from nasheur.supernet import SupernetSpec
from nasheur.supernet.batchnorm import SuperBatchNorm2d, WSBatchNorm
from nasheur.supernet.channels import SlicedBatchNorm2d, make_strategy
from nasheur.supernet.dropout import drop_path
from nasheur.supernet.ofa import ConvOps

log = logging.getLogger("nasheur")

CONV_KERNEL = {CONV3X3: 3, CONV1X1: 1}
NUM_POSITIONS = MAX_VERTICES - 2


@lru_cache(maxsize=65536)
def _cell_plan(
    matrix: tuple[tuple[int, ...], ...], c_in: int, c_out: int
) -> tuple[list[int], list[list[int]], list[int]]:
    """Widths, predecessors of each vertex, and the vertices feeding the output."""
    n = len(matrix)
    widths = vertex_widths(matrix, c_in, c_out)
    preds = [[u for u in range(v) if matrix[u][v]] for v in range(n)]
    return widths, preds, output_feeders(matrix)


class Position(ConvOps):
    """Interior vertex `vertex` of a cell: its candidate ops and input projection at c_max."""

    def __init__(self, vertex: int, c_in: int, c_max: int, spec: SupernetSpec) -> None:
        slots = 2**vertex - 1 if spec.wsbn else 1
        super().__init__(
            c_max,
            CONV_KERNEL,
            spec.ofa_kernel,
            partial(
                WSBatchNorm,
                c_max,
                slots,
                affine=spec.bn_affine,
                track=spec.bn_track,
                norm=SlicedBatchNorm2d,
            ),
        )
        self.vertex, self.c_max, self.wsbn = vertex, c_max, spec.wsbn
        self.pool = max_pool_3x3()
        self.proj = nn.Conv2d(c_in, c_max, 1, bias=False).weight
        self.proj_bn = WSBatchNorm(
            c_max, 1, affine=spec.bn_affine, track=spec.bn_track, norm=SlicedBatchNorm2d
        )

    def slot(self, preds: list[int]) -> int:
        """WSBN: the slot of this set of incoming vertices (0 without WSBN)."""
        return sum(1 << u for u in preds) - 1 if self.wsbn else 0


class SuperCell(nn.Module):
    def __init__(self, c_in: int, c_out: int, c_max: int, spec: SupernetSpec, strategy) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.strategy = strategy
        self.path_dropout = spec.path_dropout
        self.positions = nn.ModuleList(
            Position(v, c_in, c_max, spec) for v in range(1, NUM_POSITIONS + 1)
        )
        bn = partial(SuperBatchNorm2d, affine=spec.bn_affine, track=spec.bn_track)
        self.out_proj = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), bn(c_out), nn.ReLU(inplace=False)
        )

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.path_dropout, self.training)

    def forward(self, x: torch.Tensor, arch: NB101Spec) -> torch.Tensor:
        n = arch.num_vertices
        widths, preds, feeders = _cell_plan(arch.matrix, self.c_in, self.c_out)
        outs = [x]
        for v in range(1, n - 1):
            pos = self.positions[v - 1]
            width = widths[v]
            pick = self.strategy.draw(pos.c_max, width, x.device)
            total = None
            for u in preds[v]:
                if u == 0:
                    term = self.strategy.project(x, pos.proj, pos.proj_bn, pick)
                else:
                    term = outs[u][:, :width]
                term = self._drop(term)
                total = term if total is None else total + term
            op = arch.ops[v]
            if op == MAXPOOL3X3:
                y = pos.pool(total)
            else:
                y = self.strategy.conv_bn_relu(
                    total, pos.weight(op), pos.bns[op], pos.slot(preds[v]), pick
                )
            outs.append(y)
        parts = [self._drop(outs[v]) for v in feeders]
        if not parts:
            return self._drop(self.out_proj(x))
        y = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        if arch.matrix[0][n - 1]:
            y = y + self._drop(self.out_proj(x))
        return y


class NB101SuperNet(nn.Module):
    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        if spec.ops_on != "node":
            raise ValueError(f"NB101 has ops on nodes only, not supernet.ops_on={spec.ops_on}")
        self.mode = spec.dynamic_channels
        self.strategy = make_strategy(spec.dynamic_channels)
        self.subspace = spec.subspace
        if self.mode == "disabled":
            if spec.subspace not in SUBSPACES:
                raise ValueError(
                    f"dynamic_channels=disabled needs supernet.subspace in {SUBSPACES}, not "
                    f"{spec.subspace!r}"
                )
        elif spec.subspace is not None:
            raise ValueError("supernet.subspace is only for dynamic_channels=disabled")
        c = spec.channels
        bn = partial(SuperBatchNorm2d, affine=spec.bn_affine, track=spec.bn_track)
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1, bias=False), bn(c), nn.ReLU(inplace=False)
        )
        blocks: list[nn.Module] = []
        uneven = set()
        for item in stack_plan(c, spec.layers):
            if item is None:
                blocks.append(downsample())
                continue
            c_in, c_out = item
            c_max = c_out
            if self.mode == "disabled":
                c_max = math.ceil(c_out / spec.subspace)
                if c_out % spec.subspace:
                    uneven.add(c_out)
            blocks.append(SuperCell(c_in, c_out, c_max, spec, self.strategy))
        if uneven:
            log.warning(
                "NB101 sub-space %d: cells of %s channels are not divisible by %d, so the NB101 "
                "rule makes some vertices one channel narrower than others; those use the "
                "first channels of their layer",
                spec.subspace,
                sorted(uneven),
                spec.subspace,
            )
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(spec.global_dropout)
        self.classifier = nn.Linear(4 * c, spec.num_classes)

    def forward(self, x: torch.Tensor, arch: NB101Spec) -> torch.Tensor:
        arch = valid_pruned(arch)
        if self.mode == "disabled" and arch.output_inputs() != self.subspace:
            raise ValueError(
                f"the super-net of NB101 sub-space {self.subspace} got an architecture with "
                f"{arch.output_inputs()} vertices feeding the output"
            )
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, arch) if isinstance(block, SuperCell) else block(x)
        return self.classifier(self.dropout(self.pool(x)))


__all__ = ["NB101SuperNet", "Position", "SlicedBatchNorm2d", "SuperCell"]
