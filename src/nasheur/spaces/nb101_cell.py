"""NAS-Bench-101 cells: specs, the official pruning and hash, and the width rule.

Encodings only (numpy and the standard library): the catalogue of all unique architectures is
:mod:`nasheur.spaces.nb101_catalogue`, the search space :mod:`nasheur.spaces.nb101`.

A spec is a 7x7 (or smaller) upper-triangular adjacency matrix and one op per vertex, with the
official names: ``input``, ``conv3x3-bn-relu``, ``conv1x1-bn-relu``, ``maxpool3x3``,
``output``. :class:`NB101Spec` holds it as tuples (immutable). The official rules:

* pruning drops every vertex that is not on an input->output path; a spec whose input and
  output are disconnected is invalid;
* a valid spec has, once pruned, at most 7 vertices and at most 9 edges;
* its key is the official isomorphism-invariant MD5 hash of the pruned graph
  (:func:`spec_hash`), computed with Python ints (numpy 2 integer types print differently and
  would change every hash). ``unique_key`` is the same hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
# interior ops; an op's label in the hash is its index here (input -1, output -2)
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
INPUT_LABEL, OUTPUT_LABEL = -1, -2
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_EDGE_SLOTS = MAX_VERTICES * (MAX_VERTICES - 1) // 2  # 21
NUM_UNIQUE = 423_624
# Sub-spaces of dynamic_channels=disabled: id k = the number of interior vertices wired to the
# output. k = 5 would need 10 edges (5 into the output and one into each interior vertex), so
# 1..4 is every id. Whether input->output is an edge does not change any width (the width
# rule counts only interior vertices), so it does not split a sub-space. The one valid
# graph with no interior vertex (input->output alone, k = 0) belongs to no sub-space.
SUBSPACES: tuple[int, ...] = (1, 2, 3, 4)
# the name of a random subset's second pool, drawn from its sub-space (metrics.json
# extra_pools; Table 6's test without dynamic channels)
SUBSPACE_POOL = "subspace"

_HASH_RE = re.compile(r"^[0-9a-f]{32}$")


def edge_bit(src: int, dst: int) -> int:
    """The bit of the edge src->dst (src < dst) in a matrix bitmask (the generator's order)."""
    return src + dst * (dst - 1) // 2


# ---------------------------------------------------------------------------------------------
# specs


@dataclass(frozen=True, slots=True)
class NB101Spec:
    """One cell: a strictly upper-triangular 0/1 adjacency matrix and one op name per vertex
    (``input`` first, ``output`` last). Immutable; it may need pruning (:meth:`pruned`)."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.matrix)
        if n < 2 or any(len(row) != n for row in self.matrix):
            raise ValueError(f"an NB101 matrix is square with at least 2 vertices: {self.matrix}")
        for i, row in enumerate(self.matrix):
            for j, v in enumerate(row):
                if type(v) is not int or v not in (0, 1):
                    raise ValueError(f"NB101 matrix entries are the ints 0 or 1: {self.matrix}")
                if v and j <= i:
                    raise ValueError(
                        f"an NB101 matrix is strictly upper triangular (edge {i}->{j}): {self.matrix}"
                    )
        if len(self.ops) != n:
            raise ValueError(f"{n} vertices but {len(self.ops)} ops: {self.ops}")
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise ValueError(f"NB101 ops start with {INPUT!r} and end with {OUTPUT!r}: {self.ops}")
        bad = [op for op in self.ops[1:-1] if op not in OPS]
        if bad:
            raise ValueError(f"unknown NB101 ops {bad}; interior ops: {', '.join(OPS)}")

    @property
    def num_vertices(self) -> int:
        return len(self.matrix)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def labels(self) -> tuple[int, ...]:
        """The hash labels: input -1, output -2, interior ops their index in :data:`OPS`."""
        return (INPUT_LABEL, *(OPS.index(op) for op in self.ops[1:-1]), OUTPUT_LABEL)

    def bits(self) -> int:
        return sum(
            1 << edge_bit(i, j) for i, row in enumerate(self.matrix) for j, v in enumerate(row) if v
        )

    def output_inputs(self) -> int:
        """k: how many interior vertices feed the output (decides every width)."""
        return len(output_feeders(self.matrix))

    def pruned(self) -> NB101Spec:
        """The official pruning: drop vertices off every input->output path; ValueError if
        the input and output are disconnected."""
        return _prune(self)

    def is_valid(self) -> bool:
        """Valid once pruned: input and output connected, <= 7 vertices, <= 9 edges."""
        try:
            p = self.pruned()
        except ValueError:
            return False
        return p.num_vertices <= MAX_VERTICES and p.num_edges <= MAX_EDGES


def make_spec(matrix: Any, ops: Sequence[str]) -> NB101Spec:
    """A spec from any 0/1 matrix-like (lists, tuples, numpy of any integer or bool type)."""
    try:
        rows = [[_entry(v) for v in row] for row in matrix]
        names = tuple(str(op) for op in ops)
    except TypeError:
        raise ValueError(f"not an NB101 spec: matrix {matrix!r}, ops {ops!r}") from None
    return NB101Spec(tuple(tuple(r) for r in rows), names)


def _entry(v: Any) -> int:
    """A matrix entry as an int; one that is not integral (0.9, 1.5) is refused rather than
    truncated into another graph."""
    i = int(v)
    if i != v:
        raise ValueError(f"NB101 matrix entries are the ints 0 or 1, not {v!r}")
    return i


def _prune(spec: NB101Spec) -> NB101Spec:
    m, n = spec.matrix, spec.num_vertices
    fwd = [False] * n
    fwd[0] = True
    for dst in range(1, n):
        fwd[dst] = any(fwd[src] and m[src][dst] for src in range(dst))
    bwd = [False] * n
    bwd[-1] = True
    for src in range(n - 2, -1, -1):
        bwd[src] = any(bwd[dst] and m[src][dst] for dst in range(src + 1, n))
    if not (fwd[-1] and bwd[0]):
        raise ValueError(f"invalid NB101 spec: the input and the output are disconnected: {spec}")
    keep = [v for v in range(n) if fwd[v] and bwd[v]]
    if len(keep) == n:
        return spec
    return NB101Spec(
        tuple(tuple(m[a][b] for b in keep) for a in keep), tuple(spec.ops[v] for v in keep)
    )


def valid_pruned(spec: NB101Spec) -> NB101Spec:
    """The pruned spec; ValueError naming the rule if the spec is not valid."""
    p = spec.pruned()
    if p.num_vertices > MAX_VERTICES:
        raise ValueError(f"invalid NB101 spec: {p.num_vertices} vertices after pruning (max 7)")
    if p.num_edges > MAX_EDGES:
        raise ValueError(f"invalid NB101 spec: {p.num_edges} edges after pruning (max 9)")
    return p


# ---------------------------------------------------------------------------------------------
# the official hash


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """The official fingerprint of a (pruned) labelled graph.

    Each vertex starts from ``md5(str((out_degree, in_degree, label)))``; V rounds then replace
    it by the MD5 of its sorted in-neighbour hashes, ``|``, its sorted out-neighbour hashes,
    ``|``, its own hash; the fingerprint is ``md5(str(sorted(hashes)))``. Every number is made
    a Python int first: ``str`` of a numpy 2 scalar reads ``np.int64(1)``.
    """
    n = len(matrix)
    adj = [[int(v) for v in row] for row in matrix]
    preds = [[u for u in range(n) if adj[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if adj[v][w]] for v in range(n)]
    hashes = [md5_hex(str((len(succs[v]), len(preds[v]), int(labels[v])))) for v in range(n)]
    for _ in range(n):
        hashes = [
            md5_hex(
                "".join(sorted(hashes[u] for u in preds[v]))
                + "|"
                + "".join(sorted(hashes[w] for w in succs[v]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return md5_hex(str(sorted(hashes)))


def spec_hash(matrix: Any, ops: Sequence[str]) -> str:
    """The official hash of the pruned spec; ValueError for an invalid spec.

    ``ops`` are the official names, ``input`` first and ``output`` last; ``matrix`` any 0/1
    matrix-like (numpy integer types give the same hash as Python ints).
    """
    p = valid_pruned(make_spec(matrix, ops))
    return graph_hash(p.matrix, p.labels())


# ---------------------------------------------------------------------------------------------
# widths (the NB101 rule), shared by f_proxy and the super-net


def output_feeders(matrix: Sequence[Sequence[int]]) -> list[int]:
    """The interior vertices wired to the output, in vertex order."""
    n = len(matrix)
    return [v for v in range(1, n - 1) if matrix[v][n - 1]]


def vertex_widths(matrix: Sequence[Sequence[int]], c_in: int, c_out: int) -> list[int]:
    """The channels of every vertex of a pruned cell that turns c_in into c_out channels.

    The c_out output channels are split evenly over the k interior vertices that feed the
    output, the remainder (c_out mod k) going one each to the first of them; every other
    interior vertex takes the largest width among its successors (visited from the last
    vertex backwards). Edges from the input are not counted: whether input->output is an edge
    changes no interior width. Entry 0 is c_in, the last entry c_out.
    """
    n = len(matrix)
    widths = [0] * n
    widths[0], widths[-1] = c_in, c_out
    feeders = output_feeders(matrix)
    if not feeders:
        if n > 2:
            raise ValueError(
                "a pruned NB101 cell with interior vertices has one feeding the output"
            )
        return widths
    base, extra = divmod(c_out, len(feeders))
    for i, v in enumerate(feeders):
        widths[v] = base + (1 if i < extra else 0)
    for v in range(n - 2, 0, -1):
        if not matrix[v][n - 1]:
            widths[v] = max(widths[w] for w in range(v + 1, n - 1) if matrix[v][w])
    if min(widths[1:-1]) < 1:
        raise ValueError(
            f"{c_out} output channels cannot be split over {len(feeders)} vertices (NB101 needs "
            "at least one channel per vertex)"
        )
    return widths


def bits_matrix(bits: int, n: int) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(1 if src < dst and (bits >> edge_bit(src, dst)) & 1 else 0 for dst in range(n))
        for src in range(n)
    )


def check_key(key: str) -> None:
    if not isinstance(key, str) or not _HASH_RE.match(key):
        raise ValueError(
            f"not an NB101 key (32 lowercase hex digits of the official hash): {key!r}"
        )
