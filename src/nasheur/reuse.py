"""A job that another experiment's sweep already completed is not trained again.

The experiment is outside a job's identity (its config hash), so one-factor sweeps share jobs:
every Table 11-13 experiment holds the space's baseline, and `best` holds the FairNAS runs of
`sampler_ablation`. Each experiment keeps its own copy of such a job in its own sweep folder
(its table reads its own baseline row), but only the first needs to train it: a sweep that
finds, in a sibling sweep folder (``runs/sweeps/*/<space>/*-<hash>``), a completed job of the
same config hash, whose ground truth has not changed and that no process holds, copies it
into its own folder (:func:`adopt`) instead of launching it.

The copy is the source's ``metrics.json`` with this experiment's ``config.experiment`` and
``choices.experiment`` and a ``reused_from`` key naming the source folder, beside its
``pool.json`` and its ``checkpoint.pt`` (a hard link where the file system allows, else a
copy), so that the copy evaluates again from its checkpoint if its ground truth changes later,
as the source would. ``metrics.json`` is written last: an adoption cut short leaves a
checkpoint without a record, which the next launch resumes (and, being the last epoch's,
only evaluates).

Sweeps launched side by side (``make sweep-11``) do not see each other's jobs complete: each
trains its own copy, as before. ``hydra.sweeper.reuse=false`` turns adoption off.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from nasheur.io import atomic_path, atomic_write_json, read_json
from nasheur.jobguard import FolderLocked, folder_holder, hold_folder

METRICS, POOL, CHECKPOINT = "metrics.json", "pool.json", "checkpoint.pt"


def completed_twin(folder: Path, config_hash: str, sweep_dir: Path) -> Path | None:
    """A completed job of `config_hash` in a sweep folder beside `sweep_dir` (same space), whose
    ground truth has not changed and that no process holds; None if there is none."""
    from nasheur.groundtruth.convert import source_changed

    space = folder.parent.name
    own = sweep_dir.resolve()
    for candidate in sorted(sweep_dir.parent.glob(f"*/{space}/*-{config_hash}")):
        if candidate.resolve().parent.parent == own or not (candidate / METRICS).is_file():
            continue
        try:
            record = read_json(candidate / METRICS)
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("status") != "completed":
            continue
        if record.get("config_hash") != config_hash or folder_holder(candidate) is not None:
            continue
        if source_changed((record.get("ground_truth") or {}).get("fingerprint")):
            continue
        return candidate
    return None


def adopt(source: Path, folder: Path, experiment: dict[str, Any]) -> bool:
    """Copy the completed job in `source` into `folder` as a job of `experiment` (the resolved
    ``experiment`` node of this sweep's config). False, and nothing written, where a process
    holds `folder` or it has a ``metrics.json`` by now (another launch got there first)."""
    record = read_json(source / METRICS)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with hold_folder(folder):
            if (folder / METRICS).exists():
                return False
            for name in (POOL, CHECKPOINT):
                if (source / name).is_file():
                    _copy(source / name, folder / name)
            record["config"] = {**record.get("config", {}), "experiment": experiment}
            choices = record.get("choices")
            if isinstance(choices, dict) and "experiment" in choices:
                record["choices"] = {**choices, "experiment": experiment.get("name")}
            record["reused_from"] = str(source.resolve())
            atomic_write_json(folder / METRICS, record)
    except FolderLocked:
        return False
    return True


def _copy(src: Path, dst: Path) -> None:
    """`src` at `dst` in one step: a hard link (no second copy of a large checkpoint) where
    the file system allows, else a copy. A later atomic replace of either file breaks the
    link, so neither job's writes reach the other."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
