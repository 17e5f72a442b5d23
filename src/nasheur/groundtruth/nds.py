"""NDS (Radosavovic et al.) ``DARTS.json`` ground truth for the DARTS-NDS space.

The file is JSON: either a list of jobs, or a dict of such lists (e.g. ``{"top": [...],
"mid": [...]}``), which are concatenated in the dict's order. Each job has
``net.genotype`` in the form ``{normal: [[op, input], ...], normal_concat, reduce,
reduce_concat}`` and ``test_ep_top1``: the top-1 test **error** in percent after each epoch.

Ground truth of a job: ``(100 - test_ep_top1[-1]) / 100``. A last error of at most 1 is
refused: no DARTS network errs below 1% (on CIFAR-10 or ImageNet), while an error given as a
fraction is always at most 1. Jobs whose genotypes have the same
canonical key (:meth:`nasheur.spaces.darts_genotype.Genotype.key`: both cells, every op paired
with its input, the two terms of a node in sorted order) are repeats of one network and are
averaged; the repeat count is kept. The key is the genotype alone, as the spec has it: a job's
``net.width`` and ``net.depth`` (which NDS files other than ``_fix-w-d`` vary) are not in it.

NDS names its ImageNet results ``<space>_in.json`` (``DARTS_in.json``, ``DARTS_lr-wd_in.json``);
their jobs do not record a dataset, so the name is the only sign. Such a file is refused: the
DARTS-NDS super-net is trained and ranked on CIFAR-10, and ImageNet errors would rank it
against another task's ground truth without any error.

The training budget recorded in the table's header is ``optim.max_ep`` where every job carries
a count of epochs there, else the length of ``test_ep_top1``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasheur.groundtruth.table import (
    FractionAmongPercent,
    GroundTruth,
    GroundTruthError,
    brief,
)
from nasheur.spaces.darts_genotype import from_nds

__all__ = ["NDSGroundTruth", "iter_jobs", "read_nds"]


@dataclass(frozen=True, eq=False)
class NDSGroundTruth:
    """Ground truth plus the number of jobs averaged per genotype (aligned with keys)."""

    gt: GroundTruth
    repeats: np.ndarray  # int64
    jobs: int  # jobs read


def iter_jobs(obj: Any, source: str) -> list[tuple[str, Any]]:
    """``(label, job)`` for each job; labels are ``"3"`` for a list, ``"top[3]"`` for a dict."""
    if isinstance(obj, list):
        return [(str(i), job) for i, job in enumerate(obj)]
    if isinstance(obj, Mapping):
        jobs: list[tuple[str, Any]] = []
        for name, value in obj.items():
            if not isinstance(value, list):
                raise GroundTruthError(
                    f"{source}: the entry {brief(name)} is not a list of jobs (an NDS file is a list "
                    "of jobs or a dict of such lists)"
                )
            jobs.extend((f"{name}[{i}]", job) for i, job in enumerate(value))
        return jobs
    raise GroundTruthError(f"{source}: expected a JSON list of jobs or a dict of such lists")


def _job_value(job: Any, label: str, source: str) -> tuple[str, float, int, int | None]:
    """(canonical key, last top-1 error in percent, epochs recorded, optim.max_ep or None)."""
    where = f"{source}: job {label}"
    if not isinstance(job, Mapping):
        raise GroundTruthError(f"{where} is not a JSON object")
    net = job.get("net")
    genotype = net.get("genotype") if isinstance(net, Mapping) else None
    if not isinstance(genotype, Mapping):
        raise GroundTruthError(f"{where} has no net.genotype")
    try:
        key = from_nds(genotype).key()
    except ValueError as exc:
        raise GroundTruthError(f"{where}: bad genotype: {exc}") from None
    curve = job.get("test_ep_top1")
    if not isinstance(curve, list) or not curve:
        raise GroundTruthError(f"{where} has no test_ep_top1 (per-epoch top-1 errors)")
    last = curve[-1]
    # an int is finite however long (math.isfinite would overflow on one past float's range)
    finite = isinstance(last, int) or (isinstance(last, float) and math.isfinite(last))
    if isinstance(last, bool) or not finite:
        raise GroundTruthError(f"{where}: the last test_ep_top1 {brief(last)} is not a number")
    if not 0.0 <= last <= 100.0:
        raise GroundTruthError(f"{where}: the last test_ep_top1 {brief(last)} is not an error in %")
    optim = job.get("optim")
    max_ep = optim.get("max_ep") if isinstance(optim, Mapping) else None
    return key, float(last), len(curve), _epoch_count(max_ep)


def _epoch_count(value: Any) -> int | None:
    """``optim.max_ep`` as a count of epochs, or None where it holds none (a bool, a text,
    NaN, an infinity, a fraction, zero or less)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value > 0 else None


def _summary(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def read_nds(path: str | os.PathLike[str]) -> NDSGroundTruth:
    """Ground truth of an NDS ``DARTS.json`` (see the module docstring)."""
    source = str(path)
    if Path(path).stem.lower().endswith("_in"):
        raise GroundTruthError(
            f"{source}: NDS's ImageNet results (NDS names them <space>_in.json); DARTS-NDS "
            "ground truth here is CIFAR-10: use DARTS.json (or rename a CIFAR-10 file)"
        )
    try:
        with open(path, encoding="utf-8-sig") as f:  # a BOM, as a CSV table may have one
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise GroundTruthError(f"{source}: not JSON: {exc}") from None
    jobs = iter_jobs(obj, source)
    if not jobs:
        raise GroundTruthError(f"{source}: no jobs")
    sums: dict[str, list[float]] = {}
    curve_lens: list[int] = []
    max_eps: list[int] = []
    fraction = FractionAmongPercent(
        lambda error: error <= 1.0,
        lambda where, error: (
            f"{where} {error:g} is at most 1, but no DARTS network errs below 1%: it looks "
            "like a fraction among percentages (NDS stores top-1 errors in percent)"
        ),
    )
    for label, job in jobs:
        key, error, n_ep, max_ep = _job_value(job, label, source)
        value = (100.0 - error) / 100.0
        fraction.see(error, f"{source}: job {label}: the last test_ep_top1")
        curve_lens.append(n_ep)
        if max_ep is not None:
            max_eps.append(max_ep)
        entry = sums.get(key)
        if entry is None:
            sums[key] = [value, 1.0]
        else:
            entry[0] += value
            entry[1] += 1.0
    keys = tuple(sums)
    table = np.array(list(sums.values()), dtype=np.float64)
    repeats = table[:, 1].astype(np.int64)
    acc = table[:, 0] / table[:, 1]
    if acc.min() >= 0.99:  # no DARTS network errs below 1% on CIFAR-10: not percent
        raise GroundTruthError(
            f"{source}: every last test_ep_top1 is at most 1: these look like fractions, but "
            "NDS stores top-1 errors in percent (this file is not as NDS released it)"
        )
    fraction.check()  # all errors <= 1, and a mean rounded just below 0.99
    # the configured epochs where every job records them, else the curves' lengths for all
    # (one measure for the whole header, not a mix)
    epochs = _summary(max_eps) if len(max_eps) == len(jobs) else _summary(curve_lens)
    lo, hi = int(repeats.min()), int(repeats.max())
    meta = {
        "benchmark": "nds-darts",
        "space": "darts_nds",
        "dataset": "cifar10",
        "metric": "test",
        "split": "100-test_ep_top1[-1]",
        "epochs": epochs,
        "repeats": str(lo) if lo == hi else f"{lo}-{hi} (mean {repeats.mean():.4f})",
        "jobs": str(len(jobs)),
    }
    gt = GroundTruth(keys=keys, acc=acc, source=source, meta=meta)
    return NDSGroundTruth(gt=gt, repeats=repeats, jobs=len(jobs))
