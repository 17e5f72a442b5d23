"""The catalogue of NAS-Bench-101's 423,624 unique architectures: canonical encodings, the
enumeration, its cache file, and the lookup of a hash.

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
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nasheur.spaces.nb101_cell import (
    INPUT,
    INPUT_LABEL,
    MAX_EDGES,
    MAX_VERTICES,
    NUM_UNIQUE,
    OPS,
    OUTPUT,
    OUTPUT_LABEL,
    NB101Spec,
    bits_matrix,
    check_key,
    edge_bit,
    graph_hash,
    md5_hex,
    spec_hash,
    valid_pruned,
)

log = logging.getLogger("nasheur")

CACHE_FILE = "nb101-specs-v1.npz"
_CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# canonical encodings and enumeration


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
        bits_matrix(bits, n),
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
    m = bits_matrix(bits, n)
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
            start = md5_hex(str((len(succs[v]), len(preds[v]), int(lab)))).encode("ascii")
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
            raise LookupError(
                "this catalogue has no hashes (nasheur.spaces.nb101_catalogue.catalogue())"
            )
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


def entry_of(cat: Catalogue, key: str) -> NB101Spec | None:
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


def known(key: str) -> NB101Spec | None:
    """The canonical spec of a key met in this process, if any."""
    return _KEYED.get(key)


def remember(spec: NB101Spec, key: str) -> None:
    """Keep `key`'s canonical spec for :func:`lookup`, while no catalogue is loaded (once one
    is, it answers for every key)."""
    if key not in _KEYED and not _catalogue_at.cache_info().currsize:
        _KEYED[key] = canonical(spec)


def lookup(key: str) -> NB101Spec:
    """The spec of a hash (its canonical encoding); ValueError if no architecture has it."""
    check_key(key)
    spec = _KEYED.get(key)
    if spec is not None:
        return spec
    path = cache_dir() / CACHE_FILE
    try:
        spec = entry_of(_catalogue_at(path), key)
        if spec is None:  # the spot checks missed the damage: enumerate again, once
            log.warning(
                "NB101 cache %s maps %s to another architecture; enumerating again", path, key
            )
            _catalogue_at.cache_clear()
            path.unlink(missing_ok=True)
            spec = entry_of(_catalogue_at(path), key)
    except KeyError:
        raise ValueError(f"{key} is not the hash of any NB101 architecture") from None
    if spec is None:
        raise RuntimeError(
            f"NB101 cache {path}: the entry of {key} is another architecture even after "
            "enumerating again (a bug: please report it)"
        )
    return spec
