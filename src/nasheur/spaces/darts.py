"""DARTS-NDS: the DARTS cell space as NDS (Radosavovic et al.) sampled and trained it.

A genotype is a normal and a reduction cell. Each cell has two inputs (0: the output of the
cell before the previous one, 1: the previous cell's output) and 4 intermediate nodes; node i
(0-based) sums two terms ``op(input)`` whose inputs are among 0 .. i+1 (k >= 2 being node
k-2), with ops among the 7 of :data:`nasheur.spaces.darts_genotype.OPS` (NDS samples no
``none``). The cell concatenates the nodes of its ``concat`` (2..5 in NDS's samples). The
genotype values, the NDS ``net.genotype`` form and the key live in
:mod:`nasheur.spaces.darts_genotype`; this module is the space (no torch at import): the
stand-alone network is :mod:`nasheur.spaces.darts_net`, the super-net
:mod:`nasheur.supernet.darts`.

Keys are :meth:`Genotype.key`: both cells, every op paired with its input, the two terms of a
node sorted (they are summed, so their order does not change the network), e.g.
``normal[sep_conv_3x3~0+sep_conv_3x3~1|...]reduce[max_pool_3x3~0+max_pool_3x3~1|...]``.
The space is far too large to enumerate (the paper: over 10^13 architectures); its
architectures with ground truth are the NDS samples. ``unique_key`` is the key: it folds
the order of a node's two terms and the order of the ``concat`` (which only permutes the
cell's output channels), nothing else (swapping two independent nodes, a graph isomorphism,
is kept as another architecture).

Sampling. Random-NAS draws, for every node of both cells, each of its two inputs uniformly
among 0 .. i+1 and each of its two ops uniformly among the 7, all independently. **The two
inputs of a node may coincide**, as in the NDS DARTS samples (a node may apply two ops, or the
same op twice, to one input); a genotype found by DARTS's own search never does, but the space
whose ground truth we compare against does. FairNAS draws one topology (the inputs, as above)
and then 7 genotypes on it in which each of the 16 op slots (8 per cell) takes each op exactly
once, in an order drawn per slot. The paper compares samplers on NB101 and NB201 only, and
Random-A (uniform over unique architectures) needs an enumeration that this space lacks, so
the samplers are Random-NAS and FairNAS. Samplers return new genotypes in the
order they were drawn (not canonicalised): with ops on nodes a slot's weights serve whatever
the slot reads, and both terms of a node are drawn alike, so no slot is favoured; keys and
``parse`` give the canonical order.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from nasheur.spaces.darts_genotype import (
    NODES,
    OPS,
    Cell,
    Genotype,
    from_nds,
    parse_key,
)

__all__ = ["OPS", "SLOTS", "DartsSpace", "as_genotype"]

SLOTS = 2 * NODES  # op slots per cell: two terms per node


def as_genotype(arch: Genotype | str | Mapping[str, Any]) -> Genotype:
    """A Genotype from a Genotype, a key string or the NDS ``net.genotype`` dict."""
    if isinstance(arch, Genotype):
        return arch
    if isinstance(arch, str):
        return parse_key(arch)
    if isinstance(arch, Mapping):
        return from_nds(arch)
    raise TypeError(
        f"a DARTS architecture is a Genotype, a key string or an NDS genotype dict, not {type(arch).__name__}"
    )


def _draw_inputs(rng: np.random.Generator) -> tuple[int, ...]:
    """The inputs of the 8 slots of one cell: slot s (node s // 2) uniform over 0 .. node+1."""
    return tuple(int(rng.integers(s // 2 + 2)) for s in range(SLOTS))


def _cell(inputs: tuple[int, ...], ops: tuple[int, ...]) -> Cell:
    return Cell(tuple((OPS[o], i) for o, i in zip(ops, inputs, strict=True)))


class DartsSpace:
    """The DARTS-NDS space: genotypes of a normal and a reduction cell (see the module doc)."""

    name = "darts_nds"
    ops_on = ("edge", "node")
    dynamic_channels = ("fixed",)
    samplers = ("random_nas", "fairnas")
    # f_proxy macro settings: the known answer of spec section 1 (DARTS-V2 at C=36, 20 cells,
    # 3,349,342 parameters). NDS chose width and depth per sample; pass them as overrides.
    macro_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"channels": 36, "layers": 20, "auxiliary": False, "num_classes": 10}
    )

    # the super-net's fewest cells: below 3, the cells at layers // 3 and 2 * layers // 3 are
    # all of them, so every cell reduces and the normal cell, half the genotype, is never used
    min_layers = 3

    @classmethod
    def validate_config(cls, cfg: Any) -> None:
        """DARTS-NDS's own rule: the super-net keeps a normal cell (at least 3 cells)."""
        from nasheur.config import ConfigError

        f = cfg.fidelity
        for key, value in (
            ("fidelity.baseline.layers", f.baseline.layers),
            ("fidelity.layers", f.layers),
        ):
            if value < cls.min_layers:
                raise ConfigError(
                    f"{key}={value} is not supported by search_space=darts_nds: expected an "
                    f"integer >= {cls.min_layers} (its cells at layers // 3 and 2 * layers // 3 "
                    "reduce, so fewer cells leave no normal cell to rank)"
                )

    def key(self, arch: Genotype | str | Mapping[str, Any]) -> str:
        return as_genotype(arch).key()

    def unique_key(self, arch: Genotype | str | Mapping[str, Any]) -> str:
        return self.key(arch)

    def parse(self, key: str) -> Genotype:
        """The canonical genotype of a key (ValueError for a malformed or non-canonical one)."""
        return parse_key(key)

    def validate_key(self, key: str) -> None:
        parse_key(key)

    def sample(self, rng: np.random.Generator) -> Genotype:
        """Random-NAS: every input and every op of both cells uniform and independent."""
        cells = []
        for _ in range(2):  # normal, then reduce
            inputs = _draw_inputs(rng)
            ops = tuple(int(o) for o in rng.integers(len(OPS), size=SLOTS))
            cells.append(_cell(inputs, ops))
        return Genotype(*cells)

    def fair_paths(self, rng: np.random.Generator) -> list[Genotype]:
        """FairNAS: one topology, then one genotype per op in which every op slot of both
        cells takes every op exactly once (a permutation of the 7 ops drawn per slot)."""
        inputs = [_draw_inputs(rng) for _ in range(2)]
        perms = [[rng.permutation(len(OPS)) for _ in range(SLOTS)] for _ in range(2)]
        return [
            Genotype(*(_cell(inputs[c], tuple(int(p[k]) for p in perms[c])) for c in range(2)))
            for k in range(len(OPS))
        ]

    def standalone(self, arch: Genotype | str | Mapping[str, Any], **macro: Any):
        """f_proxy: the DARTS stand-alone network (``channels``, ``layers``, ``auxiliary``,
        ``num_classes``; defaults :attr:`macro_defaults`)."""
        from nasheur.spaces import macro_settings
        from nasheur.spaces.darts_net import DartsNetwork

        return DartsNetwork(
            as_genotype(arch), **macro_settings(self.name, self.macro_defaults, macro)
        )
