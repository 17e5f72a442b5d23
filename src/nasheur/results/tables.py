"""The paper's tables from merged metrics.json records (numpy/scipy only, no torch).

A table is a list of blocks, one per experiment (e.g. Table 11: batch norm, learning rate,
epochs, weight decay, sampler). A block's rows are the values of the experiment's factors
(`experiment.factors` of its records, each once: a record written before a factor was added
has the factor's default); its columns are the search spaces, each with the paper's four
metrics: super-net accuracy, sparse Kendall tau, P>R and final performance. Tables 5-7 share
one experiment: Tables 5 and 7 show sections of its runs (:data:`SECTIONS`), and Table 6 one
row per (training, testing) with dynamic channels, each a mean over the sub-spaces
(:data:`TABLE_6`).

Each cell aggregates the completed runs (seeds) of one row and space: mean ± std over seeds
(population std, numpy's ddof=0; no std for a single run, where it is undefined, rather than
0), and for the ranking metrics a 95% bootstrap interval over architectures and seeds
(resample the runs, then each run's pool), which the paper lacks. A run whose correlation is
undefined (all its super-net accuracies equal) is left out of that metric's mean, and the cell
says over how many runs the mean is (``n=2 of 3``). Super-net accuracy is shown as the paper
shows it, the mean over seeds of each run's mean ± the mean over seeds of each run's std over
its pool (the CSV also has the std over seeds). Runs whose mean super-net accuracy is below 0.4 are marked untrained
(†); a cell without a completed run is missing (—), one whose runs all leave the metric
undefined is N/A (the paper's mark); a cell over another number of runs than the paper's 3
says how many (``n=4``); failed, unreadable and duplicate records
are counted beside the table.

Rows of the low-fidelity factors that each space counts from its own baseline (layers,
channels, batch size) are the level relative to the run's `fidelity.baseline` (``base``,
``base-1``, ``base/2``), as in the paper's Table 12, so that one row holds the same level of
every space; the absolute value follows where the row's runs share it. Runs of an experiment
whose settings differ beyond the factors and the seed (a debug try beside the real sweep) go
in a block of their own, titled with what differs (:mod:`nasheur.results.settings`).
"""

from __future__ import annotations

import json
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from nasheur import metrics
from nasheur.fidelity import LEVEL, level_of
from nasheur.results.defaults import off_defaults
from nasheur.results.settings import (
    VALUE_ORDER,
    disagreeing_copies,
    distinct_jobs,
    experiment_factors,
    experiment_name,
    factor_name,
    factor_value,
    ground_truth_versions,
    main_settings,
    select,
    setting_labels,
)
from nasheur.spaces.nb101_cell import SUBSPACE_POOL, SUBSPACES  # numpy only

SPACES = ("nb101", "nb201", "darts_nds", "embedded")  # the paper's three, then nasheur's own
SPACE_TITLES = {
    "nb101": "NAS-Bench-101",
    "nb201": "NAS-Bench-201",
    "darts_nds": "DARTS-NDS",
    "embedded": "Embedded (NB201 cells, procedural)",
}

# table -> its blocks (experiments) in the paper's order, with their titles
TABLES: dict[str, list[tuple[str, str]]] = {
    "11": [
        ("bn_ablation", "Batch norm"),
        ("lr_ablation", "Learning rate"),
        ("epochs_ablation", "Epochs"),
        ("wd_ablation", "Weight decay"),
        ("sampler_ablation", "Sampling"),
    ],
    "12": [
        ("layers_ablation", "Number of layers"),
        ("portion_ablation", "Train portion"),
        ("batch_size_ablation", "Batch size"),
        ("channels_ablation", "Number of channels"),
    ],
    "13": [
        ("ofa_ablation", "OFA kernel"),
        ("wsbn_ablation", "WSBN"),
        ("path_dropout_ablation", "Path dropout rate"),
        ("global_dropout_ablation", "Global dropout"),
    ],
    "9": [("ops_on_ablation", "Ops on node or edge")],
    "5": [("dynamic_channels_ablation", "Dynamic channels (NB101)")],
    "6": [("dynamic_channels_ablation", "Dynamic channels in training and in testing (NB101)")],
    "7": [("dynamic_channels_ablation", "Sub-spaces and random subsets as large (NB101)")],
    "4": [("low_fidelity_budget", "Low fidelity under the same budget (NB201)")],
    "14": [("best", "Best settings")],
    "10": [("final_search", "Final search")],
}
# Tables 5-7 share dynamic_channels_ablation. Tables 5 and 7 show some of its runs each, as
# sections: a title and the factor values of its runs (those factors then name no row)
_WHOLE_SPACE = {"supernet.random_subspace": False}
_RANDOM_SUBSETS = {"supernet.random_subspace": True}
_DISABLED = {"supernet.dynamic_channels": "disabled", **_WHOLE_SPACE}
# Table 4: the paper's four groups, each of one factor with the others at the reference (the
# baseline at twice its batch size), which each group shows as a row
_REFERENCE_4 = {
    "fidelity.batch_size": "base*2",
    "fidelity.channels": "base",
    "fidelity.layers": "base",
    "fidelity.train_portion": "base",
}
SECTIONS: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {
    ("4", "low_fidelity_budget"): [
        (title, {k: v for k, v in _REFERENCE_4.items() if k != factor})
        for title, factor in (
            ("batch size", "fidelity.batch_size"),
            ("initial channels", "fidelity.channels"),
            ("repeated cells", "fidelity.layers"),
            ("train portion", "fidelity.train_portion"),
        )
    ],
    ("5", "dynamic_channels_ablation"): [("", _WHOLE_SPACE)],
    ("7", "dynamic_channels_ablation"): [
        ("baseline, random subsets as large as each sub-space, dynamic channels", _RANDOM_SUBSETS),
        ("dynamic channels disabled, one super-net per sub-space", _DISABLED),
    ],
}
# Table 6: (dynamic channels in training, in testing), the runs and the pool of each row (""
# the main pool; "subspace" a random subset's second pool, drawn from its sub-space), each
# row the mean over the sub-spaces
TABLE_6 = (
    (("Y", "Y"), _RANDOM_SUBSETS, ""),
    (("Y", "N"), _RANDOM_SUBSETS, SUBSPACE_POOL),
    (("N", "N"), _DISABLED, ""),
)
RANKING = metrics.RANK_CORRELATIONS
COLUMNS = ("supernet_acc_mean", "sparse_kendall_tau", "p_beat_random", "final_performance")
METRICS = tuple(dict.fromkeys((*COLUMNS, "supernet_acc_std", *RANKING)))  # each once
# low-fidelity factors whose rows are levels relative to each space's baseline: by difference
# (cells) or by ratio (widths, batch sizes), as the paper's Table 12 labels them
RELATIVE = {"fidelity.layers": "-", "fidelity.channels": "/", "fidelity.batch_size": "/"}
TITLES = {
    "supernet_acc_mean": "Super-net acc.",
    "sparse_kendall_tau": "S-KdT",
    "p_beat_random": "P>R",
    "final_performance": "Final perf. (%)",
}


@dataclass
class Cell:
    runs: int = 0
    failed: int = 0  # runs that ended without completing, other than interrupted ones
    interrupted: int = 0  # stopped from outside (Ctrl-C, scancel, preemption): they resume
    untrained: int = 0
    overlapping: int = 0  # runs whose validation share overlaps their training share
    counts: dict[str, int] = field(default_factory=dict)  # runs with the metric defined
    mean: dict[str, float | None] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)


@dataclass
class Block:
    experiment: str
    title: str
    factors: list[str]
    rows: list[tuple[Any, ...]]
    cells: dict[tuple[tuple[Any, ...], str], Cell]
    labels: dict[tuple[Any, ...], str] = field(default_factory=dict)  # row -> its printed name
    notes: list[str] = field(default_factory=list)  # what the table says under it
    settings: str = ""  # where the runs differ from the main sweep's ("": the main sweep)


@dataclass
class Table:
    table: str
    blocks: list[Block]
    spaces: list[str]
    notes: list[str]
    completed: int = 0  # completed runs of the table's experiments (each job once)
    unfinished: int = 0  # and their runs that did not complete (failed, interrupted)
    broken: int = 0  # unreadable metrics.json files (of any experiment)


def pool_accuracies(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A run's (super-net, GT) accuracies of its pool, paired by architecture; an architecture
    without both values (a record written elsewhere) is left out."""
    archs = record.get("archs") or []
    s = np.array([a.get("supernet_acc", np.nan) for a in archs], dtype=float)
    g = np.array([a.get("gt_acc", np.nan) for a in archs], dtype=float)
    ok = np.isfinite(s) & np.isfinite(g)
    return s[ok], g[ok]


SPARSE = {
    "sparse_kendall_tau": metrics.sparse_kendall_tau,
    "sparse_spearman": metrics.sparse_spearman,
}


# a record's own bin width, where `at_threshold` computed its sparse correlations again; its
# config keeps what the job ran with (settings and notes compare configs, not this)
RECOMPUTED_WIDTH = "skdt_threshold_recomputed"


def sparse_width(record: dict[str, Any]) -> float:
    """The GT bin width of a run's sparse correlations (``metrics.skdt_threshold``, or the
    width `at_threshold` computed them with)."""
    width = record.get(RECOMPUTED_WIDTH) or select(record, "config.metrics.skdt_threshold")
    return float(width or metrics.BIN_WIDTH)


def at_threshold(record: dict[str, Any], threshold: float) -> dict[str, Any]:
    """A completed run as if it had been evaluated with ``metrics.skdt_threshold=threshold``:
    its sparse correlations, of the main pool and of each ``extra_pools`` entry, computed
    again from the pool's (super-net, GT) accuracies, which a job records per architecture
    (``null`` for a pool without two of them). Nothing else depends on the bin width, so a
    table at another width needs no training again. Other runs come back as they are."""
    if record.get("status") != "completed":
        return record
    out = json.loads(json.dumps(record))  # a deep copy: the caller's record stays as read
    out[RECOMPUTED_WIDTH] = threshold
    for pool in [out, *((out.get("extra_pools") or {}).values())]:
        s, g = pool_accuracies(pool)
        for name, measure in SPARSE.items():
            value = measure(s, g, threshold) if len(s) >= 2 else float("nan")
            pool.setdefault("metrics", {})[name] = None if not math.isfinite(value) else value
    return out


def _bootstrap(
    runs: Sequence[dict[str, Any]], n: int, rng: np.random.Generator
) -> dict[str, tuple[float, float] | None]:
    """95% intervals of the ranking metrics' mean over runs, resampling runs then architectures.

    Each metric's interval resamples the runs where the metric is defined, as its mean counts
    them: a collapsed run (constant accuracies) has no correlation in any resample, and
    keeping it among the runs drawn would keep only the draws that miss it, as if fewer
    seeds varied more. A metric that a run reports without the pool's accuracies to resample
    (a record written elsewhere, with no `archs`) has no interval: one over the other runs
    would not be the interval of the mean the cell shows."""
    pools = []
    unresampled: set[str] = set()
    for r in runs:
        s, g = pool_accuracies(r)
        t = sparse_width(r)
        if len(s) >= 2:  # a correlation needs two architectures
            pools.append((s, g, t))
        else:
            # what the cell's mean counts (:func:`_cell`)
            unresampled.update(m for m in RANKING if select(r, f"metrics.{m}") is not None)
    out: dict[str, tuple[float, float] | None] = dict.fromkeys(RANKING)
    if not pools or n <= 0:
        return out
    whole = [
        metrics.resampled_correlations(s, g, np.ones((1, len(s)), dtype=np.int64), t)
        for s, g, t in pools
    ]
    by_runs: dict[tuple[int, ...], list[str]] = {}  # the defined runs -> their metrics
    for m in RANKING:
        defined = tuple(i for i, w in enumerate(whole) if np.isfinite(w[m][0]))
        if defined and m not in unresampled:
            by_runs.setdefault(defined, []).append(m)
    for defined, names in by_runs.items():
        out.update(_intervals([pools[i] for i in defined], names, n, rng))
    return out


def _intervals(
    pools: Sequence[tuple[np.ndarray, np.ndarray, float]],
    names: Sequence[str],
    n: int,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float] | None]:
    """The bootstrap intervals of the metrics `names` over `pools` (see :func:`_bootstrap`)."""
    # the draws first, each a multiset of a pool's architectures; their correlations then in
    # one go per pool
    picks: list[list[tuple[int, int]]] = []  # per draw: (pool, its resample's row) per run
    counts: list[list[np.ndarray]] = [[] for _ in pools]
    for _ in range(n):
        row = []
        for i in rng.integers(len(pools), size=len(pools)):
            size = len(pools[i][0])
            counts[i].append(np.bincount(rng.integers(size, size=size), minlength=size))
            row.append((int(i), len(counts[i]) - 1))
        picks.append(row)
    values = [
        metrics.resampled_correlations(s, g, np.array(c), t) if c else {}
        for (s, g, t), c in zip(pools, counts, strict=True)
    ]
    draws: dict[str, list[float]] = {m: [] for m in names}
    for row in picks:
        for m in names:
            v = np.array([values[i][m][j] for i, j in row])
            if np.isfinite(v).all():  # a resample with constant accuracies (rare)
                draws[m].append(float(v.mean()))
    return {
        m: (tuple(np.percentile(d, [2.5, 97.5]).tolist()) if d else None) for m, d in draws.items()
    }  # type: ignore[misc]


def _run_id(record: dict[str, Any]) -> str:
    """What names a run for the bootstrap: its job (config hash, which covers the seed), else
    (a record not written by a job) its pool's accuracies."""
    return str(record.get("config_hash") or json.dumps(record.get("archs"), sort_keys=True))


def cell_rng(seed: int, runs: Sequence[dict[str, Any]]) -> np.random.Generator:
    """The bootstrap's generator of one cell: from the seed and the cell's own runs alone, so
    that a cell's interval does not change with the other runs in the folders, and the same
    runs (a baseline that several experiments' tables hold) get the same interval in every
    row and table."""
    name = json.dumps(sorted(_run_id(r) for r in runs))
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _unfinished_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """A cell's runs that did not complete: interrupted ones, and the others (failed)."""
    statuses = [r.get("status") for r in records if r.get("status") != "completed"]
    interrupted = statuses.count("interrupted")
    return {"failed": len(statuses) - interrupted, "interrupted": interrupted}


def _cell(records: Sequence[dict[str, Any]], bootstrap: int, seed: int) -> Cell:
    # in one order whatever the folders' (copies of a baseline sit in several sweeps)
    done = sorted((r for r in records if r.get("status") == "completed"), key=_run_id)
    rng = cell_rng(seed, done)
    cell = Cell(runs=len(done), **_unfinished_counts(records))
    cell.untrained = sum(bool(r.get("untrained")) for r in done)
    cell.overlapping = sum(bool(select(r, "data.val_overlaps_train")) for r in done)
    for m in METRICS:
        values = [select(r, f"metrics.{m}") for r in done]
        values = [float(v) for v in values if v is not None]
        cell.counts[m] = len(values)
        cell.mean[m] = float(np.mean(values)) if values else None
        cell.std[m] = _std(values)
    cell.ci = _bootstrap(done, bootstrap, rng) if done else dict.fromkeys(RANKING)
    return cell


def _std(values: Sequence[float]) -> float | None:
    """The std over runs (seeds): None for fewer than two, where it is undefined (not 0)."""
    return float(np.std(values)) if len(values) >= 2 else None


def level(record: dict[str, Any], factor: str) -> Any:
    """The row value of `factor` in `record`: its value, or for a factor in `RELATIVE` its
    level against the run's ``fidelity.baseline`` (``base``, ``base-1``, ``base/2``; the
    value itself where it is no such level)."""
    config = record.get("config", {})
    value = factor_value(config, factor)
    how = RELATIVE.get(factor)
    if how is None:
        return value
    return level_of(value, select(config, f"fidelity.baseline.{factor.partition('.')[2]}"), how)


def _row_key(record: dict[str, Any], factors: Sequence[str]) -> tuple[Any, ...]:
    return tuple(level(record, f) for f in factors)


def _level_order(v: str) -> tuple:
    """base, then base-1, base-2, ... or base/2, base/4, ...; base+k and base*k before base."""
    if v == "base":
        return (0,)
    sign = -1 if v[4] in "+*" else 1
    return (sign, sign * int(v[5:]))


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _order(values: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def key(row: tuple[Any, ...]) -> tuple:
        return tuple(
            (0, v, ())
            if _numeric(v)
            else (1, 0, _level_order(v))
            if isinstance(v, str) and LEVEL.fullmatch(v)
            else (2, VALUE_ORDER.get(v, len(VALUE_ORDER)), (str(v),))
            for v in row
        )

    return sorted(set(values), key=key)


def _fmt_value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _row_labels(
    factors: Sequence[str], grouped: dict[tuple[tuple[Any, ...], str], list[dict[str, Any]]]
) -> dict[tuple[Any, ...], str]:
    """Each row's printed name; a relative level is followed by the absolute value where all
    the row's runs (every space) share it (``layers=base-2 (3)``)."""
    values: dict[tuple[Any, ...], list[set[str]]] = {}
    for (row, _), recs in grouped.items():
        sets = values.setdefault(row, [set() for _ in factors])
        for r in recs:
            for i, f in enumerate(factors):
                sets[i].add(json.dumps(select(r.get("config", {}), f)))
    labels = {}
    for row, sets in values.items():
        shown = []
        for f, v, absolute in zip(factors, row, sets, strict=True):
            if v is None:
                continue
            text = _fmt_value(v)
            if f in RELATIVE and isinstance(v, str) and len(absolute) == 1:
                text += f" ({json.loads(next(iter(absolute)))})"
            shown.append(f"{factor_name(f)}={text}")
        labels[row] = ", ".join(shown) or "baseline"
    return labels


def build_table(
    records: Sequence[dict[str, Any]], table: str, *, bootstrap: int = 200, seed: int = 0
) -> Table:
    if table not in TABLES and table != "3":
        raise KeyError(f"unknown table {table!r}; known: {', '.join([*TABLES, '3'])}")
    broken = sum(r.get("status") == "broken" for r in records)
    ours = {e for e, _ in TABLES.get(table, [])}  # the columns of the spaces they ran
    # copies counted among this table's jobs alone (another table's are that table's note)
    in_table = [r for r in records if not ours or experiment_name(r) in ours]
    _, copies = distinct_jobs(in_table, per_experiment=True)
    records, _ = distinct_jobs(records, per_experiment=True)
    by_experiment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        name = experiment_name(r)
        if name:
            by_experiment[name].append(r)
    ran = {
        select(r, "config.search_space.name")
        for r in records
        if not ours or experiment_name(r) in ours
    }
    spaces = [s for s in SPACES if s in ran]
    blocks, notes = [], unreadable_notes(broken)
    if copies:
        notes.append(f"{copies} copy(ies) of a job found twice (the same config_hash) counted once")
        notes.extend(disagreeing_copies(in_table, per_experiment=True))
    completed = unfinished = 0
    for experiment, title in TABLES[table]:
        recs = by_experiment.get(experiment, [])
        if not recs:
            notes.append(f"{title}: no runs of +experiment={experiment} in the given folders")
            continue
        done = sum(r.get("status") == "completed" for r in recs)
        completed, unfinished = completed + done, unfinished + len(recs) - done
        if not done:
            notes.append(
                f"{title}: no completed run, only {_unfinished(recs)} (`show` lists their errors)"
            )
        factors = experiment_factors(recs)
        by_setting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r, label in zip(recs, setting_labels(recs, factors), strict=True):
            by_setting[label].append(r)
        for label in sorted(by_setting):  # the main setting ("") first
            shown = f"{title} [{label}]" if label else title
            if label:
                notes.append(
                    f"{shown}: {len(by_setting[label])} run(s) whose settings differ from "
                    "the main sweep's beyond the factors and the seed, shown apart"
                )
            left_out = [r for r in by_setting[label] if r.get("status") != "completed"]
            if left_out and done:  # none done: said above
                notes.append(f"{shown}: {_unfinished(left_out)} left out")
            notes += [f"{shown}: {n}" for n in ground_truth_versions(by_setting[label])]
            if not label:  # the main setting: is it the experiment's own?
                done_here = [r for r in by_setting[label] if r.get("status") == "completed"]
                for space, keys in off_defaults(done_here, experiment, factors).items():
                    notes.append(
                        f"{shown}: {SPACE_TITLES.get(space, space)} runs not at the "
                        f"experiment's own settings: {', '.join(keys)}"
                    )
            made, said = _blocks(table, experiment, factors, by_setting[label], bootstrap, seed)
            for block in made:
                block.title = ": ".join(t for t in (shown, block.title) if t)
                block.settings = label
                blocks.append(block)
            notes += [f"{shown}: {n}" for n in said]
    notes += _depth_notes(by_experiment, [e for e, _ in TABLES[table]])
    return Table(table, blocks, spaces, notes, completed, unfinished, broken)


def _depth_notes(
    by_experiment: dict[str, list[dict[str, Any]]], experiments: list[str]
) -> list[str]:
    """Where the layers rows sit beside other low-fidelity blocks (Table 12) and a space's
    default super-net is shallower than its ``fidelity.baseline.layers`` (the embedded space:
    1 cell per stage against 3), the layers block's ``base`` row is not the other blocks'
    baseline: say which of its rows is."""
    if "layers_ablation" not in experiments or len(experiments) < 2:
        return []
    notes = []
    for space in SPACES:
        depths = {
            (select(r, "config.fidelity.layers"), select(r, "config.fidelity.baseline.layers"))
            for e in experiments
            if e != "layers_ablation"
            for r in by_experiment.get(e, [])
            if r.get("status") == "completed" and select(r, "config.search_space.name") == space
        }
        if len(depths) != 1:
            continue
        ((value, base),) = depths
        if isinstance(value, int) and isinstance(base, int) and value != base:
            level = f"base{value - base:+d}"
            notes.append(
                f"{SPACE_TITLES.get(space, space)}: the other blocks run its default super-net "
                f"of fidelity.layers={value}, the layers row {level} ({value}); the layers "
                f"rows are levels of fidelity.baseline.layers={base}"
            )
    return notes


def _runs_with(records: Sequence[dict[str, Any]], values: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in records if all(_at(r, k, v) for k, v in values.items())]


def _at(record: dict[str, Any], factor: str, value: Any) -> bool:
    """Whether `record` runs `factor` at `value`: its level (:func:`level`), or for ``base``
    of a low-fidelity factor whose rows are absolute values (the train portion), the value of
    the run's own baseline."""
    if level(record, factor) == value:
        return True
    name = factor.partition(".")[2]
    return (
        value == "base"
        and factor.startswith("fidelity.")
        and factor_value(record.get("config", {}), factor)
        == select(record, f"config.fidelity.baseline.{name}")
    )


def _shown(factors: Sequence[str], values: dict[str, Any]) -> list[str]:
    """The factors that name a section's rows: those its runs do not share (the dynamic
    channels always, which say what a row trained with)."""
    return [f for f in factors if f not in values or f == "supernet.dynamic_channels"]


def _blocks(
    table: str,
    experiment: str,
    factors: list[str],
    recs: Sequence[dict[str, Any]],
    bootstrap: int,
    seed: int,
) -> tuple[list[Block], list[str]]:
    """The blocks (titled within the experiment's title) of an experiment's runs in `table`,
    and notes: one block of all its runs, its sections (:data:`SECTIONS`), or Table 6's."""

    def make(title: str, shown: list[str], runs: list[dict[str, Any]]) -> Block:
        return _block(experiment, title, shown, runs, bootstrap, seed)

    if table == "14":  # the paper's Table 14 lists the settings: under the runs' metrics here
        block = make("", [], list(recs))
        for row in block.rows:
            block.labels[row] = "the settings below"
        return [block], [*block.notes, *_settings_of(recs)]
    if table == "6":
        return _table_6(
            Block(experiment, "", ["train", "test", "dynamic_channels"], [], {}),
            factors,
            recs,
            make,
        )
    blocks, notes = [], []
    for title, values in SECTIONS.get((table, experiment), [("", {})]):
        runs = _runs_with(recs, values)
        if title and not runs:
            notes.append(f"{title}: no runs")
            continue
        block = make(title, _shown(factors, values), runs)
        if table == "4":  # each group from its reference down, as the paper's (train portion
            # 0.75, 0.5, 0.25; the levels base, base/2, ... are in that order already)
            block.rows.sort(key=lambda row: tuple(-v if _numeric(v) else 0 for v in row))
        notes += [f"{title}: {n}" if title else n for n in block.notes]
        blocks.append(block)
    return blocks, notes


# the paper's Table 14 columns: the 14 factors' keys (dropout: path, then global)
TABLE_14_SETTINGS = (
    ("dynamic channels", "supernet.dynamic_channels"),
    ("OFA", "supernet.ofa_kernel"),
    ("WSBN", "supernet.wsbn"),
    ("path dropout", "supernet.path_dropout"),
    ("global dropout", "supernet.global_dropout"),
    ("ops on", "supernet.ops_on"),
    ("layers", "fidelity.layers"),
    ("portion", "fidelity.train_portion"),
    ("batch size", "fidelity.batch_size"),
    ("channels", "fidelity.channels"),
    ("BN track", "protocol.bn_track"),
    ("BN affine", "protocol.bn_affine"),
    ("lr", "protocol.lr"),
    ("epochs", "protocol.epochs"),
    ("wd", "protocol.weight_decay"),
    ("sampler", "sampler.name"),
)


# how each space counts `fidelity.layers`, and its number of stacks or stages: the paper's
# Table 14 gives NB101's depth in cells (9), where its other tables and the config count
# cells per stack (3)
LAYERS_UNIT = {"nb101": ("per stack", 3), "nb201": ("per stage", 3), "embedded": ("per stage", 3)}


def _layers_text(space: str, value: Any) -> str:
    """A layers value with its space's unit (``3 per stack, 9 cells``)."""
    unit = LAYERS_UNIT.get(space)
    if unit is None or isinstance(value, bool) or not isinstance(value, int):
        return f"{_fmt_value(value)} cells" if space == "darts_nds" else _fmt_value(value)
    return f"{value} {unit[0]}, {value * unit[1]} cells"


def _settings_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """Per space, the values of Table 14's settings in its completed runs (``a / b`` where
    runs differ)."""
    notes = []
    for space in SPACES:
        runs = [
            r
            for r in records
            if r.get("status") == "completed" and select(r, "config.search_space.name") == space
        ]
        if not runs:
            continue
        values = []
        for label, key in TABLE_14_SETTINGS:
            fmt = partial(_layers_text, space) if label == "layers" else _fmt_value
            seen = dict.fromkeys(fmt(factor_value(r.get("config", {}), key)) for r in runs)
            values.append(f"{label} {' / '.join(seen)}")
        notes.append(f"{SPACE_TITLES.get(space, space)} settings: {', '.join(values)}")
    return notes


def _pool_record(record: dict[str, Any], pool: str) -> dict[str, Any] | None:
    """A run as if its second pool `pool` (``extra_pools``) were its main one; None for a
    completed run without that pool."""
    if not pool or record.get("status") != "completed":
        return record
    extra = (record.get("extra_pools") or {}).get(pool)
    if not isinstance(extra, dict):
        return None
    return {**record, **{k: extra.get(k) for k in ("metrics", "untrained", "archs")}}


def _table_6(
    block: Block,
    factors: list[str],
    recs: Sequence[dict[str, Any]],
    make: Callable[[str, list[str], list[dict[str, Any]]], Block],
) -> tuple[list[Block], list[str]]:
    """Table 6 into the empty `block`: per (training, testing) with dynamic channels, the mean
    over the sub-spaces (a row per strategy if the runs used several; an empty row where none
    is complete); `make` builds a block of some runs."""
    notes = []
    for (train, test), values, pool in TABLE_6:
        shown = _shown(factors, values)
        label = f"train {train}, test {test}"
        runs = [_pool_record(r, pool) for r in _runs_with(recs, values)]
        if None in runs:
            notes.append(
                f"{label}: {runs.count(None)} completed run(s) have no '{pool}' pool in "
                "extra_pools (written by an earlier version), left out; delete their folders "
                "and run the sweep again to evaluate it"
            )
        part = make("", shown, [r for r in runs if r])
        notes += [f"{label}: {n}" for n in part.notes]
        means = [row for row in part.rows if "mean" in row]
        if not means:
            block.rows.append((train, test, None))
            block.labels[(train, test, None)] = label
        for row in means:
            strategy = row[shown.index("supernet.dynamic_channels")]
            name = (train, test, strategy)
            block.rows.append(name)
            block.labels[name] = f"{label} (dynamic_channels={strategy})"
            for space in SPACES:
                if (row, space) in part.cells:
                    block.cells[(name, space)] = part.cells[(row, space)]
    return [block], notes


def _unfinished(records: Sequence[dict[str, Any]]) -> str:
    """``3 failed run(s)``, ``1 failed, 2 interrupted run(s)``: the records that did not
    complete, by status."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("status") != "completed":
            counts[str(r.get("status") or "unknown")] += 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + " run(s)"


def _block(
    experiment: str,
    title: str,
    factors: list[str],
    recs: Sequence[dict[str, Any]],
    bootstrap: int,
    seed: int,
) -> Block:
    grouped: dict[tuple[tuple[Any, ...], str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        grouped[(_row_key(r, factors), select(r, "config.search_space.name"))].append(r)
    rows = _order(k[0] for k in grouped)
    cells = {(row, space): _cell(v, bootstrap, seed) for (row, space), v in grouped.items()}
    labels = _row_labels(factors, grouped)
    notes = []
    if experiment == "dynamic_channels_ablation":
        notes = _add_subspace_mean(rows, cells, labels, factors, grouped)
    return Block(experiment, title, factors, rows, cells, labels, notes)


def _add_subspace_mean(rows, cells, labels, factors, grouped) -> list[str]:
    """Rows of sub-spaces (`supernet.subspace` set: `disabled` dynamic channels, or Table 7's
    random subsets as large): after each group of them that agrees on the other factors, a
    row with the mean over the sub-spaces (Tables 5-7); notes on the means that are missing.

    Per seed the mean over the sub-spaces (the seed's one number for the whole space), then
    mean ± std of those over the seeds that completed every one of NB101's sub-spaces: a mean
    over fewer would look complete and is not given."""
    if "supernet.subspace" not in factors:
        return []
    i = factors.index("supernet.subspace")
    groups: dict[tuple[Any, ...], None] = {}  # the other factors' values, in row order
    for row in rows:
        if row[i] is not None:
            groups[row[:i] + row[i + 1 :]] = None
    notes = []
    for rest in groups:
        mean_row = (*rest[:i], "mean", *rest[i:])
        members = [r for r in rows if r[i] is not None and r[:i] + r[i + 1 :] == rest]
        label = ", ".join(
            f"{factor_name(f)}={_fmt_value(v)}"
            for f, v in zip(factors, mean_row, strict=True)
            if v is not None
        )
        for space in sorted({k[1] for k in grouped}):
            runs = [r for row in members for r in grouped.get((row, space), [])]
            if not runs:
                continue
            cell, partial = _subspace_mean(runs, i, factors)
            if partial:
                notes.append(
                    f"{label} on {space}: seed(s) {partial} lack a sub-space "
                    f"(of {', '.join(map(str, SUBSPACES))}) and are left out of the mean"
                )
            if cell is None:
                notes.append(
                    f"{label} on {space}: no mean, no seed completed every sub-space "
                    f"({', '.join(map(str, SUBSPACES))})"
                )
                continue
            cells[(mean_row, space)] = cell
            if mean_row not in rows:  # right after the last sub-space row it averages
                rows.insert(rows.index(members[-1]) + 1, mean_row)
                labels[mean_row] = label
    return notes


def _subspace_mean(
    runs: Sequence[dict[str, Any]], i: int, factors: Sequence[str]
) -> tuple[Cell | None, str]:
    """The mean cell of one group's runs over the sub-spaces (None when no seed completed
    every sub-space), and the seeds left out for lacking one ("" if none)."""
    by_seed: dict[Any, dict[Any, dict[str, Any]]] = defaultdict(dict)  # seed -> sub-space -> run
    for r in runs:
        if r.get("status") == "completed":
            by_seed[r.get("seed")][level(r, factors[i])] = r
    complete = [by_sub for by_sub in by_seed.values() if set(by_sub) == set(SUBSPACES)]
    partial = ", ".join(
        str(seed)
        for seed, by_sub in sorted(by_seed.items(), key=lambda x: str(x[0]))
        if set(by_sub) != set(SUBSPACES)
    )
    if not complete:
        return None, ""
    cell = Cell(
        runs=len(complete),
        **_unfinished_counts(runs),
        untrained=sum(any(r.get("untrained") for r in by_sub.values()) for by_sub in complete),
        overlapping=sum(
            any(select(r, "data.val_overlaps_train") for r in by_sub.values())
            for by_sub in complete
        ),
    )
    for m in METRICS:
        per_seed = []
        for by_sub in complete:
            values = [select(r, f"metrics.{m}") for r in by_sub.values()]
            if all(v is not None for v in values):
                per_seed.append(float(np.mean(values)))
        cell.counts[m] = len(per_seed)
        cell.mean[m] = float(np.mean(per_seed)) if per_seed else None
        cell.std[m] = _std(per_seed)
    cell.ci = dict.fromkeys(RANKING)
    return cell, partial


def unreadable_notes(broken: int) -> list[str]:
    return (
        [f"{broken} metrics.json file(s) could not be read (`show` names them)"] if broken else []
    )


def left_out_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    """What a view of all the folders' runs (Table 3, the figures) cannot show: unreadable
    records, and the runs that did not complete, by status."""
    notes = unreadable_notes(sum(r.get("status") == "broken" for r in records))
    ended = [r for r in distinct_jobs(records)[0] if r.get("status") in ("failed", "interrupted")]
    if ended:
        notes.append(f"{_unfinished(ended)} left out (`show` lists their errors)")
    return notes


def correlation_table(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Table 3: across the completed runs of a space, the Spearman correlation of each ranking
    metric with the final performance. The paper computes it "in the same setting as Figure 6",
    which drops super-nets below 40% accuracy only "for super-net accuracy", a metric Table 3
    does not have: so untrained runs count here (``untrained`` says how many of the runs are),
    as they do in `figures.metric_pairs` wherever super-net accuracy is not compared."""
    out: dict[str, dict[str, float | None]] = {}
    for space, (every, done) in _correlated_runs(records).items():
        if len(done) < CORRELATED_RUNS:
            continue
        final = np.array(
            [_or_nan(select(r, "metrics.final_performance")) for r in done], dtype=float
        )
        row: dict[str, float | None] = {}
        for m in RANKING:
            v = np.array([_or_nan(select(r, f"metrics.{m}")) for r in done], dtype=float)
            ok = np.isfinite(v) & np.isfinite(final)
            rho = metrics.spearman(v[ok], final[ok]) if ok.sum() >= 3 else float("nan")
            row[m] = None if not math.isfinite(rho) else float(rho)
        row["runs"] = len(done)
        row["untrained"] = sum(bool(r.get("untrained")) for r in done)
        row["other_settings"] = len(every) - len(done)
        out[space] = row
    return out


CORRELATED_RUNS = 3  # the fewest runs of a space that Table 3 correlates


def _correlated_runs(
    records: Sequence[dict[str, Any]],
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per space with completed runs: those runs, and those of them that Table 3 correlates
    (each job once, however many experiments' sweeps hold it; not a debug try beside a
    sweep)."""
    records = distinct_jobs(records)[0]
    # the main setting among the completed runs, as Fig. 6 (`figures.metric_pairs`) picks it:
    # a failed run of a debug try must not make the try the setting Table 3 correlates
    done = [r for r in records if r.get("status") == "completed"]
    main = {id(r) for r in main_settings(done)[0]}
    runs = {}
    for space in SPACES:
        every = [
            r
            for r in records
            if r.get("status") == "completed" and select(r, "config.search_space.name") == space
        ]
        if every:
            runs[space] = (every, [r for r in every if id(r) in main])
    return runs


def correlation_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    """Table 3's notes: what it leaves out (`left_out_notes`) and the spaces with too few
    runs to correlate."""
    notes = left_out_notes(records)
    runs = _correlated_runs(records)
    notes += ground_truth_versions(r for _, done in runs.values() for r in done)
    for space, (_, done) in runs.items():
        if len(done) < CORRELATED_RUNS:
            notes.append(
                f"{SPACE_TITLES.get(space, space)}: {len(done)} run(s), fewer than the "
                f"{CORRELATED_RUNS} a correlation needs; left out"
            )
    return notes


def _or_nan(value: Any) -> float:
    return np.nan if value is None else float(value)
