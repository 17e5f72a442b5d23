"""Which runs may be merged: the same job counted once, and runs of one setting apart from
runs of another.

A sweep folder can hold more than one sweep of an experiment: a first try with
``+preset=debug`` or ``protocol.epochs=1`` beside the real one, or a copy of a job folder.
Averaging those as if they were seeds would give a number that no setting has. So a run's
*setting* is its resolved config without the seed, the factors a table or figure varies and
the keys outside a job's identity (`nasheur.config.IDENTITY_EXCLUDED`: device, data folder,
speed options, the experiment's name; and the keys nothing reads under the config,
`inactive_keys`). Per
search space the setting with the most completed runs is the main one; every other setting
is named by the keys where it differs from the main one (``protocol.epochs=1``), and the
tables and figures show it apart, under that name.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nasheur.config import (
    ADDED_KEYS,
    IDENTITY_EXCLUDED,
    ExperimentConfig,
    config_hash,
    inactive_keys,
    inert_settings,
)

SHOWN_KEYS = 3  # keys named in a setting's label; more are counted ("+2 more")


_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:e-?\d+)?)")


def natural_key(text: str) -> tuple[Any, ...]:
    """A sort key that orders the numbers inside `text` by value (``epochs=200`` before
    ``epochs=1000``, ``lr=0.005`` before ``lr=0.01``), the rest as text."""
    parts = _NUMBER.split(text)
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


def experiment_name(record: dict[str, Any]) -> str | None:
    """The experiment a run belongs to (``+experiment=<name>``), None for a run of none: a
    plain job or a `-m` sweep without an experiment, whose config keeps the schema's default
    name (``multirun``, its sweep folder's name) without a table or factors."""
    experiment = (record.get("config") or {}).get("experiment") or {}
    if not isinstance(experiment, dict):
        return None
    name = experiment.get("name") or None
    plain_run = not (experiment.get("table") or experiment.get("factors"))
    return None if name == ExperimentConfig.name and plain_run else name


def flat_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"protocol.lr": 0.1, ...}`` (an empty section is one key)."""
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flat_config(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def setting(
    record: dict[str, Any], varied: Iterable[str], files: Iterable[str] = ()
) -> tuple[tuple[str, str], ...]:
    """The record's setting: its config as sorted (dotted key, JSON value) pairs, without the
    seed, the `varied` keys (and their sub-keys) and the keys outside a job's identity; where
    ``$NASHEUR_GT_<SPACE>`` or a relative path named the job's ground truth, that file as
    ``ground_truth.path`` (:func:`ground_truth_named`, `files`: the candidates)."""
    config = record.get("config") or {}
    skip = ("seed", *IDENTITY_EXCLUDED, *inactive_keys(config), *varied)
    flat = flat_config(config)
    named = ground_truth_named(record, files)
    if named is not None:  # another file is another job (its hash): never one setting
        flat["ground_truth.path"] = named
    return tuple(
        sorted(
            (k, json.dumps(v, sort_keys=True))
            for k, v in flat.items()
            if not any(k == s or k.startswith(s + ".") for s in skip)
        )
    )


def _read(record: dict[str, Any]) -> str | None:
    """The ground-truth file a completed record says its job read (an absolute path)."""
    gt = record.get("ground_truth")
    read = gt.get("path") if isinstance(gt, dict) else None
    return os.path.abspath(read) if isinstance(read, str) and read and "\0" not in read else None


def ground_truth_files(records: Iterable[dict[str, Any]]) -> list[str]:
    """The ground-truth files that the records say their jobs read."""
    return sorted({p for p in map(_read, records) if p is not None})


def ground_truth_named(record: dict[str, Any], files: Iterable[str]) -> str | None:
    """The ground-truth file of a job whose config does not name it by an absolute path: a
    null ``ground_truth.path`` stands for the file ``$NASHEUR_GT_<SPACE>`` named, and a
    relative one for a file of the folder the job was launched from; either file is part of
    the job's identity (its config hash), not of its config. None where the config names
    the file itself, or the environment named none (a space's shipped table, read from
    wherever nasheur is installed, is not part of the hash); else the one of `files` that
    reproduces the record's hash (a failed job's record names no file), or where none does
    (a record of an earlier version) the file the record names, unless that is a shipped
    table."""
    config, stored = record.get("config"), record.get("config_hash")
    if not isinstance(config, dict):
        return None
    given = select(config, "ground_truth.path")
    if given is not None and not (isinstance(given, str) and _relative(given)):
        return None
    try:
        if given is None and (not stored or config_hash(config, ground_truth=None) == stored):
            return None
        gt = config.get("ground_truth") or {}
        for path in files if stored else ():
            if config_hash({**config, "ground_truth": {**gt, "path": path}}) == stored:
                return path
    except (AttributeError, TypeError, ValueError):  # a hand-edited config
        pass
    read = _read(record)
    return None if read is None or _shipped(read, space_of(record)) else read


def _relative(path: str) -> bool:
    return not os.path.isabs(os.path.expanduser(path))


def _shipped(path: str, space: Any) -> bool:
    """Whether `path` is the table `space` ships with, in this install or another (the same
    place inside the package)."""
    from nasheur.spaces import space_info

    try:
        shipped = getattr(space_info(space), "shipped_ground_truth", None)
    except (KeyError, TypeError):  # a record of an unknown space
        return False
    if shipped is None:
        return False
    package = Path(__file__).resolve().parents[1]  # .../nasheur
    inside = ("nasheur", *Path(shipped()).resolve().relative_to(package).parts)
    return Path(path).parts[-len(inside) :] == inside


def ground_truth_versions(records: Iterable[dict[str, Any]]) -> list[str]:
    """A line for each ground-truth file whose completed records were evaluated against
    different contents (their fingerprints' sha256: the file was replaced and only some jobs
    were evaluated again, or one failed to be): their results do not compare, though they
    are one setting. The same command that launched the sweep evaluates the stale ones again
    from their checkpoints."""
    versions: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        fingerprint = select(r, "ground_truth.fingerprint")
        if r.get("status") != "completed" or not isinstance(fingerprint, dict):
            continue
        path, sha = fingerprint.get("path"), fingerprint.get("sha256")
        if isinstance(path, str) and isinstance(sha, str):
            versions[path][sha] += 1
    return [
        f"runs evaluated against {len(shas)} versions of {path} ("
        + ", ".join(f"sha256 {sha[:12]}: {n} run(s)" for sha, n in sorted(shas.items()))
        + "); launch the sweep again to evaluate the stale ones with the current file"
        for path, shas in sorted(versions.items())
        if len(shas) > 1
    ]


def experiment_factors(records: Iterable[dict[str, Any]]) -> list[str]:
    """The factors of an experiment's runs, in order: those of every run, each once (a run
    written before a factor was added lists fewer)."""
    found: dict[str, None] = {}
    for r in records:
        experiment = (r.get("config") or {}).get("experiment") or {}
        found.update(dict.fromkeys(experiment.get("factors") or []))
    return list(found)


_ABSENT = object()


def select(data: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; `default` where a level is missing."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def factor_name(dotted: str) -> str:
    """A factor's short name in labels: its key's last part (``lr``), or for a group's
    ``name`` the group (``sampler``, not ``name``)."""
    head, _, last = dotted.rpartition(".")
    return head.rpartition(".")[2] if last == "name" and head else last


# the order of a categorical factor's values in the paper's tables (others by text); Table
# 11 lists Random-A before Random-NAS
VALUE_ORDER = {
    v: i
    for order in (
        ("random_a", "random_nas", "fairnas"),
        ("fixed", "shuffle", "interpolate", "disabled"),
        ("edge", "node"),
    )
    for i, v in enumerate(order)
}


def factor_value(config: dict[str, Any], dotted: str) -> Any:
    """A factor's value in a run's config; for a key added after the run was written, the
    key's default (which the run had)."""
    value = select(config, dotted, _ABSENT)
    return ADDED_KEYS.get(dotted) if value is _ABSENT else value


def _images(record: dict[str, Any]) -> float:
    """The training images of a run, from its history (0 where it has none)."""
    history = record.get("history") or []
    return float(sum(h.get("images") or 0 for h in history if isinstance(h, dict)))


def spelt(value_json: str) -> str:
    """A config value as the command line spells it: `true`, `null`, `node`."""
    value = json.loads(value_json)
    return value if isinstance(value, str) else value_json


def _label(this: tuple[tuple[str, str], ...], main: tuple[tuple[str, str], ...]) -> str:
    a, b = dict(this), dict(main)
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    shown = [f"{k}={spelt(a[k]) if k in a else '(unset)'}" for k in diff[:SHOWN_KEYS]]
    more = len(diff) - SHOWN_KEYS
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def setting_labels(records: Sequence[dict[str, Any]], varied: Iterable[str]) -> list[str]:
    """For each record, "" when it has its search space's main setting (the one with the most
    completed runs, then the most training images per completed run; where none completed, the
    most runs; then the fewest keys off the experiment's own settings), else the keys where its
    setting differs (``protocol.epochs=1``).
    Two settings that differ only beyond the first keys named still get distinct labels."""
    varied = tuple(varied)
    files = ground_truth_files(records)
    settings = [setting(r, varied, files) for r in records]
    runs: dict[Any, Counter] = defaultdict(Counter)  # space -> setting -> runs
    done: dict[Any, Counter] = defaultdict(Counter)  # space -> setting -> completed runs
    for r, s in zip(records, settings, strict=True):
        runs[space_of(r)][s] += 1
        done[space_of(r)][s] += r.get("status") == "completed"
    # the setting with the most completed runs, then the most training images per completed
    # run (a `+preset=debug` try of 5 steps an epoch beside the real sweep, whatever failed
    # runs either has: so the choice is the same from the completed runs alone, as Table 3
    # and Fig. 6 make it), then (where none completed) the most runs; among equals, the first in sorted order (no
    # dependence on the order the files were found in)
    images: dict[Any, Counter] = defaultdict(Counter)  # space -> setting -> images trained
    for r, s in zip(records, settings, strict=True):
        if r.get("status") == "completed":
            images[space_of(r)][s] += _images(r)

    def rank(s: Any, c: Counter, d: Counter, n: Counter) -> tuple[Any, ...]:
        # the most runs only where none completed: else the failed runs would still decide
        # between settings of equal completed runs and images, which Table 3 and the figures
        # (completed runs alone) then choose otherwise
        return (-d[s], -n[s] / d[s] if d[s] else 0.0, 0 if d[s] else -c[s])

    from nasheur.results.defaults import keys_off  # it imports this module

    names = {experiment_name(r) for r in records}
    experiment = names.pop() if len(names) == 1 else None
    main = {}
    for space, counts in runs.items():
        ranks = {s: rank(s, counts, done[space], images[space]) for s in counts}
        best = min(ranks.values())
        tied = sorted(s for s in counts if ranks[s] == best)
        # among equals, the one nearer the experiment's own settings (a sweep at its default
        # pool beside a try with a pool of 20, both as long), then the first in sorted order
        main[space] = (
            tied[0]
            if len(tied) == 1
            else min(tied, key=lambda s, sp=space: (keys_off(experiment, str(sp), s), s))
        )
    labels: dict[tuple[Any, tuple[tuple[str, str], ...]], str] = {}
    taken: set[tuple[Any, str]] = set()
    for space, counts in runs.items():
        for s in sorted(counts):
            if s == main[space]:
                labels[(space, s)] = ""
                continue
            label, n = _label(s, main[space]), 1
            while (space, label) in taken:  # distinct settings, equal short labels
                n += 1
                label = f"{_label(s, main[space])} (#{n})"
            taken.add((space, label))
            labels[(space, s)] = label
    return [labels[(space_of(r), s)] for r, s in zip(records, settings, strict=True)]


def main_settings(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The records of each experiment's main setting, and how many of other settings were left
    out (a debug try beside a real sweep): for measures across experiments (Table 3, Fig. 6),
    which would otherwise mix them in. Records of no experiment (a plain run, a `-m` sweep
    without ``+experiment``) are all kept: nothing says which of them a try is. An experiment
    without factors (``best``) has one setting per space like any other."""
    by_experiment: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_experiment[experiment_name(r)].append(r)
    kept, left_out = list(by_experiment.pop(None, [])), 0
    for recs in by_experiment.values():
        for r, label in zip(recs, setting_labels(recs, experiment_factors(recs)), strict=True):
            if label:
                left_out += 1
            else:
                kept.append(r)
    return kept, left_out


def distinct_jobs(
    records: Sequence[dict[str, Any]], *, per_experiment: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """The records with each job (`job_identity`, which covers the seed) once, and how many
    copies were dropped; a completed copy is kept over an unfinished one. Records without a
    hash (not written by a job) are all kept.

    `per_experiment`: once per experiment. The experiment's name is outside a job's identity,
    so the baseline job of every one-factor sweep has the same hash; each experiment's table
    and figures need their own copy (its baseline row), while measures across all runs
    (Table 3, Fig. 6) count the job once."""
    kept: dict[Any, dict[str, Any]] = {}
    for i, r in enumerate(records):
        key = _job_key(r, per_experiment, ("no hash", i))
        held = kept.get(key)
        if held is None or (held.get("status") != "completed" and r.get("status") == "completed"):
            kept[key] = r
    return list(kept.values()), len(records) - len(kept)


def job_identity(record: dict[str, Any]) -> Any:
    """The job a record is of: its `config_hash`, or for a config with a setting that changes
    nothing (`inert_settings`) the hash of the config with the setting that means the same,
    so that Table 4's batch-size jobs and `batch_size_ablation`'s of the same batch and seed
    are one. Recomputed only where the record's own hash is reproduced from its config (with
    the ground-truth file its job read, the environment's, or none), else the stored hash: a
    record of another version or a hand-edited one is counted as written."""
    stored = record.get("config_hash")
    config = record.get("config")
    same = inert_settings(config) if stored and isinstance(config, dict) else {}
    if not same:
        return stored
    neutral = json.loads(json.dumps(config))
    for dotted, value in same.items():
        *parents, last = dotted.split(".")
        node = neutral
        for p in parents:
            node = node[p]
        node[last] = value
    read = select(record, "ground_truth.path")  # what a null ground_truth.path stood for
    try:
        if config_hash(config) == stored:  # the environment's file, or the config's own
            return config_hash(neutral)
        for path in (read, None):
            if config_hash(config, ground_truth=path) == stored:
                return config_hash(neutral, ground_truth=path)
    except (AttributeError, TypeError, ValueError):  # a hand-edited config
        pass
    return stored


def _job_key(record: dict[str, Any], per_experiment: bool, no_hash: Any = None) -> Any:
    """What makes two records copies of one job: its identity (`job_identity`; `no_hash`
    where it has none), and with `per_experiment` its experiment too."""
    key = job_identity(record) or no_hash
    return (experiment_name(record), key) if per_experiment else key


def disagreeing_copies(
    records: Sequence[dict[str, Any]], *, per_experiment: bool = False
) -> list[str]:
    """A line for each job (as :func:`distinct_jobs` groups them) whose completed copies
    record different metrics (a job run twice, on other hardware, rounds otherwise; a copy
    made by a sweep is identical): which copy counts, the first completed one in the order
    read as `distinct_jobs` keeps it, and which do not."""
    copies: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("config_hash") and r.get("status") == "completed":
            copies[_job_key(r, per_experiment)].append(r)
    lines = []
    for same in copies.values():
        if len({json.dumps(c.get("metrics"), sort_keys=True) for c in same}) > 1:
            lines.append(
                f"job {same[0]['config_hash']} has completed copies with different metrics: "
                f"counted {same[0].get('path')}, not {', '.join(str(c.get('path')) for c in same[1:])}"
            )
    return lines


def space_of(record: dict[str, Any]) -> Any:
    """The search space a run's record names (None where it names none)."""
    return select(record, "config.search_space.name")
