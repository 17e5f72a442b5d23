"""Find and read the `metrics.json` records of jobs and sweeps (no torch: runs anywhere).

`load_records` reads the records, the jobs that ended (completed, failed, interrupted).
`find_jobs` finds every job it can, recorded or not: besides the records, the job folders
that hold a checkpoint, a pool or a log but no record (the job stopped without one, killed or
out of time, or it is still running: files alone cannot tell them apart), and the jobs that a
sweep's ``sweep.json`` lists whose folders are missing or hold nothing of a job (not started).
"""

from __future__ import annotations

import enum
import functools
import math
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from nasheur.io import read_json
from nasheur.jobguard import CHECKPOINT, METRICS, POOL, folder_holder
from nasheur.metrics import is_untrained
from nasheur.results.settings import natural_key, select
from nasheur.reuse import launch_holding

SWEEP = "sweep.json"  # the sweeper's list of a sweep's jobs (and their state at launch)
# a job's own files besides its record: written once it runs (the log from its start)
JOB_FILES = (CHECKPOINT, POOL, "nasheur.log")
PROGRESS_FILES = (CHECKPOINT, POOL)  # rewritten as the job goes (a resumed one too)
HYDRA = ".hydra"  # Hydra writes it before the job starts

RUNNING = "running"  # a running job holds the folder (job.lock)
NO_RECORD = "no record"  # job files, no metrics.json: stopped without a record (or running
# on a file system without locks)
NOT_STARTED = "not started"  # listed in sweep.json; its folder missing or without job files
STATUSES = ("completed", "failed", "interrupted")  # what a job records (nasheur.job)

# the values a pool's metrics can take (README "Metrics"): accuracies and P>R are fractions,
# the rank correlations lie in [-1, 1]; a value outside (a percentage, a hand edit) is no result
FRACTION, CORRELATION = (0.0, 1.0), (-1.0, 1.0)
METRIC_RANGES = {
    "supernet_acc_mean": FRACTION,
    "supernet_acc_std": FRACTION,
    "kendall_tau": CORRELATION,
    "sparse_kendall_tau": CORRELATION,
    "spearman": CORRELATION,
    "sparse_spearman": CORRELATION,
    "p_beat_random": FRACTION,
    "final_performance": FRACTION,
}


def find_records(folders: Iterable[str | Path]) -> list[Path]:
    """Every metrics.json under the given job or sweep folders, sorted."""
    found: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"no such folder: {folder}")
        found.update(p.resolve() for p in ([folder] if folder.is_file() else folder.rglob(METRICS)))
    return sorted(found)


def load_records(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The records, each with its `path`; an unreadable file becomes a `broken` record."""
    records = []
    for path in find_records(folders):
        try:
            record = read_json(path)
        except (OSError, ValueError) as err:  # not JSON, or not UTF-8 text
            record = {"status": "broken", "error": f"{type(err).__name__}: {err}"}
        else:  # tables, figures and show read these keys: say which one is wrong
            problem = record_problem(record) if isinstance(record, dict) else "not a JSON object"
            problem = problem or _space_problem(record)
            if problem:
                record = {"status": "broken", "error": f"{problem} (read {path})"}
        for pool in _pools(record):  # the README's † is by accuracy, whatever a flag says
            mean = pool["metrics"].get("supernet_acc_mean")
            if mean is not None:
                pool["untrained"] = is_untrained(mean)
        record["path"] = str(path)
        records.append(record)
    return records


def record_problem(record: dict[str, Any]) -> str | None:
    """What in a record tables, figures and ``show`` cannot read, naming the key (None if
    nothing): a hand-edited file, another tool's, or a damaged one."""
    config = record.get("config")
    if "config" in record and not isinstance(config, dict):
        return f"config is {_kind(config)}, not an object"
    problem = _shape_problem(record, TOP_LEVEL)
    if problem:
        return problem
    for i, entry in enumerate(record.get("history") or []):  # its images tell settings apart
        images = entry.get("images") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or (images is not None and not _number(images)):
            return f"history[{i}] is {entry!r:.60}, not an object with a number of images"
    if isinstance(config, dict):
        for key in ("experiment", "search_space", "metrics"):
            if key in config and not isinstance(config[key], dict):
                return f"config.{key} is {_kind(config[key])}, not an object"
        problem = _shape_problem(config, IN_CONFIG, "config.")
        if problem:
            return problem
        factors = (config.get("experiment") or {}).get("factors") or []
        if not isinstance(factors, list) or not all(isinstance(f, str) for f in factors):
            return "config.experiment.factors is not a list of config keys"
        for factor in factors:  # a row of a table is named by these values
            value = select(config, factor, _ABSENT)
            if value is _ABSENT:  # else every run would fall in one row, as if at its default
                return f"config.experiment.factors names {factor}, which config does not hold"
            if isinstance(value, (list, dict)):
                return f"config.{factor} is {_kind(value)}, not the value of a factor"
            if not _fits(value, _schema_type(factor)):
                return f"config.{factor} is {value!r:.60}, not a value of that key"
        t = (config.get("metrics") or {}).get("skdt_threshold")
        if t is not None and not (_number(t) and 0 < t < 1):
            return f"config.metrics.skdt_threshold is {t!r}, not a number in (0, 1)"
    status = record.get("status")
    if status not in STATUSES:
        return f"status is {status!r}, not one of {', '.join(STATUSES)}"
    if status != "completed":
        return None
    if not isinstance(config, dict):  # another tool's file: no row or column to put it in
        return "config is missing (not a nasheur job's metrics.json?)"
    problem = _pool_problem(record, "")
    extra = record.get("extra_pools")
    if problem or extra is None:
        return problem
    if not isinstance(extra, dict):
        return f"extra_pools is {_kind(extra)}, not an object"
    for name, pool in extra.items():
        if not isinstance(pool, dict):
            return f"extra_pools.{name} is {_kind(pool)}, not an object"
        problem = _pool_problem(pool, f"extra_pools.{name}.")
        if problem:
            return problem
    return None


def _space_problem(record: dict[str, Any]) -> str | None:
    """Where a completed run names no search space that tables know: its column (and Table 3's
    row) is its space's, so it would be left out of every table without a word."""
    from nasheur.spaces import space_names

    name = select(record, "config.search_space.name")
    if record.get("status") != "completed" or name in space_names():
        return None
    said = "missing" if name is None else repr(name)
    return f"config.search_space.name is {said}, not one of {', '.join(space_names())}"


# what tables, figures, ``show`` and the sweeper read of any record besides its config's
# sections and pools, with the type each must have where present (null is absent)
TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "config_hash": str,
    "timing": dict,
    "history": list,
    "ground_truth.fingerprint": dict,
    "ground_truth.fingerprint.path": str,
    "skdt_threshold_recomputed": (int, float),
    "data.val_overlaps_train": bool,  # the tables' ‡: "false" would read as true
    # what `show` prints of a job: its seed (--all), the part of the space it searched
    "seed": int,
    "eval": dict,
    "eval.searched": dict,
    "eval.searched.architectures": int,
}
IN_CONFIG: dict[str, type | tuple[type, ...]] = {"search_space.name": str, "experiment.name": str}


def _shape_problem(
    data: dict[str, Any], shapes: dict[str, type | tuple[type, ...]], prefix: str = ""
) -> str | None:
    """The first of `shapes`' dotted keys whose value in `data` is of another type (or a
    text with a NUL, which no path or name holds)."""
    for dotted, kind in shapes.items():
        value = select(data, dotted)
        if isinstance(value, str) and "\0" in value:
            return f"{prefix}{dotted} holds a NUL character"
        wrong = value is not None and (
            not isinstance(value, kind)
            or (isinstance(value, bool) and kind is not bool)
            or (isinstance(value, float) and not math.isfinite(value))
        )
        if wrong:
            return f"{prefix}{dotted} is {value!r:.60}, not {_type_name(kind)}"
    return None


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a text",
        dict: "an object",
        list: "a list",
        bool: "true or false",
        int: "a whole number",
    }
    return names.get(kind, "a number") if isinstance(kind, type) else "a number"


def _pool_problem(pool: dict[str, Any], prefix: str) -> str | None:
    """What is wrong with a completed pool's `metrics` and `archs` (values numbers or null)."""
    metrics, archs = pool.get("metrics"), pool.get("archs")
    if not isinstance(metrics, dict):
        return f"{prefix}metrics is {_kind(metrics)}, not an object (a completed run has them)"
    for key, value in metrics.items():
        if value is not None and not _number(value):
            return f"{prefix}metrics.{key} is {value!r}, not a number or null"
        low, high = METRIC_RANGES.get(key, (-math.inf, math.inf))
        if value is not None and not low <= value <= high:
            return f"{prefix}metrics.{key} is {value!r}, outside [{low:g}, {high:g}]"
    if archs is None:
        return None
    if not isinstance(archs, list):
        return f"{prefix}archs is {_kind(archs)}, not a list"
    for i, arch in enumerate(archs):
        if not isinstance(arch, dict):
            return f"{prefix}archs[{i}] is {_kind(arch)}, not an object"
        for key in ("supernet_acc", "gt_acc"):
            value = arch.get(key)
            if value is not None and not _number(value):
                return f"{prefix}archs[{i}].{key} is {value!r}, not a number or null"
            if value is not None and not 0 <= value <= 1:
                return f"{prefix}archs[{i}].{key} is {value!r}, not a fraction in [0, 1]"
    return None


_ABSENT = object()


@functools.cache
def _schema_type(dotted: str) -> Any:
    """The type the config's schema gives the key `dotted` (Any where it gives none)."""
    from nasheur.config import Config

    node: Any = Config
    for part in dotted.split("."):
        if not is_dataclass(node):
            return Any
        hints = typing.get_type_hints(node)
        if part not in hints:
            return Any
        node = hints[part]
    return node


def _fits(value: Any, kind: Any) -> bool:
    """Whether a record's `value` is one that a job of that schema type writes (a yes/no key
    true or false, an option one of its names; an unknown type takes anything)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return _number(value)
    if kind is str:
        return isinstance(value, str)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return value in {m.value for m in kind}
    return True


def _pools(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A readable completed record's pools: itself and its ``extra_pools`` (none else)."""
    if record.get("status") != "completed":
        return []
    return [record, *(record.get("extra_pools") or {}).values()]


def _number(value: Any) -> bool:
    """A finite real number (not a bool; JSON's NaN and Infinity are no results)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


@dataclass
class Job:
    """One job as its folder shows it.

    `state` is the record's status (``completed``, ``failed``, ``interrupted``, ``broken``
    for an unreadable record), else :data:`NO_RECORD` or :data:`NOT_STARTED`."""

    folder: Path
    state: str
    record: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)  # from sweep.json, where it lists the job
    files: list[str] = field(default_factory=list)  # the job's own files there (JOB_FILES)
    modified: float | None = None  # when a checkpoint or pool was last written (epoch seconds)
    resumed: bool = False  # a checkpoint or pool written after the record: run again since
    holder: dict[str, Any] | None = None  # who runs it (host, pid, SLURM job), when RUNNING
    after: str | None = None  # its state after the last launch, as sweep.json lists it
    # not started, and claimed by a launch in progress: that launch's process and the SLURM
    # job it submitted for it (nasheur.reuse.launch_holding)
    queued: dict[str, Any] | None = None

    @property
    def error(self) -> str:
        """The first line of the record's error, cut at 200 characters ("" where none)."""
        text = str((self.record or {}).get("error") or "").strip()
        line = text.splitlines()[0] if text else ""
        return line if len(line) <= 200 else line[:199] + "…"


def _scan(folder: Path) -> tuple[dict[Path, set[str]], list[Path]]:
    """The folders under `folder` that hold a job's files or Hydra's record (with the names
    found), and the sweep.json files."""
    jobs: dict[Path, set[str]] = {}
    manifests: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = set(files)
        names = {n for n in (*JOB_FILES, METRICS) if n in here}
        if HYDRA in dirs:
            names.add(HYDRA)
            dirs.remove(HYDRA)  # Hydra's own record: nothing of ours below
        if names:
            jobs[Path(root).resolve()] = names
        if SWEEP in here:
            manifests.append(Path(root) / SWEEP)
    return jobs, manifests


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The jobs that a sweep.json lists: ``{"jobs": [{"overrides", "folder", "config_hash",
    "state_at_launch", ...}]}``, read tolerantly (``jobs`` may also map each folder to its
    entry); entries without a folder are left out. Raises ValueError if it cannot be read."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as err:  # not JSON, or not UTF-8 text
        raise ValueError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    jobs = data.get("jobs") if isinstance(data, dict) else data
    if isinstance(jobs, dict):  # keyed by folder
        jobs = [
            {"folder": k, **v} if isinstance(v, dict) else {"folder": k} for k, v in jobs.items()
        ]
    if not isinstance(jobs, list):
        raise ValueError(f"{path}: no list of jobs")
    # a folder is a path: a text without NUL (no file system takes one)
    return [j for j in jobs if isinstance(j, dict) and _is_path(j.get("folder"))]


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "\0" not in value


def _listed_folder(raw: str, sweep_dir: Path) -> Path:
    """Where a folder that sweep.json names is in this sweep folder. The sweeper writes it as
    Hydra composed it (``runs/sweeps/<experiment>/<space>/<job>``, relative to where the sweep
    was launched, or absolute), and the sweep folder may have been moved or copied since: the
    path as written where it lies in this sweep folder, else the path from the sweep folder
    where that exists, else the sweep folder's own ``<space>/<job>``."""
    path = Path(raw)
    sweep = sweep_dir.resolve()
    written = path.resolve()
    if written == sweep or sweep in written.parents:
        return written
    if not path.is_absolute() and (sweep / path).is_dir():
        return (sweep / path).resolve()
    return (sweep / Path(*path.parts[-2:])).resolve()


def _newest(paths: list[Path]) -> float | None:
    """When the newest of the files was written; None where none can be read (a file replaced
    or removed meanwhile is skipped)."""
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(stamps) if stamps else None


def find_jobs(
    folders: Iterable[str | Path], records: list[dict[str, Any]] | None = None
) -> tuple[list[Job], list[str]]:
    """Every job under the given job or sweep folders, sorted by folder, and notes on what
    could not be read (a sweep.json). See the module's docstring for the states. `records`:
    the folders' records where the caller has read them already."""
    folders = [Path(f) for f in folders]
    jobs: dict[Path, Job] = {}
    for r in load_records(folders) if records is None else records:
        folder = Path(r["path"]).parent
        jobs[folder] = Job(folder, str(r.get("status") or "unknown"), record=r)
    notes: list[str] = []
    seen: dict[Path, set[str]] = {}
    manifests: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found, listed = _scan(folder)
            seen.update(found)
            manifests += listed
    for folder, names in seen.items():
        files = sorted(n for n in JOB_FILES if n in names)
        modified = _newest([folder / n for n in PROGRESS_FILES if n in names])
        job = jobs.get(folder)
        if job is not None:  # recorded: note a checkpoint or pool written after the record
            job.files, job.modified = files, modified
            recorded = _newest([Path(job.record["path"])])  # type: ignore[index]
            job.resumed = (
                job.state != "completed"
                and None not in (modified, recorded)
                and modified > recorded  # type: ignore[operator]
            )
        elif files:
            jobs[folder] = Job(folder, NO_RECORD, files=files, modified=modified)
        else:  # Hydra's record only: composed, never started
            jobs[folder] = Job(folder, NOT_STARTED)
    # a job that runs holds its folder's lock, whatever its files or last record say
    for job in jobs.values():
        if job.state != "completed" and job.folder.is_dir():
            holder = folder_holder(job.folder)
            if holder is not None:
                job.state, job.holder = RUNNING, holder
    for manifest in sorted(set(manifests)):
        try:
            listed = read_manifest(manifest)
        except ValueError as err:
            notes.append(str(err))
            continue
        # a listed job is also found in its sweep's folder by its config hash (its record's,
        # else the end of its folder's name, ``<readable>-<hash>``, whatever the readable part
        # says) or its folder's name; not elsewhere: every experiment's baseline job has the
        # same hash and runs in its own sweep's folder
        sweep = manifest.parent.resolve()
        by_hash: dict[Any, Job] = {}
        by_name: dict[str, Job] = {}
        for j in jobs.values():
            if sweep in j.folder.parents:
                chash = (j.record or {}).get("config_hash") or j.folder.name.rpartition("-")[2]
                by_hash.setdefault(chash, j)
                by_name.setdefault(j.folder.name, j)
        for entry in listed:
            folder = _listed_folder(str(entry["folder"]), manifest.parent)
            job = (
                jobs.get(folder)
                or by_hash.get(str(entry.get("config_hash")))
                or by_name.get(Path(str(entry["folder"])).name)
            )
            if job is None:
                job = jobs[folder] = Job(folder, NOT_STARTED)
            overrides = entry.get("overrides")
            if isinstance(overrides, list) and not job.overrides:
                job.overrides = [str(o) for o in overrides]
            if isinstance(entry.get("after"), str) and job.after is None:
                job.after = entry["after"]
            elif job.state == NOT_STARTED and "after" not in entry and entry.get("config_hash"):
                # listed by a launch that has not ended: queued, or waiting for its turn
                job.queued = launch_holding(sweep, folder, str(entry["config_hash"]))
    return sorted(jobs.values(), key=lambda j: natural_key(str(j.folder))), notes
