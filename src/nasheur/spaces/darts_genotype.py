"""DARTS genotypes as NDS samples them, and their collision-free key (no torch).

A genotype has a normal and a reduction cell; each cell has 4 intermediate nodes, and node i
(0-based) sums two ops applied to two of its inputs 0 .. i+1 (0 and 1 are the cell's inputs,
k >= 2 is intermediate node k-2). The cell's output concatenates the nodes named by its
`concat` list (2..5 in the NDS DARTS space).

The key covers both cells and pairs every op with its input. The two terms of a node are
summed, so their order does not change the network; the key sorts them, so that two NDS
records of the same network are recognised as repeats. (The authors' own hash ignored the
reduce cell and the op-input pairing; this one does not.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPS: tuple[str, ...] = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
)
NODES = 4
DEFAULT_CONCAT: tuple[int, ...] = (2, 3, 4, 5)

Pair = tuple[str, int]


@dataclass(frozen=True)
class Cell:
    """8 (op, input) pairs, two per node in node order, and the concatenated nodes."""

    pairs: tuple[Pair, ...]
    concat: tuple[int, ...] = DEFAULT_CONCAT

    def __post_init__(self) -> None:
        if len(self.pairs) != 2 * NODES:
            raise ValueError(
                f"a DARTS cell has {2 * NODES} (op, input) pairs, got {len(self.pairs)}"
            )
        for slot, (op, inp) in enumerate(self.pairs):
            node = slot // 2
            if op not in OPS:
                raise ValueError(f"unknown op {op!r} in slot {slot} (ops: {', '.join(OPS)})")
            # a bool is an int equal to 0 or 1 whose key would read True or False
            if isinstance(inp, bool) or not isinstance(inp, int) or not 0 <= inp < node + 2:
                raise ValueError(
                    f"slot {slot} (node {node}) reads input {inp!r}; allowed 0..{node + 1}"
                )
        if (
            not self.concat
            or any(isinstance(c, bool) or not isinstance(c, int) for c in self.concat)
            or any(not 2 <= c < NODES + 2 for c in self.concat)
            or len(set(self.concat)) != len(self.concat)
        ):
            raise ValueError(
                f"concat {self.concat!r} must name distinct nodes among 2..{NODES + 1}"
            )

    def node_terms(self, node: int) -> tuple[Pair, Pair]:
        return self.pairs[2 * node], self.pairs[2 * node + 1]

    def canonical(self) -> Cell:
        """The same cell with each node's two terms, and the concat, in sorted order (another
        order of the concat only permutes the cell's output channels, which the next cell's
        1x1 preprocessing and the classifier take alike: the same network up to a
        permutation of weights)."""
        pairs: list[Pair] = []
        for node in range(NODES):
            pairs.extend(sorted(self.node_terms(node), key=lambda p: (p[1], p[0])))
        return Cell(tuple(pairs), tuple(sorted(self.concat)))

    def key(self) -> str:
        c = self.canonical()
        text = "|".join(
            "+".join(f"{op}~{inp}" for op, inp in c.node_terms(n)) for n in range(NODES)
        )
        if c.concat != DEFAULT_CONCAT:
            text += "|concat=" + ",".join(map(str, c.concat))
        return text


@dataclass(frozen=True)
class Genotype:
    normal: Cell
    reduce: Cell

    def key(self) -> str:
        return f"normal[{self.normal.key()}]reduce[{self.reduce.key()}]"

    def canonical(self) -> Genotype:
        return Genotype(self.normal.canonical(), self.reduce.canonical())

    def to_nds(self) -> dict[str, Any]:
        """The NDS ``net.genotype`` form."""
        return {
            "normal": [[op, inp] for op, inp in self.normal.pairs],
            "normal_concat": list(self.normal.concat),
            "reduce": [[op, inp] for op, inp in self.reduce.pairs],
            "reduce_concat": list(self.reduce.concat),
        }


def _pairs(value: Any, what: str) -> tuple[Pair, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{what} must be a list of [op, input] pairs")
    pairs = []
    for item in value:
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise ValueError(f"{what}: {item!r} is not an [op, input] pair")
        op, inp = item
        if isinstance(inp, bool) or not isinstance(inp, int):
            raise ValueError(f"{what}: input {inp!r} of {op!r} is not an integer")
        pairs.append((str(op), int(inp)))
    return tuple(pairs)


def _concat(value: Any, what: str) -> tuple[int, ...]:
    # a JSON string ("2345") or number (5) would reach Cell's range check as a TypeError
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{what} {value!r} must be a list of node numbers")
    for c in value:
        if isinstance(c, bool) or not isinstance(c, int):
            raise ValueError(f"{what}: {c!r} is not an integer node number")
    if not value or any(not 2 <= c < NODES + 2 for c in value) or len(set(value)) != len(value):
        raise ValueError(f"{what} {value!r} must name distinct nodes among 2..{NODES + 1}")
    return tuple(value)


NDS_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def from_nds(genotype: Mapping[str, Any]) -> Genotype:
    """Parse the NDS ``net.genotype`` form; ValueError names what is wrong."""
    unknown = set(genotype) - set(NDS_KEYS)
    if unknown:  # a misspelt concat key would otherwise fall back to the default silently
        raise ValueError(
            f"a DARTS genotype has the keys {', '.join(NDS_KEYS)}, not {', '.join(sorted(unknown))}"
        )
    try:
        return Genotype(
            Cell(
                _pairs(genotype["normal"], "normal"),
                _concat(genotype.get("normal_concat", DEFAULT_CONCAT), "normal_concat"),
            ),
            Cell(
                _pairs(genotype["reduce"], "reduce"),
                _concat(genotype.get("reduce_concat", DEFAULT_CONCAT), "reduce_concat"),
            ),
        )
    except KeyError as err:
        raise ValueError(f"a DARTS genotype needs 'normal' and 'reduce', missing {err}") from None


def parse_key(key: str) -> Genotype:
    """The inverse of :meth:`Genotype.key` (returns the canonical genotype)."""
    try:
        head, sep, tail = key.partition("]reduce[")
        if not sep or not head.startswith("normal[") or not tail.endswith("]"):
            raise ValueError("expected normal[...]reduce[...]")
        cells = []
        for text in (head[len("normal[") :], tail[:-1]):
            parts = text.split("|")
            concat = DEFAULT_CONCAT
            if parts and parts[-1].startswith("concat="):
                concat = tuple(int(c) for c in parts.pop()[len("concat=") :].split(","))
            if len(parts) != NODES:
                raise ValueError(f"{len(parts)} nodes, expected {NODES}")
            pairs: list[Pair] = []
            for part in parts:
                terms = part.split("+")
                if len(terms) != 2:
                    raise ValueError(f"node {part!r} needs two terms")
                for term in terms:
                    op, tilde, inp = term.partition("~")
                    if not tilde or not inp.isdigit():
                        raise ValueError(f"term {term!r} is not op~input")
                    pairs.append((op, int(inp)))
            cells.append(Cell(tuple(pairs), concat))
        genotype = Genotype(*cells)
    except ValueError as err:
        raise ValueError(f"not a DARTS genotype key: {key!r}: {err}") from None
    if genotype.key() != key:
        raise ValueError(
            f"not a canonical DARTS genotype key: {key!r} (canonical: {genotype.key()!r})"
        )
    return genotype
