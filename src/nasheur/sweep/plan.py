"""The jobs of a sweep: an experiment's blocks, each the cartesian product of its keys'
values, over its spaces and seeds and the command line's own sweep; relative low-fidelity
levels (``base/2``) resolved against each space's baseline.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from nasheur.fidelity import LEVEL, resolve_level


class SweepError(HydraException):
    """An error of the sweep itself: ``sweep`` prints it as one message and exits with
    `status` (2: the plan is wrong and nothing was launched; 1: jobs did not complete)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def resolve_relative(key: str, value: Any, baseline: DictConfig) -> Any:
    """A level relative to one space's baseline (`base`, `base-1`, `base/2`:
    :func:`nasheur.fidelity.resolve_level`) as its value, else `value`."""
    if not (isinstance(value, str) and LEVEL.fullmatch(value)):
        return value
    name = key.rpartition(".")[2]
    base = OmegaConf.select(baseline, name)
    if base is None:
        raise SweepError(f"{key}={value}: relative values need fidelity.baseline.{name}")
    try:
        return resolve_level(value, base)
    except ValueError as err:
        raise SweepError(f"{key}={value}: {err}") from None


def block_applies(block: dict[str, Any], space: str, family: str) -> bool:
    """Whether an experiment's block sweeps `space`: it names no ``_spaces``, or names the
    space or the paper space it stands in for (`family`: nb201 for embedded)."""
    only = block.get("_spaces")
    return only is None or space in only or family in only


def expand(
    spaces: Sequence[str],
    seeds: Sequence[Any],
    blocks: Sequence[dict[str, Any]],
    baselines: dict[str, Any],
    extra: Sequence[Sequence[str]] = ((),),
    paper_space: dict[str, str] | None = None,
    pinned: dict[str, Sequence[Any]] | None = None,
) -> list[list[str]]:
    """The jobs of a sweep: for every space, the union of its blocks (each the cartesian product
    of its keys' values, relative fidelity values resolved against the space's baseline), times
    the seeds, times the command line's own sweep (`extra`). Duplicates are dropped. A block's
    ``_spaces`` also admits a space whose ``paper_space`` is listed (embedded: nb201).

    `pinned` holds the command line's values of keys that blocks sweep. Where every one of them
    is a value the experiment lists (in some block of some space, levels resolved), they
    restrict the sweep, as ``search_space=`` and ``seed=`` do: each block keeps its own values
    among them, and a block (or space) with none of them runs nothing. Otherwise (a value off
    the experiment's list) they replace every block's values of the key, and a block without
    the key sweeps them too, so that every job names each key once."""
    jobs: list[list[str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    baseline_of = {s: OmegaConf.create(baselines.get(s) or {}) for s in spaces}
    restricts = restricting(spaces, blocks, baselines, paper_space, pinned)

    def applies(block: dict[str, Any], space: str) -> bool:
        return block_applies(block, space, (paper_space or {}).get(space, space))

    for space in spaces:
        baseline = baseline_of[space]
        for block in blocks or [{}]:
            if not applies(block, space):
                continue
            block = dict(block)
            for key, values in (pinned or {}).items():
                block[key] = (
                    _held(block, key, values, baseline_of[space])
                    if restricts[key]
                    else list(values)
                )
            keys = [k for k in block if k != "_spaces"]
            for combo in itertools.product(*(block[k] for k in keys)):
                items = [
                    f"{k}={format_value(resolve_relative(k, v, baseline))}"
                    for k, v in zip(keys, combo, strict=True)
                ]
                for seed in seeds:
                    for tail in extra:
                        job = [f"search_space={space}", *items, f"seed={seed}", *tail]
                        ident = tuple(sorted(dict(i.split("=", 1) for i in job).items()))
                        if ident not in seen:
                            seen.add(ident)
                            jobs.append(job)
    return jobs


def _held(
    block: dict[str, Any], key: str, values: Sequence[Any], baseline: DictConfig
) -> list[Any]:
    """The block's values of `key` that the command line names (as the jobs spell them)."""
    wanted = {format_value(resolve_relative(key, v, baseline)) for v in values}
    return [
        v for v in block.get(key, []) if format_value(resolve_relative(key, v, baseline)) in wanted
    ]


def restricting(
    spaces: Sequence[str],
    blocks: Sequence[dict[str, Any]],
    baselines: dict[str, Any],
    paper_space: dict[str, str] | None = None,
    pinned: dict[str, Sequence[Any]] | None = None,
) -> dict[str, bool]:
    """For each key of `pinned`, whether its values restrict the sweep of `spaces` (every one
    of them is a value that a block of one of these spaces lists) or replace its values."""
    baseline_of = {s: OmegaConf.create(baselines.get(s) or {}) for s in spaces}
    every = [
        (b, s)
        for s in spaces
        for b in blocks or [{}]
        if block_applies(b, s, (paper_space or {}).get(s, s))
    ]
    return {
        key: all(any(_held(b, key, [v], baseline_of[s]) for b, s in every) for v in values)
        for key, values in (pinned or {}).items()
    }


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def values_of(o: Override) -> list[Any]:
    """An override's values as Hydra sets them: typed, and without the quotes the grammar
    allows around any of them (``sampler='fairnas',random_nas``; a sweep's elements keep
    them, as the parser's own objects, where a plain value loses them)."""
    if not o.is_sweep_override():
        return [o.value()]
    return [Override._convert_value(v) for v in o.sweep_iterator()]


def names_levels(o: Override) -> bool:
    """Whether the command line gives a low-fidelity key levels (``fidelity.channels=base/2,
    base``), which only the sweeper can resolve, against each space's baseline."""
    key = o.key_or_group
    if not key.startswith("fidelity.") or key.startswith("fidelity.baseline.") or o.is_delete():
        return False
    return any(isinstance(v, str) and LEVEL.fullmatch(v) for v in values_of(o))


class Planned(NamedTuple):
    """A job as a launch plans it: composed and validated by the sweeper
    (``AblationSweeper._check``)."""

    overrides: list[str]
    folder: Path
    config_hash: str
    experiment: dict[str, Any]  # the resolved ``experiment`` node
    reads: Reads
    training: str  # its training hash (nasheur.config.training_hash)


@dataclass(frozen=True)
class Reads:
    """What a job reads that a launch can look at before it launches: its CIFAR-10 folder
    (None: other data) and its config, for its ground truth and device (None: neither is
    looked at; ``hydra.sweeper.check_data=false``)."""

    cifar: str | None
    config: Any = None  # nasheur.config.Config


def grouped(errors: dict[str, list[list[str]]], most: int = 20) -> str:
    """One line per message, with the jobs that got it (a bad value on the command line is
    every job's error)."""
    lines = [
        f"  {' '.join(bad[0])}: {said}"
        if len(bad) == 1
        else f"  {said} ({len(bad)} jobs, e.g. {' '.join(bad[0])})"
        for said, bad in errors.items()
    ]
    more = [f"  ... and {len(lines) - most} more"] if len(lines) > most else []
    return "\n".join(lines[:most] + more)
