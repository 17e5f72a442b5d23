"""Each job's state after a launch (its JobReturn and its folder's record), the summary a
sweep ends with, and the error that ends a sweep whose jobs did not all complete.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from nasheur.jobguard import METRICS, FolderLocked, NoResult, describe_holder, folder_holder
from nasheur.reuse import LEFT
from nasheur.sweep.manifest import merge_manifest, recorded_error, recorded_state

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One job of the sweep: its state at launch and, once the launch returned, after it."""

    overrides: list[str]
    folder: Path
    config_hash: str
    before: str
    after: str = ""  # one of ORDER
    detail: str = ""  # the error's first line, a SLURM state, who holds the folder
    launched: bool = False  # by this launch
    reused: str = ""  # the folder of another sweep's completed job copied into this one
    trained_in: str = ""  # the folder of a trained twin whose super-net this job evaluates
    # its metrics.json as the launch found it (record_stamp; None: none): a record that
    # differs by the end was written during this launch
    stamp: tuple[int, int, int] | None = None

    def launch(self) -> None:
        """Mark the job as launched by this launch, noting its record as it is now."""
        self.launched = True
        self.stamp = record_stamp(self.folder)

    def recorded_since_launch(self) -> bool:
        """Whether its folder holds a metrics.json written since the launch noted it."""
        now = record_stamp(self.folder)
        return now is not None and now != self.stamp

    def copied(self, source: Path, before: str = "completed") -> None:
        """The job was copied from `source`, another sweep's completed twin."""
        self.before, self.after, self.detail, self.reused = before, "completed", "", str(source)
        log.info("reused %s: completed in %s", self.folder, source)

    def entry(self) -> dict[str, Any]:
        """Its line in sweep.json: written before the launch, and again with ``after`` once
        the launch returned (a relaunch tells a job that never ran from a deleted one)."""
        return {
            "overrides": self.overrides,
            "folder": str(self.folder),
            "config_hash": self.config_hash,
            "state_at_launch": self.before,
            **({"after": self.after} if self.after else {}),
            **({"reused_from": self.reused} if self.reused else {}),
            **({"trained_in": self.trained_in} if self.trained_in else {}),
        }


def record_stamp(folder: Path) -> tuple[int, int, int] | None:
    """What tells one metrics.json in `folder` from another (written atomically: a new file
    each time); None where there is none."""
    try:
        # opened, not only stat-ed: on NFS an open revalidates what a compute node wrote,
        # where a stat may answer from the client's attribute cache
        with (folder / METRICS).open("rb") as f:
            st = os.fstat(f.fileno())
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def settle(
    todo: list[Outcome], results: Sequence[JobReturn], pending: str = "not finished"
) -> None:
    """Each launched job's state after the launch: its JobReturn (in launch order) and its
    folder's metrics.json; `pending` for a job without a result and without a record."""
    for i, o in enumerate(todo):
        r = results[i] if i < len(results) else None
        recorded = recorded_state(o.folder, o.config_hash)
        value = None if r is None else r._return_value
        if isinstance(value, FolderLocked):  # another copy started first: left to it
            o.after, o.detail = "running elsewhere", describe_holder(value.holder)
        elif isinstance(value, NoResult):  # its record, if written since the launch, stands
            fresh = o.recorded_since_launch()
            o.after = (
                recorded
                if fresh and recorded in ("completed", "interrupted", "failed")
                else "no record"
            )
            o.detail = "" if o.after == "completed" else str(value)
        elif r is not None and r.status == JobStatus.COMPLETED:
            o.after = "completed"
        elif r is not None:
            o.after = "interrupted" if recorded == "interrupted" else "failed"
            o.detail = first_line(value) if isinstance(value, BaseException) else repr(value)
        else:  # the launch stopped before this job's result: what its folder says
            holder = folder_holder(o.folder)
            if holder is not None:  # running now (a resubmission): its old record is stale
                o.after, o.detail = "not finished", f"running, {describe_holder(holder)}"
            elif recorded == "failed" and o.recorded_since_launch():  # failed before the stop
                o.after = "failed"
                o.detail = recorded_error(o.folder).removeprefix(": ")
            else:  # an older failed record says nothing of this launch
                o.after = recorded if recorded in ("completed", "interrupted") else pending


# a job's state after the launch (`no record`: its cluster ended it without a metrics.json;
# `not finished`: the launcher stopped waiting before its result, and it may still run in
# SLURM; `not run`: the sweep was stopped before it)
ORDER = (
    "completed",
    "failed",
    "interrupted",
    "no record",
    "running elsewhere",
    LEFT,
    "not finished",
    "not run",
)


def _refresh_elsewhere(outcomes: list[Outcome]) -> None:
    """A job left to another launch may have ended while this one ran (completed, scancel-ed):
    its folder's record says how, not the state it had at launch."""
    for o in outcomes:
        if o.after != "running elsewhere":
            continue
        holder = folder_holder(o.folder)
        if holder is not None:  # perhaps another copy by now: name the one that holds it
            o.detail = describe_holder(holder)
            continue
        recorded = recorded_state(o.folder, o.config_hash)
        o.after = recorded if recorded in ("completed", "failed", "interrupted") else "no record"
        o.detail = "ran elsewhere, ended during this launch" + recorded_error(o.folder)


def record_after(sweep_dir: Path, outcomes: list[Outcome]) -> None:
    """sweep.json's ``after`` of each job this launch ran or left to another, as the summary
    says it (a job left to another launch that ended meanwhile: its record's state)."""
    _refresh_elsewhere(outcomes)
    merge_manifest(sweep_dir, [o.entry() for o in outcomes if o.launched or o.after])


def summary(
    config: DictConfig,
    sweep_dir: Path,
    outcomes: list[Outcome],
    todo: list[Outcome],
    stopped: str | None = None,
) -> list[str]:
    """The end of a sweep: the count of each state, the jobs that did not complete, where the
    results are and the commands that read them."""
    _refresh_elsewhere(outcomes)
    counts = {s: sum(o.after == s for o in outcomes) for s in ORDER}
    before = sum(o.before == "completed" and not o.launched and not o.reused for o in outcomes)
    reused = sum(bool(o.reused) for o in outcomes)
    # trained twins (README): completed in this launch by evaluating another job's super-net
    evaluated = sum(bool(o.trained_in) and o.launched and o.after == "completed" for o in outcomes)
    notes = [f"{before} before this launch"] if before else []  # of the completed jobs
    if reused:
        notes.append(f"{reused} copied from other sweeps, where they completed")
    if evaluated:
        notes.append(
            f"{evaluated} only evaluated: "
            + (
                "its super-net trained in another job"
                if evaluated == 1
                else "their super-nets trained in other jobs"
            )
        )
    parts = []
    for state, n in counts.items():
        if n:
            note = f" ({', '.join(notes)})" if state == "completed" and notes else ""
            parts.append(f"{n} {state}{note}")
    name = OmegaConf.select(config, "experiment.name") or sweep_dir.name
    n = len(outcomes)
    lines = [
        f"nasheur: sweep {name}: {n} job{'s' if n != 1 else ''}: "
        + (", ".join(parts) or "none")
        + (f"; {stopped}" if stopped else "")
    ]
    listed = [o for o in outcomes if o.after != "completed"]
    for o in listed[:20]:
        try:
            where = o.folder.relative_to(sweep_dir)
        except ValueError:
            where = o.folder
        lines.append(f"  {o.after}: {where}" + (f": {o.detail}" if o.detail else ""))
    if len(listed) > 20:
        lines.append(f"  ... and {len(listed) - 20} more")
    where = shlex.quote(str(sweep_dir))
    lines.append(f"results in {sweep_dir} (sweep.json lists its jobs); read them with")
    lines.append(f"  python -m nasheur.results show {where}")
    tables = OmegaConf.select(config, "experiment.table")  # "11", or "5,6,7"
    for table in [] if tables is None else str(tables).split(","):
        lines.append(f"  python -m nasheur.results table {where} --table {table.strip()}")
    return lines


def _recorded_failure(o: Outcome) -> bool:
    """Whether the job's folder holds its own failed record, written by this launch."""
    return o.recorded_since_launch() and recorded_state(o.folder, o.config_hash) == "failed"


_UNFINISHED = ("failed", "interrupted", "no record", "not finished", "not run")


def failure_message(todo: list[Outcome], stopped: str | None, submitted: bool = True) -> str | None:
    """The error that ends a sweep whose launched jobs did not all complete, or None.
    `submitted`: whether the jobs that did not end reached the scheduler (not when sbatch
    refused them)."""
    launched = len(todo)
    bad = [o for o in todo if o.after in _UNFINISHED]
    if not bad and not stopped:
        return None
    counts = {s: sum(o.after == s for o in bad) for s in _UNFINISHED}
    # "of 1 launched job": jobs skipped as completed or copied from a sibling are not counted
    jobs = "launched job" if launched == 1 else "launched jobs"
    notes = []
    if counts["failed"] and counts["failed"] == len(bad):
        head = f"{counts['failed']} of {launched} {jobs} failed"
    else:
        head = f"{len(bad)} of {launched} {jobs} did not complete"
        notes.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if counts["failed"]:
        # a job refused before it wrote anything (a checkpoint or record of another config in
        # its folder) has no record of this failure: the summary's lines above say why
        told = sum(o.after == "failed" and _recorded_failure(o) for o in bad)
        notes.append(
            "metrics.json says why"
            if told == counts["failed"]
            else "the summary above says why"
            if not told
            else "metrics.json or the summary above says why"
        )
    others = launched - len(bad)
    if stopped and not submitted:
        from nasheur.config import site_env_file  # which imports the sweeper, and it this

        notes.append(f"{stopped}; they were not submitted: fix the cause ({site_env_file()})")
    elif stopped:
        notes.append(
            f"the launcher stopped waiting: {stopped}; the other jobs may still be running in "
            "SLURM (squeue)"
        )
    elif others and all(o.after == "completed" for o in todo if o not in bad):
        notes.append("the others completed" if others > 1 else "the other one completed")
    them = "it" if len(bad) == 1 and not stopped else "them"
    # a failure's cause (a damaged checkpoint, a NaN loss) may need fixing first: a retry
    # as it stands would fail alike
    fixed = " once the cause is fixed" if counts["failed"] else ""
    return f"{head} ({'; '.join(n for n in notes if n)}). " + (
        f"Run the same command again to retry {them}{fixed} (completed jobs are skipped, "
        "interrupted ones resume from their checkpoint, running ones are left alone)"
    )
