"""A job's state as its folder tells it (``metrics.json``, a checkpoint), and the sweep
folder's ``sweep.json``, which lists the jobs of every launch into it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from nasheur.io import atomic_write_json, read_json
from nasheur.jobguard import CHECKPOINT, METRICS, exclusive
from nasheur.reuse import MANIFEST, manifest_key

log = logging.getLogger(__name__)


MANIFEST_LOCK = ".sweep.json.lock"
RUNNING = "running"  # the state of a job whose folder a running job holds


def job_state(folder: Path, chash: str) -> str:
    """A job's state as its folder tells it: ``new``, ``interrupted`` (a checkpoint alone),
    its record's status, ``other-config`` (a record of another config hash), ``broken`` (a
    record that is not JSON) or ``ground truth changed`` (completed against another file)."""
    path = folder / METRICS
    if not path.is_file():
        return "interrupted" if (folder / CHECKPOINT).is_file() else "new"
    try:
        record = read_json(path)
    except (OSError, ValueError):  # not JSON, or not UTF-8 text
        return "broken"
    if not isinstance(record, dict):
        return "broken"
    if record.get("config_hash") != chash:
        return "other-config"
    status = str(record.get("status", "unknown"))
    if status == "completed":
        from nasheur.groundtruth.convert import fingerprint_of, source_changed

        if source_changed(fingerprint_of(record)):
            return "ground truth changed"  # launched: it evaluates again from its checkpoint
    return status


def recorded_state(folder: Path, chash: str) -> str | None:
    """The status that the job's own metrics.json records, or None (no record of it)."""
    state = job_state(folder, chash)
    return state if (folder / METRICS).is_file() and state != "other-config" else None


def read_or_rebuild(path: Path) -> list[dict[str, Any]]:
    """The jobs a sweep.json lists (:func:`nasheur.results.collect.read_manifest`); [] if none."""
    from nasheur.results.collect import read_manifest

    if not path.is_file():
        return []
    try:
        return read_manifest(path)
    except ValueError as err:
        # kept for a look, not overwritten; the list the folders still tell is rebuilt
        kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, kept)
        jobs = jobs_in_folders(path.parent)
        log.warning(
            "%s; kept as %s, and the list rebuilt from the %d job folders in %s",
            err,
            kept.name,
            len(jobs),
            path.parent,
        )
        return jobs


def jobs_in_folders(sweep_dir: Path) -> list[dict[str, Any]]:
    """The sweep.json entries that a sweep folder's job folders (``<space>/<job>``) still tell:
    each with a record or a checkpoint, its overrides from Hydra's record of it, its config
    hash and state from its metrics.json ("interrupted": a checkpoint alone)."""
    jobs = []
    made = {p.parent for p in sweep_dir.glob("*/*/*") if p.name in (METRICS, CHECKPOINT)}
    for folder in sorted(made):
        try:
            record = read_json(folder / METRICS) if (folder / METRICS).is_file() else {}
        except (OSError, ValueError):
            record = {"status": "broken"}
        record = record if isinstance(record, dict) else {"status": "broken"}
        try:
            overrides = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
        except Exception:  # no record of it, or a damaged one: no overrides
            overrides = []
        jobs.append(
            {
                "overrides": overrides if isinstance(overrides, list) else [],
                "folder": str(folder),
                "config_hash": record.get("config_hash"),
                "state_at_launch": str(record.get("status", "interrupted")),
            }
        )
    return jobs


def merge_manifest(sweep_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Merge a launch's jobs into the sweep folder's sweep.json, keyed by job folder (this
    launch's entry replaces an earlier one, in its place), under a lock, so that launches
    into the same sweep folder, side by side too, each add their jobs."""
    path = Path(sweep_dir) / MANIFEST
    with exclusive(Path(sweep_dir) / MANIFEST_LOCK):
        merged = {manifest_key(j["folder"]): j for j in read_or_rebuild(path)}
        for entry in entries:
            merged[manifest_key(entry["folder"])] = entry
        atomic_write_json(path, {"jobs": list(merged.values())})


def experiment_of(overrides: Any) -> str | None:
    """The experiment that a job's overrides name (``+experiment=<name>``), None for none (a
    command line's own sweep)."""
    for override in overrides if isinstance(overrides, list) else []:
        key, _, value = str(override).lstrip("+~").partition("=")
        if key == "experiment":
            return value
    return None


def experiments_listed(sweep_dir: Path) -> set[str | None]:
    """The experiments of the jobs that the sweep folder's sweep.json lists (:func:`experiment_of`;
    empty where there is none or it cannot be read). An entry without overrides (rebuilt from
    a folder without Hydra's record: :func:`jobs_in_folders`) says none."""
    from nasheur.results.collect import read_manifest

    path = Path(sweep_dir) / MANIFEST
    try:
        entries = read_manifest(path) if path.is_file() else []
    except ValueError:  # the launch keeps it aside and rebuilds it (read_or_rebuild)
        return set()
    return {experiment_of(e["overrides"]) for e in entries if e.get("overrides")}


def recorded_error(folder: Path) -> str:
    """``: <the error's first line>`` of a failed job's metrics.json, or ""."""
    try:
        error = read_json(folder / METRICS).get("error")
    except (OSError, ValueError, AttributeError):
        return ""
    line = str(error or "").strip().splitlines()[:1]
    return f": {line[0][:300]}" if line else ""
