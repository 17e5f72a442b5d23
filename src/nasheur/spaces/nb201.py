"""NAS-Bench-201: a cell of 4 nodes and 6 edges, each edge one of 5 operations.

Encodings and ground-truth bookkeeping only (no torch at import): the stand-alone network
lives in :mod:`nasheur.spaces.nb201_net`, the super-net in :mod:`nasheur.supernet.nb201`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP = 0, 1
# (to, from) in the order of the official string |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625


@dataclass(frozen=True, order=True)
class NB201Arch:
    """One cell: the index into OPS of each edge, in EDGES order. Immutable."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES) or not all(
            isinstance(o, int) and 0 <= o < len(OPS) for o in self.ops
        ):
            raise ValueError(
                f"an NB201 cell has {len(EDGES)} op indices in [0, {len(OPS)}): {self.ops}"
            )

    def __str__(self) -> str:
        return to_str(self)

    def op_names(self) -> tuple[str, ...]:
        return tuple(OPS[o] for o in self.ops)


def to_str(arch: NB201Arch) -> str:
    """The official arch string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
    nodes = []
    for node in range(1, NUM_NODES):
        terms = [f"{OPS[arch.ops[e]]}~{src}" for e, (dst, src) in enumerate(EDGES) if dst == node]
        nodes.append("|" + "|".join(terms) + "|")
    return "+".join(nodes)


def parse(text: str) -> NB201Arch:
    """The inverse of :func:`to_str`; a malformed string raises ValueError naming it."""
    parts = text.strip().split("+")
    ops: list[int] = []
    try:
        if len(parts) != NUM_NODES - 1:
            raise ValueError(f"{len(parts)} nodes")
        for node, part in enumerate(parts, start=1):
            if not (part.startswith("|") and part.endswith("|")):
                raise ValueError(f"node {node} is not enclosed in '|'")
            terms = part[1:-1].split("|")
            if len(terms) != node:
                raise ValueError(f"node {node} has {len(terms)} inputs, expected {node}")
            for src, term in enumerate(terms):
                name, _, given_src = term.partition("~")
                if name not in OPS:
                    raise ValueError(f"unknown op {name!r} (ops: {', '.join(OPS)})")
                if given_src != str(src):
                    raise ValueError(f"term {term!r} should read from node {src}")
                ops.append(OPS.index(name))
    except ValueError as err:
        raise ValueError(f"not an NB201 arch string: {text!r}: {err}") from None
    return NB201Arch(tuple(ops))


def unique_str(arch: NB201Arch) -> str:
    """The official isomorphism key (NB201 ``to_unique_str(consider_zero=True)``).

    A term is ``#`` (zero) for ``none`` or a zero input, the input's own term for a skip, and
    ``(input)@op`` otherwise; a node is its sorted terms joined by ``+``.
    """
    nodes = ["0"]
    for node in range(1, NUM_NODES):
        terms = []
        for e, (dst, src) in enumerate(EDGES):
            if dst != node:
                continue
            op, inp = arch.ops[e], nodes[src]
            if op == NONE or inp == "#":
                terms.append("#")
            elif op == SKIP:
                terms.append(inp)
            else:
                terms.append(f"({inp})@{OPS[op]}")
        nodes.append("+".join(sorted(terms)))
    return nodes[-1]


def has_path(arch: NB201Arch) -> bool:
    """Whether some input-to-output path avoids `none` (341 cells have none: GT 10%)."""
    return live_nodes(arch)[0]


@functools.cache  # 15,625 cells at most; a super-net asks once per cell of a forward
def live_nodes(arch: NB201Arch) -> tuple[bool, ...]:
    """Per node, whether a path without `none` leads from it to the output node. What a node
    that is not live computes reaches nothing the cell returns, so a forward may skip it."""
    live = [False] * (NUM_NODES - 1) + [True]
    for e in reversed(range(len(EDGES))):  # EDGES is ordered by destination node
        dst, src = EDGES[e]
        live[src] = live[src] or (live[dst] and arch.ops[e] != NONE)
    return tuple(live)


class NB201Space:
    """The NB201 space: keys are the official strings; 15,625 cells, 6,466 unique."""

    name = "nb201"
    ops_on = ("edge", "node")
    dynamic_channels = ("fixed",)
    samplers = ("random_nas", "random_a", "fairnas")
    # image sides the network takes: each of its two reductions adds a stride-2 conv to a 2x2
    # average pool, whose outputs differ by a pixel on an odd side
    image_multiple = 4
    # f_proxy macro settings of the benchmark: C=16 initial channels, N=5 cells per stage
    macro_defaults: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"channels": 16, "layers": 5, "num_classes": 10}
    )

    def key(self, arch: NB201Arch | str) -> str:
        return to_str(self._arch(arch))

    def unique_key(self, arch: NB201Arch | str) -> str:
        return unique_str(self._arch(arch))

    def parse(self, key: str) -> NB201Arch:
        return parse(key)

    def validate_key(self, key: str) -> None:
        parse(key)

    def enumerate(self) -> list[NB201Arch]:
        return [NB201Arch(ops) for ops in itertools.product(range(len(OPS)), repeat=len(EDGES))]

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        """Random-NAS: every edge's op uniform and independent."""
        return NB201Arch(tuple(int(o) for o in rng.integers(len(OPS), size=len(EDGES))))

    @cached_property
    def _classes(self) -> list[list[NB201Arch]]:
        groups: dict[str, list[NB201Arch]] = {}
        for arch in self.enumerate():
            groups.setdefault(unique_str(arch), []).append(arch)
        return [groups[k] for k in sorted(groups)]

    def sample_unique(self, rng: np.random.Generator) -> NB201Arch:
        """Random-A: a uniform unique architecture, then one of its encodings uniformly.

        Every isomorphism class is equally likely; which encoding trains it is left to chance
        so that no encoding's path of the super-net is favoured.
        """
        members = self._classes[int(rng.integers(len(self._classes)))]
        return members[int(rng.integers(len(members)))]

    def fair_paths(self, rng: np.random.Generator) -> list[NB201Arch]:
        """FairNAS: the topology is fixed (6 edges), so one pass per op, in which every edge
        takes every op exactly once, in an order drawn per edge."""
        perms = [rng.permutation(len(OPS)) for _ in EDGES]
        return [NB201Arch(tuple(int(p[k]) for p in perms)) for k in range(len(OPS))]

    def num_unique(self) -> int:
        return len(self._classes)

    def standalone(self, arch: NB201Arch | str, **macro: Any):
        """f_proxy: the NB201 stand-alone network (``channels``, ``layers``, ``num_classes``)."""
        from nasheur.spaces import macro_settings
        from nasheur.spaces.nb201_net import NB201Network

        return NB201Network(
            self._arch(arch), **macro_settings(self.name, self.macro_defaults, macro)
        )

    @staticmethod
    def _arch(arch: NB201Arch | str | Sequence[int]) -> NB201Arch:
        if isinstance(arch, NB201Arch):
            return arch
        if isinstance(arch, str):
            return parse(arch)
        # op indices as given, integers only: int() would turn 1.7 into 1 and True into 1
        if any(isinstance(o, bool) or not hasattr(o, "__index__") for o in arch):
            raise ValueError(f"an NB201 cell's op indices must be integers: {list(arch)!r}")
        return NB201Arch(tuple(o.__index__() for o in arch))
