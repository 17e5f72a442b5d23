"""NAS-Bench-101: cells of at most 7 vertices and 9 edges, one op on each interior vertex.

Encodings and ground-truth bookkeeping only (no torch at import): the stand-alone network
(f_proxy) lives in :mod:`nasheur.spaces.nb101_net`, the super-net in
:mod:`nasheur.supernet.nb101`.

The cells themselves (specs, pruning, the official hash, widths) are
:mod:`nasheur.spaces.nb101_cell`; the enumeration of every unique architecture and the lookup of
a hash, :mod:`nasheur.spaces.nb101_catalogue`. This module re-exports their public names
(``from nasheur.spaces.nb101 import spec_hash``, as the spec writes it).

Samplers (spec section 3): Random-NAS (:meth:`NB101Space.sample`) draws each of the 21
upper-triangular edges with probability 1/2 and each of the 5 interior ops uniformly, prunes,
and rejects until valid, so architectures with many encodings are oversampled, as in the
paper. Random-A (:meth:`NB101Space.sample_unique`) is uniform over the unique hashes and needs
the enumeration. FairNAS (:meth:`NB101Space.fair_paths`) samples one topology as Random-NAS,
then returns 3 specs on it in which every interior vertex takes each op exactly once.

Dynamic channels: an interior vertex's width depends on how many interior vertices feed the
output (:func:`nasheur.spaces.nb101_cell.vertex_widths`). ``supernet.dynamic_channels=disabled`` splits the space into
sub-spaces by that number k (:class:`NB101SubSpace`); Table 7's baseline searches a random
subset of the space as large as sub-space k instead (:class:`NB101RandomSubset`,
``supernet.random_subspace``), and evaluates a second pool in sub-space k (Table 6). See
:data:`SUBSPACES`, :meth:`NB101Space.for_config` and :meth:`NB101Space.extra_pools`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from nasheur.spaces import nb101_catalogue
from nasheur.spaces.nb101_catalogue import (
    Catalogue,
    CatalogueView,
    build_catalogue,
    canonical,
    canonical_code,
    catalogue,
    lookup,
    read_catalogue,
    save_catalogue,
    unique_archs,
)
from nasheur.spaces.nb101_cell import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAX_EDGES,
    MAX_VERTICES,
    MAXPOOL3X3,
    NUM_EDGE_SLOTS,
    NUM_UNIQUE,
    OPS,
    OUTPUT,
    SUBSPACE_POOL,
    SUBSPACES,
    NB101Spec,
    bits_matrix,
    check_key,
    edge_bit,
    graph_hash,
    make_spec,
    output_feeders,
    spec_hash,
    valid_pruned,
    vertex_widths,
)

# the space's own names, and those of its cells and catalogue that users import from here
# (the spec names nasheur.spaces.nb101.spec_hash)
__all__ = [
    "CONV1X1",
    "CONV3X3",
    "INPUT",
    "MAXPOOL3X3",
    "MAX_EDGES",
    "MAX_VERTICES",
    "NUM_EDGE_SLOTS",
    "NUM_UNIQUE",
    "OPS",
    "OUTPUT",
    "SUBSPACES",
    "SUBSPACE_POOL",
    "Catalogue",
    "NB101RandomSubset",
    "NB101Space",
    "NB101Spec",
    "NB101SubSpace",
    "build_catalogue",
    "canonical",
    "catalogue",
    "edge_bit",
    "graph_hash",
    "lookup",
    "make_spec",
    "output_feeders",
    "random_spec",
    "read_catalogue",
    "save_catalogue",
    "spec_hash",
    "unique_archs",
    "valid_pruned",
    "vertex_widths",
]


def random_spec(rng: np.random.Generator) -> NB101Spec:
    """Random-NAS: the 21 edges of a 7-vertex matrix each on with probability 1/2 (drawn in
    bit order), the 5 interior ops uniform, then pruned; rejected until valid."""
    n = MAX_VERTICES
    while True:
        on = rng.integers(0, 2, size=NUM_EDGE_SLOTS)
        ops = rng.integers(0, len(OPS), size=n - 2)
        bits = sum(1 << b for b in range(NUM_EDGE_SLOTS) if on[b])
        spec = NB101Spec(bits_matrix(bits, n), (INPUT, *(OPS[int(o)] for o in ops), OUTPUT))
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
        if isinstance(arch, Mapping):  # it would unpack into its two keys' names
            raise ValueError(
                f"an NB101 architecture is a spec, a hash or a (matrix, ops) pair, not a "
                f"mapping (keys {sorted(map(str, arch))}); pass its matrix and ops as a pair"
            )
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
        nb101_catalogue.remember(spec, key)
        return key

    def unique_key(self, arch: Arch) -> str:
        return self.key(arch)

    def parse(self, key: str) -> NB101Spec:
        if self._catalogue is not None and nb101_catalogue.known(key) is None:
            check_key(key)
            try:
                spec = nb101_catalogue.entry_of(self._catalogue, key)
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
        from nasheur.spaces import macro_settings
        from nasheur.spaces.nb101_net import NB101Network

        return NB101Network(
            self.spec(arch), **macro_settings(self.name, self.macro_defaults, macro)
        )


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
        spec = nb101_catalogue.known(key)
        if spec is not None:
            return self.contains(spec)
        return key.encode() in self._members

    @cached_property
    def _members(self) -> frozenset[bytes]:
        return frozenset(self._member_hashes(self._hashed()).tolist())

    def sample(self, rng: np.random.Generator) -> NB101Spec:
        """Random-NAS inside: drawn as in the full space, rejected until a member (sub-space
        4 gets about 1% of Random-NAS's draws, some 100 tries each; a random subset as large 2%,
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
