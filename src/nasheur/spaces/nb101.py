"""NAS-Bench-101: cells of at most 7 vertices and 9 edges, one op on each interior vertex.

Encodings and ground-truth bookkeeping only (no torch at import): the stand-alone network
(f_proxy) lives in :mod:`nasheur.spaces.nb101_net`, the super-net in
:mod:`nasheur.supernet.nb101`.

A spec is a 7x7 (or smaller) upper-triangular adjacency matrix and one op per vertex, with the
official names: ``input``, ``conv3x3-bn-relu``, ``conv1x1-bn-relu``, ``maxpool3x3``,
``output``. :class:`NB101Spec` holds it as tuples (immutable). The official rules:

* pruning drops every vertex that is not on an input->output path; a spec whose input and
  output are disconnected is invalid;
* a valid spec has, once pruned, at most 7 vertices and at most 9 edges;
* its key is the official isomorphism-invariant MD5 hash of the pruned graph
  (:func:`spec_hash`), computed with Python ints (numpy 2 integer types print differently and
  would change every hash). ``unique_key`` is the same hash.

Enumeration (:func:`build_catalogue`) needs no benchmark file. Per vertex count V = 2..7, every
upper-triangular adjacency matrix is an integer bitmask (bit ``x + y(y-1)/2`` for the edge
x->y, the official generator's order); a vectorised pass keeps those where every vertex lies
on an input->output path and there are at most 9 edges. The matrices are grouped into
isomorphism classes by relabelling the interior vertices (keeping the relabellings that stay
upper triangular); each class is represented by its smallest bitmask, and its labellings are
reduced to one per orbit of the class's automorphisms. Only those representatives are hashed
(one MD5 fingerprint per unique architecture), then deduplicated by hash, the first in the
order (V, bitmask, labelling) kept (no two classes share a hash). That order is meant to be
the official generator's, so that the encoding stored for a hash is the one the generator met
first (:func:`canonical` computes it for any spec); this has not been checked against the
released file. The result, 423,624 architectures, is cached in one compressed ``.npz`` file
(bitmask as uint32, vertex count and base-3 op code as uint8, hash as 32 ASCII bytes, 7.7 MB)
under ``$NASHEUR_CACHE`` or ``~/.cache/nasheur/``, written atomically; building it takes about
half a minute on two cores (22 s of CPU for the hashes) and happens once per machine. Listing
the architectures without their hashes (:func:`unique_archs`: ``enumerate`` and Random-A)
takes about a second and needs no cache.

Samplers (spec section 3): Random-NAS (:meth:`NB101Space.sample`) draws each of the 21
upper-triangular edges with probability 1/2 and each of the 5 interior ops uniformly, prunes,
and rejects until valid, so architectures with many encodings are oversampled, as in the
paper. Random-A (:meth:`NB101Space.sample_unique`) is uniform over the unique hashes and needs
the enumeration. FairNAS (:meth:`NB101Space.fair_paths`) samples one topology as Random-NAS,
then returns 3 specs on it in which every interior vertex takes each op exactly once.

Dynamic channels: an interior vertex's width depends on how many interior vertices feed the
output (:func:`vertex_widths`). ``supernet.dynamic_channels=disabled`` splits the space into
sub-spaces by that number k (:class:`NB101SubSpace`); Table 7's baseline searches a random
subset of the space as large as sub-space k instead (:class:`NB101RandomSubset`,
``supernet.random_subspace``), and evaluates a second pool in sub-space k (Table 6). See
:data:`SUBSPACES`, :meth:`NB101Space.for_config` and :meth:`NB101Space.extra_pools`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

log = logging.getLogger("nasheur")

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
CACHE_FILE = "nb101-specs-v1.npz"
_CACHE_FORMAT = 1


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


def _md5(text: str) -> str:
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
    hashes = [_md5(str((len(succs[v]), len(preds[v]), int(labels[v])))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[u] for u in preds[v]))
                + "|"
                + "".join(sorted(hashes[w] for w in succs[v]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


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


# ---------------------------------------------------------------------------------------------
# canonical encodings and enumeration


def _bits_matrix(bits: int, n: int) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(1 if src < dst and (bits >> edge_bit(src, dst)) & 1 else 0 for dst in range(n))
        for src in range(n)
    )


def _label_code(labels: Sequence[int]) -> int:
    """The interior labels as a base-3 number, vertex 1 most significant (product order)."""
    code = 0
    for lab in labels:
        code = code * 3 + lab
    return code


def _code_labels(code: int, k: int) -> list[int]:
    out = [0] * k
    for i in range(k - 1, -1, -1):
        code, out[i] = divmod(code, 3)
    return out


def _spec_from(n: int, bits: int, code: int) -> NB101Spec:
    return NB101Spec(
        _bits_matrix(bits, n),
        (INPUT, *(OPS[c] for c in _code_labels(code, n - 2)), OUTPUT),
    )


def canonical(spec: NB101Spec) -> NB101Spec:
    """The encoding of the spec's architecture that the enumeration stores: the pruned spec
    relabelled (interior vertices permuted, the matrix kept upper triangular) to the smallest
    bitmask, then the smallest labelling in product order."""
    return _spec_from(*canonical_code(spec))


def canonical_code(spec: NB101Spec) -> tuple[int, int, int]:
    """(vertex count, bitmask, op code) of :func:`canonical`: a catalogue entry's fields."""
    p = valid_pruned(spec)
    n = p.num_vertices
    edges = [(s, d) for s in range(n) for d in range(n) if p.matrix[s][d]]
    labels = p.labels()[1:-1]
    best: tuple[int, int] | None = None
    for perm in itertools.permutations(range(1, n - 1)):
        where = (0, *perm, n - 1)  # vertex v moves to where[v]
        if any(where[s] > where[d] for s, d in edges):
            continue
        bits = sum(1 << edge_bit(where[s], where[d]) for s, d in edges)
        moved = [0] * (n - 2)
        for v in range(1, n - 1):
            moved[where[v] - 1] = labels[v - 1]
        cand = (bits, _label_code(moved))
        if best is None or cand < best:
            best = cand
    assert best is not None  # the identity always qualifies
    return (n, *best)


def _popcount(x: np.ndarray, nbits: int) -> np.ndarray:
    count = np.zeros(x.shape, dtype=np.uint8)
    for b in range(nbits):
        count += ((x >> np.uint32(b)) & np.uint32(1)).astype(np.uint8)
    return count


def full_dag_masks(n: int) -> np.ndarray:
    """Every n-vertex upper-triangular matrix (as bitmask, ascending) whose every vertex lies
    on an input->output path, with at most 9 edges: exactly the pruned valid topologies."""
    nbits = n * (n - 1) // 2
    masks = np.arange(1 << nbits, dtype=np.uint32)

    def edge(s: int, d: int) -> np.ndarray:
        return ((masks >> np.uint32(edge_bit(s, d))) & np.uint32(1)).astype(bool)

    ones = np.ones(masks.shape, dtype=bool)
    fwd = [ones] + [None] * (n - 1)
    for d in range(1, n):
        acc = np.zeros(masks.shape, dtype=bool)
        for s in range(d):
            acc |= fwd[s] & edge(s, d)
        fwd[d] = acc
    bwd: list[Any] = [None] * (n - 1) + [ones]
    for s in range(n - 2, -1, -1):
        acc = np.zeros(masks.shape, dtype=bool)
        for d in range(s + 1, n):
            acc |= bwd[d] & edge(s, d)
        bwd[s] = acc
    ok = _popcount(masks, nbits) <= MAX_EDGES
    for v in range(n):
        ok &= fwd[v] & bwd[v]
    return masks[ok]


def _relabel_masks(
    masks: np.ndarray, n: int, where: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every mask with vertex v moved to where[v]: the new masks and whether each stays upper
    triangular."""
    new = np.zeros_like(masks)
    ok = np.ones(masks.shape, dtype=bool)
    for d in range(1, n):
        for s in range(d):
            bit = (masks >> np.uint32(edge_bit(s, d))) & np.uint32(1)
            a, b = where[s], where[d]
            if a < b:
                new |= bit << np.uint32(edge_bit(a, b))
            else:
                ok &= bit == 0
    return new, ok


def _topology_classes(n: int) -> list[tuple[int, list[tuple[int, ...]]]]:
    """The isomorphism classes of n-vertex topologies: (smallest bitmask, automorphisms as
    interior-vertex maps), ascending by bitmask."""
    masks = full_dag_masks(n)
    perms = [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]
    best = masks.copy()
    for where in perms[1:]:
        new, ok = _relabel_masks(masks, n, where)
        best = np.where(ok & (new < best), new, best)
    reps = np.unique(best)
    auts = [np.ones(reps.shape, dtype=bool)]
    for where in perms[1:]:
        new, ok = _relabel_masks(reps, n, where)
        auts.append(ok & (new == reps))
    table = np.stack(auts, axis=1)
    return [(int(r), [perms[j] for j in np.flatnonzero(table[i])]) for i, r in enumerate(reps)]


def _orbit_labellings(n: int, auts: list[tuple[int, ...]]) -> list[int]:
    """The labelling codes (ascending) that are the smallest of their orbit under `auts`."""
    k = n - 2
    codes = np.arange(3**k)
    if len(auts) == 1:
        return codes.tolist()
    digits = np.stack([(codes // 3 ** (k - 1 - i)) % 3 for i in range(k)], axis=1)
    keep = np.ones(codes.shape, dtype=bool)
    for where in auts[1:]:
        moved = np.zeros_like(digits)
        for v in range(1, n - 1):
            moved[:, where[v] - 1] = digits[:, v - 1]
        other = (moved * 3 ** np.arange(k - 1, -1, -1)).sum(axis=1)
        keep &= codes <= other
    return codes[keep].tolist()


try:  # CPython's own MD5 is faster than OpenSSL's for these short messages; same digests
    from _md5 import md5 as _fast_md5
except ImportError:  # pragma: no cover
    _fast_md5 = hashlib.md5


_BAR = np.frombuffer(b"|", dtype=np.uint8)


def _md5_rows(msg: np.ndarray) -> np.ndarray:
    """The hex MD5 of every row of a (rows, width) uint8 array, as (rows, 32) ASCII."""
    md5 = _fast_md5
    text = "".join([md5(row).hexdigest() for row in msg])
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(len(msg), 32)


def _joined_sorted(h: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    """Per row, the hashes h[:, idx] sorted and concatenated: (rows, 32 * len(idx))."""
    if len(idx) == 1:
        return h[:, idx[0], :]
    part = np.sort(np.ascontiguousarray(h[:, list(idx), :]).view("S32")[..., 0], axis=1)
    return np.ascontiguousarray(part).view(np.uint8).reshape(len(h), -1)


def _hash_labellings(n: int, bits: int, codes: Sequence[int]) -> list[str]:
    """graph_hash of one topology under many labellings: the same computation, vectorised
    over the labellings (hashes as rows of 32 ASCII bytes; only the MD5 calls loop)."""
    m = _bits_matrix(bits, n)
    preds = [tuple(u for u in range(n) if m[u][v]) for v in range(n)]
    succs = [tuple(w for w in range(n) if m[v][w]) for v in range(n)]
    rows = len(codes)
    labels = np.empty((rows, n), dtype=np.int64)
    labels[:, 0], labels[:, -1] = INPUT_LABEL, OUTPUT_LABEL
    code_arr = np.asarray(codes, dtype=np.int64)
    for i in range(n - 2):
        labels[:, 1 + i] = (code_arr // 3 ** (n - 3 - i)) % 3
    h = np.empty((rows, n, 32), dtype=np.uint8)
    for v in range(n):
        for lab in np.unique(labels[:, v]):
            start = _md5(str((len(succs[v]), len(preds[v]), int(lab)))).encode("ascii")
            h[labels[:, v] == lab, v] = np.frombuffer(start, dtype=np.uint8)
    bar = np.broadcast_to(_BAR, (rows, 1))
    for _ in range(n):
        new = np.empty_like(h)
        for v in range(n):
            parts = [_joined_sorted(h, preds[v])] if preds[v] else []
            parts.append(bar)
            if succs[v]:
                parts.append(_joined_sorted(h, succs[v]))
            parts += [bar, h[:, v, :]]
            new[:, v, :] = _md5_rows(np.concatenate(parts, axis=1))
        h = new
    # md5(str(sorted(hashes))): the repr of a list of str, "['a', 'b']"
    ordered = np.ascontiguousarray(np.sort(h.view("S32")[..., 0], axis=1))
    ordered = ordered.view(np.uint8).reshape(rows, n, 32)

    def const(text: bytes) -> np.ndarray:
        return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (rows, len(text)))

    pieces = [const(b"['")]
    for v in range(n):
        pieces += [const(b"', '")] if v else []
        pieces.append(ordered[:, v, :])
    pieces.append(const(b"']"))
    final = _md5_rows(np.concatenate(pieces, axis=1))
    return final.view("S32")[:, 0].astype(str).tolist()


def _hash_chunk(n: int, items: list[tuple[int, list[int]]]) -> list[list[str]]:
    return [_hash_labellings(n, bits, codes) for bits, codes in items]


@dataclass(frozen=True, eq=False)
class Catalogue(Sequence[NB101Spec]):
    """Unique architectures as arrays: vertex count, matrix bitmask, base-3 op code and (if
    computed) hash per entry, in the generator's order. Indexing builds the
    :class:`NB101Spec`."""

    vertices: np.ndarray  # uint8
    matrices: np.ndarray  # uint32
    ops: np.ndarray  # uint8
    hashes: np.ndarray | None = None  # S32, ASCII hex; None: not computed

    FIELDS: ClassVar[tuple[str, ...]] = ("vertices", "matrices", "ops", "hashes")

    def __len__(self) -> int:
        return len(self.vertices)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return _spec_from(int(self.vertices[i]), int(self.matrices[i]), int(self.ops[i]))

    def __iter__(self) -> Iterator[NB101Spec]:
        for i in range(len(self)):
            yield self[i]

    def key(self, i: int) -> str:
        if self.hashes is None:
            spec = self[i]
            return graph_hash(spec.matrix, spec.labels())
        return self.hashes[i].decode()

    def keys(self) -> list[str]:
        if self.hashes is None:
            return [self.key(i) for i in range(len(self))]
        return [h.decode() for h in self.hashes]

    @cached_property
    def output_inputs(self) -> np.ndarray:
        """k (interior vertices feeding the output) of every entry."""
        k = np.zeros(len(self), dtype=np.uint8)
        for n in range(3, MAX_VERTICES + 1):
            sel = self.vertices == n
            for v in range(1, n - 1):
                k[sel] += ((self.matrices[sel] >> np.uint32(edge_bit(v, n - 1))) & 1).astype(
                    np.uint8
                )
        return k

    def find(self, key: str) -> int:
        """The entry of a hash; KeyError if the catalogue has none."""
        if self.hashes is None:
            raise LookupError("this catalogue has no hashes (nasheur.spaces.nb101.catalogue())")
        order = self._order
        h = key.encode()
        at = int(np.searchsorted(self.hashes, h, sorter=order))
        if at < len(order) and self.hashes[order[at]] == h:
            return int(order[at])
        raise KeyError(key)

    @cached_property
    def _order(self) -> np.ndarray:
        return np.argsort(self.hashes, kind="stable")


def _unique_groups(max_vertices: int) -> list[tuple[int, int, list[int]]]:
    """(V, bitmask, labelling codes) of every topology class, in the generator's order."""
    return [
        (n, bits, _orbit_labellings(n, auts))
        for n in range(2, max_vertices + 1)
        for bits, auts in _topology_classes(n)
    ]


def _from_groups(groups: list[tuple[int, int, list[int]]]) -> Catalogue:
    sizes = [len(codes) for _, _, codes in groups]
    return Catalogue(
        vertices=np.repeat(np.array([n for n, _, _ in groups], dtype=np.uint8), sizes),
        matrices=np.repeat(np.array([b for _, b, _ in groups], dtype=np.uint32), sizes),
        ops=np.fromiter(
            itertools.chain.from_iterable(c for _, _, c in groups), dtype=np.uint8, count=sum(sizes)
        ),
    )


@cache
def unique_archs(max_vertices: int = MAX_VERTICES) -> Catalogue:
    """Every unique architecture, without hashes (about a second): one representative per
    isomorphism class, the entries of :func:`build_catalogue` in the same order. Enumeration
    and Random-A need nothing more."""
    return _from_groups(_unique_groups(max_vertices))


def build_catalogue(max_vertices: int = MAX_VERTICES, workers: int | None = None) -> Catalogue:
    """Enumerate every unique valid architecture with at most `max_vertices` vertices, with
    its hash.

    The MD5 fingerprints are the slow part; they are computed in `workers` processes (default:
    the CPU count, at most 8; 1 computes them here). A process pool that cannot start falls
    back to this process. Entries whose fingerprint an earlier entry already has would be
    dropped (the hash is the benchmark's identity); there are none: the 423,624 classes have
    423,624 distinct hashes.
    """
    groups = _unique_groups(max_vertices)
    jobs = []
    for start in range(0, len(groups), 64):
        chunk = groups[start : start + 64]
        for n in sorted({g[0] for g in chunk}):
            jobs.append((n, [(bits, codes) for m, bits, codes in chunk if m == n]))
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    results = None
    total = sum(len(codes) for _, _, codes in groups)
    if workers > 1 and total > 50_000:  # a pool costs about a second to start
        results = _pool_map(jobs, workers)
    if results is None:
        results = [_hash_chunk(n, chunk) for n, chunk in jobs]
    flat = [h for chunk_hashes in results for topo in chunk_hashes for h in topo]
    cat = _from_groups(groups)
    hashes = np.array(flat, dtype="S32")
    _, first = np.unique(hashes, return_index=True)
    keep = np.sort(first)
    return Catalogue(
        vertices=cat.vertices[keep],
        matrices=cat.matrices[keep],
        ops=cat.ops[keep],
        hashes=hashes[keep],
    )


def _pool_map(jobs: list[tuple[int, Any]], workers: int) -> list[Any] | None:
    """The chunks hashed in a pool of fresh ("spawn") processes, in order; None if the pool
    fails (e.g. a main script without an ``if __name__ == "__main__"`` guard)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            return list(pool.map(_hash_chunk, *zip(*jobs, strict=True)))
    except Exception as err:  # BrokenProcessPool, OSError, RuntimeError
        # multiprocessing's advice about a main script's guard runs to a dozen lines: its first
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].strip()
        log.warning("NB101 enumeration: no process pool (%s); hashing in this process", first)
        return None


def cache_dir() -> Path:
    env = os.environ.get("NASHEUR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nasheur"


def save_catalogue(cat: Catalogue, path: str | Path) -> None:
    from nasheur.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            format=np.array(_CACHE_FORMAT),
            vertices=cat.vertices,
            matrices=cat.matrices,
            ops=cat.ops,
            hashes=cat.hashes,
        )


# What np.load and the checks below raise on a damaged or foreign cache file (all seen on
# truncated or byte-flipped caches): a bad zip directory or member (BadZipFile, zlib.error,
# EOFError, NotImplementedError for a compression method, RuntimeError for an "encrypted"
# flag, KeyError for a member), a bad .npy header or a failed check (ValueError), a header
# that asks for a huge array (MemoryError). Any of them means: enumerate again.
_UNREADABLE_CACHE = (
    OSError,
    ValueError,
    KeyError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    MemoryError,
)
_CACHE_DTYPES = {"vertices": "u1", "matrices": "u4", "ops": "u1", "hashes": "S32"}
# entries whose hash read_catalogue recomputes: the first and last few, some spread evenly,
# and some drawn anew on each read (so that damage anywhere is met sooner or later); ~30 ms
_SPOT_ENDS, _SPOT_SPREAD, _SPOT_RANDOM = 8, 256, 64


def _spot_indices(n: int) -> np.ndarray:
    drawn = np.random.default_rng().integers(0, n, _SPOT_RANDOM)
    spread = np.linspace(0, n - 1, _SPOT_SPREAD).astype(np.int64)
    return np.unique(np.r_[0:_SPOT_ENDS, n - _SPOT_ENDS : n, spread, drawn].clip(0, n - 1))


def _check_catalogue(cat: Catalogue, expected: int, path: str | Path) -> None:
    """ValueError unless `cat` looks like an enumeration this module wrote: the arrays' shapes
    and dtypes, `expected` distinct hashes, and a spot check of entries against their hash
    (a cache with entries swapped would evaluate other architectures under their keys)."""
    for name, dtype in _CACHE_DTYPES.items():
        arr = getattr(cat, name)
        if arr is None or arr.shape != (expected,) or arr.dtype != np.dtype(dtype):
            what = "none" if arr is None else f"shape {arr.shape}, dtype {arr.dtype}"
            raise ValueError(
                f"{path}: {name} is {what}, expected {expected} entries of dtype {dtype}"
            )
    if cat.vertices.min() < 2 or cat.vertices.max() > MAX_VERTICES:
        raise ValueError(f"{path}: vertex counts outside 2..{MAX_VERTICES}")
    ordered = cat.hashes[cat._order]
    if (ordered[1:] == ordered[:-1]).any():
        raise ValueError(f"{path}: a hash is listed twice")
    for i in _spot_indices(expected).tolist():
        spec = cat[i]
        if spec_hash(spec.matrix, spec.ops).encode() != cat.hashes[i]:
            raise ValueError(f"{path}: entry {i} is not the architecture of its hash")


def read_catalogue(path: str | Path, *, expected: int | None = None) -> Catalogue:
    """The catalogue cached in `path`, checked (:func:`_check_catalogue`; `expected` entries,
    default :data:`NUM_UNIQUE`). A damaged file raises one of ``_UNREADABLE_CACHE``."""
    expected = NUM_UNIQUE if expected is None else expected
    # allow_pickle=False: the cache is a file like any other, never unpickled
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an .npz archive")
    with loaded as z:
        fmt = z["format"]
        if fmt.shape != () or fmt.dtype.kind not in "iu" or int(fmt) != _CACHE_FORMAT:
            raise ValueError(f"{path}: unknown NB101 cache format {fmt!r}")
        cat = Catalogue(**{name: z[name] for name in Catalogue.FIELDS})
    _check_catalogue(cat, expected, path)
    return cat


def catalogue() -> Catalogue:
    """All 423,624 unique architectures: read from the cache file (``cache_dir()``), or
    enumerated once and cached. A cache file that cannot be read, or fails the checks of
    :func:`read_catalogue`, is rebuilt."""
    return _catalogue_at(cache_dir() / CACHE_FILE)


@cache
def _catalogue_at(path: Path) -> Catalogue:
    if path.is_file():
        try:
            return read_catalogue(path)
        except _UNREADABLE_CACHE as err:
            log.warning(
                "NB101 cache %s is unreadable or damaged (%s: %s); enumerating again",
                path,
                type(err).__name__,
                err,
            )
    return _enumerate_into(path)


def _enumerate_into(path: Path) -> Catalogue:
    log.info("enumerating the NB101 space (once; cached in %s)", path)
    start = time.perf_counter()
    cat = build_catalogue()
    if len(cat) != NUM_UNIQUE:
        raise RuntimeError(f"NB101 enumeration found {len(cat)} architectures, not {NUM_UNIQUE}")
    save_catalogue(cat, path)
    log.info("NB101 enumeration: %d architectures in %.1f s", len(cat), time.perf_counter() - start)
    return cat


def _entry_of(cat: Catalogue, key: str) -> NB101Spec | None:
    """The spec `cat` stores for `key` (KeyError if none), or None if that spec's own hash is
    another: a damaged catalogue, which must never answer with another architecture."""
    i = cat.find(key)
    try:
        spec = cat[i]
        return spec if spec_hash(spec.matrix, spec.ops) == key else None
    except ValueError:  # stored numbers that make no valid spec
        return None


class CatalogueView(Sequence[NB101Spec]):
    """The entries `indices` of a catalogue, as a sequence of specs."""

    def __init__(self, cat: Catalogue, indices: np.ndarray) -> None:
        self.catalogue, self.indices = cat, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.catalogue[int(self.indices[i])]

    def keys(self) -> list[str]:
        return [self.catalogue.key(int(i)) for i in self.indices]


# ---------------------------------------------------------------------------------------------
# keys seen in this process

# hash -> canonical spec of every spec keyed in this process, so that `parse` answers for them
# without the enumeration (a test's GT table, say). The entry is the canonical encoding, the
# one the enumeration stores, so `parse` answers the same either way.
_KEYED: dict[str, NB101Spec] = {}


def _remember(spec: NB101Spec, key: str) -> None:
    if key not in _KEYED and not _catalogue_at.cache_info().currsize:
        _KEYED[key] = canonical(spec)


def check_key(key: str) -> None:
    if not isinstance(key, str) or not _HASH_RE.match(key):
        raise ValueError(
            f"not an NB101 key (32 lowercase hex digits of the official hash): {key!r}"
        )


def lookup(key: str) -> NB101Spec:
    """The spec of a hash (its canonical encoding); ValueError if no architecture has it."""
    check_key(key)
    spec = _KEYED.get(key)
    if spec is not None:
        return spec
    path = cache_dir() / CACHE_FILE
    try:
        spec = _entry_of(_catalogue_at(path), key)
        if spec is None:  # the spot checks missed the damage: enumerate again, once
            log.warning(
                "NB101 cache %s maps %s to another architecture; enumerating again", path, key
            )
            _catalogue_at.cache_clear()
            path.unlink(missing_ok=True)
            spec = _entry_of(_catalogue_at(path), key)
    except KeyError:
        raise ValueError(f"{key} is not the hash of any NB101 architecture") from None
    if spec is None:
        raise RuntimeError(
            f"NB101 cache {path}: the entry of {key} is another architecture even after "
            "enumerating again (a bug: please report it)"
        )
    return spec


# ---------------------------------------------------------------------------------------------
# the space


def random_spec(rng: np.random.Generator) -> NB101Spec:
    """Random-NAS: the 21 edges of a 7-vertex matrix each on with probability 1/2 (drawn in
    bit order), the 5 interior ops uniform, then pruned; rejected until valid."""
    n = MAX_VERTICES
    while True:
        on = rng.integers(0, 2, size=NUM_EDGE_SLOTS)
        ops = rng.integers(0, len(OPS), size=n - 2)
        bits = sum(1 << b for b in range(NUM_EDGE_SLOTS) if on[b])
        spec = NB101Spec(_bits_matrix(bits, n), (INPUT, *(OPS[int(o)] for o in ops), OUTPUT))
        try:
            return valid_pruned(spec)
        except ValueError:
            continue


Arch = NB101Spec | str | tuple[Any, Sequence[str]]


def _value(choice: Any) -> Any:
    """An enum config value's string (validated configs hold enums, tests plain strings)."""
    return getattr(choice, "value", choice)


class NB101Space:
    """The NB101 space: keys are the official hashes; 423,624 unique architectures.

    ``catalogue`` replaces the full enumeration (tests pass a small one; see
    :func:`build_catalogue`); by default the cached enumeration is used when a method needs it
    (``parse`` of a hash not keyed in this process, ``in_space`` of a sub-space for such a
    hash); ``enumerate`` and Random-A only need :func:`unique_archs`.
    """

    name = "nb101"
    ops_on = ("node",)
    dynamic_channels = ("fixed", "shuffle", "interpolate", "disabled")
    samplers = ("random_nas", "random_a", "fairnas")
    # f_proxy macro settings of the benchmark: 128 stem channels, 3 cells per stack
    macro_defaults: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"channels": 128, "layers": 3, "num_classes": 10}
    )
    subspace: int | None = None  # None: the whole space

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self._catalogue = catalogue

    def __repr__(self) -> str:
        return f"{type(self).__name__}(subspace={self.subspace})"

    # keys -----------------------------------------------------------------------------------
    def spec(self, arch: Arch) -> NB101Spec:
        """The pruned spec of `arch`: a spec, a hash key or a ``(matrix, ops)`` pair."""
        if isinstance(arch, NB101Spec):
            return valid_pruned(arch)
        if isinstance(arch, str):
            return self.parse(arch)
        try:
            matrix, ops = arch
        except (TypeError, ValueError):
            raise ValueError(
                f"an NB101 architecture is a spec, a hash or a (matrix, ops) pair: {arch!r}"
            ) from None
        return valid_pruned(make_spec(matrix, ops))

    def key(self, arch: Arch) -> str:
        if isinstance(arch, str):
            check_key(arch)
            return arch
        spec = self.spec(arch)
        key = graph_hash(spec.matrix, spec.labels())
        _remember(spec, key)
        return key

    def unique_key(self, arch: Arch) -> str:
        return self.key(arch)

    def parse(self, key: str) -> NB101Spec:
        if self._catalogue is not None and key not in _KEYED:
            check_key(key)
            try:
                spec = _entry_of(self._catalogue, key)
            except KeyError:
                raise ValueError(f"{key} is not in this NB101 catalogue") from None
            if spec is None:
                raise ValueError(f"this NB101 catalogue maps {key} to another architecture")
            return spec
        return lookup(key)

    def validate_key(self, key: str) -> None:
        check_key(key)

    def canonical(self, arch: Arch) -> NB101Spec:
        return canonical(self.spec(arch))

    # enumeration ----------------------------------------------------------------------------
    def _archs(self) -> Catalogue:
        """The unique architectures (no hashes needed: :func:`unique_archs`)."""
        return self._catalogue if self._catalogue is not None else unique_archs()

    def _hashed(self) -> Catalogue:
        """The unique architectures with their hashes (the cached enumeration)."""
        return self._catalogue if self._catalogue is not None else catalogue()

    def enumerate(self) -> Sequence[NB101Spec]:
        """Every unique architecture (of the sub-space), one canonical spec each, in the
        generator's order: a lazy sequence (about a second to build, no hashing)."""
        return self._archs()

    def num_unique(self) -> int:
        return len(self.enumerate())

    # samplers -------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB101Spec:
        """Random-NAS (:func:`random_spec`): architectures with many encodings come often."""
        return random_spec(rng)

    def sample_unique(self, rng: np.random.Generator) -> NB101Spec:
        """Random-A: uniform over the unique architectures (one per hash)."""
        archs = self.enumerate()
        return archs[int(rng.integers(len(archs)))]

    def fair_paths(self, rng: np.random.Generator) -> list[NB101Spec]:
        """FairNAS: one topology drawn as Random-NAS, then 3 specs on it in which every interior
        vertex takes each of the 3 ops exactly once, in an order drawn per vertex."""
        topo = self.sample(rng)
        perms = [rng.permutation(len(OPS)) for _ in range(topo.num_vertices - 2)]
        return [
            NB101Spec(topo.matrix, (INPUT, *(OPS[int(p[j])] for p in perms), OUTPUT))
            for j in range(len(OPS))
        ]

    # sub-spaces -----------------------------------------------------------------------------
    @staticmethod
    def subspace_of(spec: NB101Spec) -> int | None:
        """The sub-space id of a pruned spec: k, the interior vertices feeding the output
        (None for the graph without interior vertices)."""
        k = spec.output_inputs()
        return k if k in SUBSPACES else None

    @staticmethod
    def validate_config(cfg: Any) -> None:
        """NB101's own rules: ``supernet.subspace`` names an existing sub-space and goes with
        ``dynamic_channels=disabled`` (its own super-net) or with ``supernet.random_subspace``
        (a random subset as large, Table 7's baseline); every vertex keeps a channel."""
        from nasheur.config import ConfigError

        mode = _value(cfg.supernet.dynamic_channels)
        sub = cfg.supernet.subspace
        random_subset = cfg.supernet.random_subspace
        ids = ", ".join(map(str, SUBSPACES))
        shown = "null" if sub is None else repr(sub)
        if mode == "disabled" and random_subset:
            raise ConfigError(
                "supernet.random_subspace=true needs dynamic channels (a random subset mixes "
                "every width), not supernet.dynamic_channels=disabled; use fixed, shuffle or "
                "interpolate"
            )
        if (mode == "disabled" or random_subset) and sub not in SUBSPACES:
            why = (
                "supernet.dynamic_channels=disabled trains one super-net per sub-space"
                if mode == "disabled"
                else "supernet.random_subspace=true draws a random subset as large as sub-space k"
            )
            raise ConfigError(
                f"supernet.subspace={shown} is not an NB101 sub-space: {why}; allowed values of "
                f"supernet.subspace: {ids} (k, the number of interior vertices wired to the "
                "output)"
            )
        if mode != "disabled" and not random_subset and sub is not None:
            raise ConfigError(
                f"supernet.subspace={shown} needs supernet.dynamic_channels=disabled (it is "
                f"{mode}) or supernet.random_subspace=true (a random subset as large, Table 7's "
                f"baseline); use supernet.subspace=null, or one of those with supernet.subspace "
                f"in {ids}"
            )
        if random_subset and _value(cfg.sampler.name) == "fairnas":
            raise ConfigError(
                "sampler=fairnas cannot stay inside a random subset (supernet.random_subspace="
                "true): its paths give every vertex of one topology every op, and a random "
                "subset holds few of them; use sampler=random_nas or random_a"
            )
        need = sub if mode == "disabled" else max(SUBSPACES)
        if cfg.fidelity.channels < need:
            raise ConfigError(
                f"fidelity.channels={cfg.fidelity.channels} is out of range: NB101 splits a "
                f"cell's channels over up to {need} vertices; expected an integer >= {need}"
            )

    def for_config(self, cfg: Any) -> NB101Space:
        """The space a job trains on and searches: the whole space, sub-space k with
        ``dynamic_channels=disabled``, or with ``supernet.random_subspace`` a random subset
        as large, drawn from the run's seed (for each k its own draw)."""
        self.validate_config(cfg)
        k = cfg.supernet.subspace
        if _value(cfg.supernet.dynamic_channels) == "disabled":
            return NB101SubSpace(k, catalogue=self._catalogue)
        if cfg.supernet.random_subspace:
            from nasheur.seeding import numpy_rng

            rng = numpy_rng(cfg.seed, "subset", k)
            return NB101RandomSubset(k, rng, catalogue=self._catalogue)
        return self

    def extra_pools(self, searched: NB101Space) -> dict[str, NB101Space]:
        """Spaces a job evaluates a second pool in, besides the one it searched: a random
        subset's sub-space k (Table 6: trained with dynamic channels, tested without)."""
        if isinstance(searched, NB101RandomSubset):
            return {SUBSPACE_POOL: NB101SubSpace(searched.size_of, catalogue=self._catalogue)}
        return {}

    # f_proxy --------------------------------------------------------------------------------
    def standalone(self, arch: Arch, **macro: Any):
        """f_proxy: the NB101 stand-alone network (``channels``, ``layers``, ``num_classes``)."""
        from nasheur.spaces.nb101_net import NB101Network

        unknown = set(macro) - set(self.macro_defaults)
        if unknown:
            raise TypeError(
                f"unknown NB101 macro settings {sorted(unknown)}; known: {sorted(self.macro_defaults)}"
            )
        return NB101Network(self.spec(arch), **{**self.macro_defaults, **macro})


class _NB101Part(NB101Space):
    """A part of the space that a job searches: the architectures :meth:`contains` accepts.
    Random-NAS stays inside by rejection (the full space's distribution restricted to the
    part), Random-A draws the members (:meth:`enumerate`) uniformly, and ``in_space(key)``
    says whether a GT key belongs here (the pool and P>R's N)."""

    def contains(self, spec: NB101Spec) -> bool:
        raise NotImplementedError

    def _member_hashes(self, cat: Catalogue) -> np.ndarray:
        """The hashes of the catalogue's entries that belong here."""
        raise NotImplementedError

    def in_space(self, key: str) -> bool:
        spec = _KEYED.get(key)
        if spec is not None:
            return self.contains(spec)
        return key.encode() in self._members

    @cached_property
    def _members(self) -> frozenset[bytes]:
        return frozenset(self._member_hashes(self._hashed()).tolist())

    def sample(self, rng: np.random.Generator) -> NB101Spec:
        """Random-NAS inside: drawn as in the full space, rejected until a member (sub-space
        4 gets 1.1% of Random-NAS's draws, about 90 tries each; a random subset as large 2%,
        about 50)."""
        while True:
            spec = random_spec(rng)
            if self.contains(spec):
                return spec


class NB101SubSpace(_NB101Part):
    """The architectures whose k (interior vertices wired to the output) is `subspace`: all of
    them have the same widths (up to the NB101 rule's remainder, see :func:`vertex_widths`),
    so ``dynamic_channels=disabled`` trains one super-net per sub-space. Every sampler stays
    inside (FairNAS too: permuting ops keeps k)."""

    def __init__(self, subspace: int, catalogue: Catalogue | None = None) -> None:
        _check_subspace(subspace)
        super().__init__(catalogue)
        self.subspace = subspace

    def contains(self, spec: NB101Spec) -> bool:
        return self.subspace_of(valid_pruned(spec)) == self.subspace

    def _member_hashes(self, cat: Catalogue) -> np.ndarray:
        return cat.hashes[cat.output_inputs == self.subspace]

    def enumerate(self) -> Sequence[NB101Spec]:
        cat = self._archs()
        return CatalogueView(cat, np.flatnonzero(cat.output_inputs == self.subspace))


class NB101RandomSubset(_NB101Part):
    """Table 7's baseline for sub-space k: as many architectures as sub-space k holds, drawn
    uniformly without replacement from the whole space (the others dropped), so that a
    super-net with dynamic channels is compared with sub-space k's at the same size. Its
    architectures have every width. `rng` draws the subset; a job passes one seeded by its
    seed and k, so each seed draws its own subsets (the paper repeats the draw with 3 seeds).
    FairNAS cannot stay inside (the config refuses it)."""

    def __init__(
        self, size_of: int, rng: np.random.Generator, catalogue: Catalogue | None = None
    ) -> None:
        _check_subspace(size_of)
        super().__init__(catalogue)
        self.size_of = size_of
        cat = self._archs()
        size = int(np.count_nonzero(cat.output_inputs == size_of))
        self.indices = np.sort(rng.choice(len(cat), size=size, replace=False))
        entries = (cat.vertices[self.indices], cat.matrices[self.indices], cat.ops[self.indices])
        self._codes = frozenset(zip(*(a.tolist() for a in entries), strict=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size_of={self.size_of}, size={len(self.indices)})"

    def contains(self, spec: NB101Spec) -> bool:
        return canonical_code(spec) in self._codes

    def _member_hashes(self, cat: Catalogue) -> np.ndarray:
        return cat.hashes[self.indices]

    def enumerate(self) -> Sequence[NB101Spec]:
        return CatalogueView(self._archs(), self.indices)

    def fair_paths(self, rng: np.random.Generator) -> list[NB101Spec]:
        raise ValueError("FairNAS cannot stay inside a random subset of NB101 (sampler=fairnas)")


def _check_subspace(k: Any) -> None:
    if k not in SUBSPACES:
        raise ValueError(f"no NB101 sub-space {k!r}; sub-spaces: {', '.join(map(str, SUBSPACES))}")
