"""Jobs of this sweep that a sibling sweep (another experiment) completed, trains now or
left queued in SLURM: copied, waited for, or said to be left to it (:mod:`nasheur.reuse`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasheur.jobguard import describe_holder, folder_holder
from nasheur.reuse import (
    SUBMITTED,
    Claims,
    adopt,
    completed_twin,
    manifest_key,
    running_twin,
    stuck_reason,
)
from nasheur.sweep.manifest import RUNNING, job_state, recorded_state
from nasheur.sweep.outcomes import Outcome

log = logging.getLogger(__name__)


def at_launch(
    folder: Path, chash: str, sweep_dir: Path, listed: set[str] | None
) -> tuple[str, dict[str, Any] | None, Path | None]:
    """A job's state as a launch finds it, the process holding its folder (if one does), and
    for a new job the completed twin of a sibling sweep to copy; `listed`: the jobs this sweep
    started before (a deleted one is trained again), None where nothing is copied."""
    holder = folder_holder(folder)
    state = RUNNING if holder is not None else job_state(folder, chash)
    source = None
    if state == "new" and listed is not None and manifest_key(folder) not in listed:
        source = completed_twin(folder, chash, sweep_dir)
    return state, holder, source


def copyable(state: str, folder: Path, listed: set[str] | None) -> bool:
    """Whether a job could be copied from a sibling sweep (as :func:`at_launch` looks for
    one): new, and never started by this sweep (one deleted to run it again is trained)."""
    return state == "new" and listed is not None and manifest_key(folder) not in listed


def of_another_sweep(trainer: dict[str, Any] | None, sweep_dir: Path) -> bool:
    """Whether `trainer` (a claim's or a running twin's details) is another sweep's launch: a
    second launch of this sweep is left to the folder lock of each job, as before claims."""
    return trainer is not None and trainer.get("sweep") != str(sweep_dir.resolve())


def trained_by(holder: dict[str, Any]) -> str:
    # a SLURM job: its launch stopped waiting, and SLURM has it still
    how = _slurm_twin(holder) if holder.get("slurm_state") else describe_holder(holder)
    return f"the sweep in {holder.get('sweep', '?')} trains it ({how})"


def _slurm_twin(holder: dict[str, Any]) -> str:
    """``SLURM job 552_4, pending``, and where SLURM keeps it waiting until someone acts,
    why and what to do."""
    job = str(holder.get(SUBMITTED))
    said = f"SLURM job {job}, {str(holder['slurm_state']).lower()}"
    stuck = stuck_reason(job, str(holder.get("slurm_reason", "")))
    if stuck is not None:
        said += (
            f": {stuck}; it will not start by itself (after `scancel {job}` the same command "
            "trains the job here)"
        )
    return said


def twin_on_its_own(
    claims: Claims, folder: Path, chash: str, sweep_dir: Path
) -> dict[str, Any] | None:
    """The twin of another sweep that goes on after its launch stopped waiting for it (Ctrl-C,
    a lost login session): running (its folder held), or still listed by SLURM under the job
    named in its claim; None where there is none."""
    running = running_twin(folder, chash, sweep_dir)
    return running if running is not None else claims.queued_twin(folder, chash)


def note_submitted(todo: list[Outcome], claims: Claims | None) -> Any:
    """What :func:`each_job_settled` calls with each job's overrides and the SLURM job that
    runs it: the job's claim records that SLURM job (:meth:`Claims.note_submitted`). None
    without claims."""
    if claims is None:
        return None
    of = {tuple(o.overrides): o for o in todo}

    def note(overrides: Sequence[str], slurm_job: str) -> None:
        o = of.get(tuple(overrides))
        if o is not None:
            claims.note_submitted(o.folder, o.config_hash, slurm_job)

    return note


RUNNING_TWIN_POLL_S = 30.0  # how often a sweep looks whether a twin left to it still runs


def wait_and_copy(
    left: list[Outcome],
    claims: Claims,
    sweep_dir: Path,
    experiment_of: dict[Path, dict[str, Any]],
) -> None:
    """Wait until the launches that hold the claims of the `left` jobs have ended, then copy
    each job they completed; the others are `not run` (the same command runs them)."""
    sweeps = sorted({o.detail for o in left})
    log.info(
        "waiting for %d job%s that other sweeps train, to copy %s: %s",
        len(left),
        "" if len(left) == 1 else "s",
        "it" if len(left) == 1 else "them",
        "; ".join(sweeps[:3]) + (f" and {len(sweeps) - 3} more" if len(sweeps) > 3 else ""),
    )
    for o in left:
        said = f"waiting for {o.folder.name}: {o.detail}"  # as the line above said it
        while True:
            try:
                claims.wait(o.folder, o.config_hash)
            except OSError as err:  # a lock the file system lost (NFS): look at the twin now
                log.warning("could not wait for the claim of %s (%s)", o.folder, err)
            # its launch stopped waiting while the twin's job goes on (Ctrl-C, a lost session)
            twin = twin_on_its_own(claims, o.folder, o.config_hash, sweep_dir)
            if twin is None:
                break
            if twin.get("slurm_state"):  # said again when SLURM's state or reason changes
                now = f"waiting for {o.folder.name}: {trained_by(twin)}"
                if now != said:
                    stuck = stuck_reason(str(twin.get(SUBMITTED)), str(twin.get("slurm_reason")))
                    log.log(logging.WARNING if stuck else logging.INFO, "%s", now)
                    said = now
            time.sleep(RUNNING_TWIN_POLL_S)
        # another launch of this sweep, meanwhile: completed it, or runs it now
        if recorded_state(o.folder, o.config_hash) == "completed":
            o.after, o.detail = "completed", ""
            continue
        holder = folder_holder(o.folder)
        if holder is not None:
            o.after, o.detail = "running elsewhere", describe_holder(holder)
            continue
        source = completed_twin(o.folder, o.config_hash, sweep_dir)
        if source is not None and adopt(source, o.folder, experiment_of[o.folder]):
            o.copied(source, before=o.before)
        else:
            o.after = "not run"
            o.detail = (
                "left to another sweep, which ended without completing it; the same command "
                "runs it here"
            )
