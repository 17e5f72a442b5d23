"""Whether a table's runs ran at their experiment's own settings.

A table merges whatever its folders hold. Runs of one setting beside another are shown apart
(:mod:`nasheur.results.settings`), but when every run of an experiment shares a setting off the
experiment's defaults (a whole sweep with ``protocol.epochs=1``, or ``+preset=debug``), that
setting is the main one and nothing in the numbers says so. :func:`off_defaults` composes the
experiment's baseline for a space from the installed config, as the sweeper does before any
command-line override, and names the keys where all of the runs differ from it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from nasheur.config import IDENTITY_EXCLUDED, inactive_keys
from nasheur.results.settings import SHOWN_KEYS, flat_config, space_of, spelt

# besides the keys outside a job's identity: where the data and the ground truth are, which
# each site sets for itself
SITE_KEYS = ("ground_truth", "dataset.root")


@functools.cache
def _composed(experiment: str, space: str) -> tuple[dict[str, Any], tuple[dict, ...]] | None:
    """The resolved config of `experiment`'s baseline job on `space`, with no command-line
    override, and the experiment's blocks that apply to `space`; None where this version
    cannot compose it (an experiment or space it does not know, a record of an older
    version)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from nasheur.config import plain, register_configs, register_resolvers, to_config
    from nasheur.spaces import space_info
    from nasheur.sweep.plan import block_applies

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: not ours to reset
        return None
    register_configs()
    register_resolvers()
    try:
        with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
            cfg = compose(
                "config",
                overrides=[f"+experiment={experiment}", f"search_space={space}"],
                return_hydra_config=True,
            )
        blocks = OmegaConf.to_container(cfg.hydra.sweeper.blocks, resolve=False)
        family = getattr(space_info(space), "paper_space", space)
        applying = tuple(
            {str(k): v for k, v in block.items() if k != "_spaces"}
            for block in blocks
            if block_applies(block, space, family)
        )
        job = OmegaConf.to_container(cfg, resolve=False)
        job.pop("hydra")
        return plain(to_config(OmegaConf.create(job))), applying
    except Exception:  # any failure to compose means: no defaults to compare
        return None


def experiment_defaults(
    experiment: str, space: str
) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """The resolved config of `experiment`'s baseline job on `space`, with no command-line
    override, and the keys its blocks sweep there (factors, and the other keys a block sets,
    as ``sampler`` in ``best``); None where this version cannot compose it."""
    composed = _composed(experiment, space)
    if composed is None:
        return None
    default, blocks = composed
    return default, tuple(sorted({key for block in blocks for key in block}))


def held_values(experiment: str, space: str) -> dict[str, Any] | None:
    """The keys that every block of `experiment` applying to `space` sets to one and the same
    value (WSBN's ablation holds ``supernet.ops_on`` at ``node``): a condition of the
    experiment, not a factor it varies, whatever part of its sweep has run; None where this
    version cannot compose it."""
    composed = _composed(experiment, space)
    if composed is None:
        return None
    _, blocks = composed
    if not blocks:
        return {}
    values: dict[str, list[Any]] = {}
    for block in blocks:
        for key, v in block.items():
            values.setdefault(key, []).extend(v if isinstance(v, list) else [v])
    in_every = set.intersection(*(set(block) for block in blocks))
    return {
        k: vs[0]
        for k, vs in values.items()
        if k in in_every and len({json.dumps(v, sort_keys=True) for v in vs}) == 1
    }


def off_defaults(
    records: Sequence[dict[str, Any]], experiment: str, varied: Iterable[str]
) -> dict[str, list[str]]:
    """For each space of `records` (completed runs of one experiment and setting), the keys
    where every run has one value that is not the experiment's default, as
    ``protocol.epochs=1 (default 1000)``; spaces at their defaults are left out. The seed,
    the `varied` factors, the keys outside a job's identity and the site's paths are not
    compared; another key the experiment's blocks set is compared with the values they give
    (:func:`_off_blocks`)."""
    varied = tuple(varied)
    by_space: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_space.setdefault(str(space_of(r)), []).append(r)
    out: dict[str, list[str]] = {}
    for space, runs in by_space.items():
        composed = experiment_defaults(experiment, space)
        if composed is None:
            continue
        default, swept = composed
        skip = {"seed", *IDENTITY_EXCLUDED, *SITE_KEYS, *varied, *swept, *inactive_keys(default)}
        skip.update(k for r in runs for k in inactive_keys(r.get("config") or {}))
        theirs = [flat_config(r.get("config") or {}) for r in runs]
        differ = _off_blocks(experiment, space, varied, theirs)
        for key, value in sorted(flat_config(default).items()):
            if any(key == s or key.startswith(s + ".") for s in skip):
                continue
            if not all(key in t for t in theirs):  # a record of a version without the key
                continue
            values = {json.dumps(t[key], sort_keys=True) for t in theirs}
            if len(values) == 1:
                (v,) = values
                default_json = json.dumps(value, sort_keys=True)
                if v != default_json:
                    differ.append(f"{key}={spelt(v)} (default {spelt(default_json)})")
        if differ:
            more = len(differ) - SHOWN_KEYS
            out[space] = differ[:SHOWN_KEYS] + ([f"+{more} more"] if more > 0 else [])
    return out


def _off_blocks(
    experiment: str, space: str, varied: tuple[str, ...], theirs: list[dict[str, Any]]
) -> list[str]:
    """The keys that the experiment's blocks set besides its factors (Table 10's NB201 pool
    of 100) where every run has one value that no block gives, as ``eval.pool_size=10 (the
    experiment's 100)``."""
    composed = _composed(experiment, space)
    if composed is None:
        return []
    given = _block_values(composed[1])
    differ = []
    for key, values in sorted(given.items()):
        # a config group (``sampler: [fairnas]``) is its `name` in a record
        flat = key if all(key in t for t in theirs) else f"{key}.name"
        if key in varied or flat in varied or not all(flat in t for t in theirs):
            continue
        ran = {_same(t[flat]) for t in theirs}
        if len(ran) == 1 and not ran <= values.keys():
            shown = ", ".join(spelt(x) for x in sorted(values.values()))
            differ.append(f"{flat}={spelt(json.dumps(theirs[0][flat]))} (the experiment's {shown})")
    return differ


def keys_off(experiment: str | None, space: str, setting: tuple[tuple[str, str], ...]) -> int:
    """How many keys of `setting` ((key, JSON value) pairs) differ from `experiment`'s own
    settings on `space` as this version composes them (0 where it cannot: no experiment, an
    unknown one): a key that the experiment's blocks set is off where its value is none of
    theirs (Table 10's NB201 pool of 100, not the baseline's 200), any other where it is not
    the baseline's."""
    composed = _composed(experiment, space) if experiment else None
    if composed is None:
        return 0
    baseline, blocks = composed
    given = _block_values(blocks)
    default = {k: _same(v) for k, v in flat_config(baseline).items()}
    off = 0
    for key, value in setting:
        ran = _same(json.loads(value))
        # a config group (``sampler: [fairnas]``) is its `name` in a record
        block_key = key if key in given or not key.endswith(".name") else key[: -len(".name")]
        if block_key in given:
            off += ran not in given[block_key]
        elif key in default:
            off += ran != default[key]
    return off


def _block_values(blocks: tuple[dict, ...]) -> dict[str, dict[str, str]]:
    """Each key the blocks set -> each value it takes there, as compared (:func:`_same`) ->
    as written."""
    given: dict[str, dict[str, str]] = {}
    for block in blocks:
        for key, v in block.items():
            for x in v if isinstance(v, list) else [v]:
                given.setdefault(key, {})[_same(x)] = json.dumps(x, sort_keys=True)
    return given


def _same(value: Any) -> str:
    """A value as JSON, a number as a float: a block's 0 and a record's 0.0 are one value."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return json.dumps(float(value) if number else value, sort_keys=True)
