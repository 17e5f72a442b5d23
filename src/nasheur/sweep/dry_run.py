"""``hydra.sweeper.dry_run=true``: the checked plan as a launch would carry it out, read
without writing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasheur.jobguard import CHECKPOINT
from nasheur.reuse import Claims, TrainedTwins, started_jobs, trained_elsewhere_now
from nasheur.sweep.manifest import RUNNING
from nasheur.sweep.plan import Planned, grouped
from nasheur.sweep.preflight import bad_inputs, missing_data
from nasheur.sweep.twins import at_launch, copyable, of_another_sweep, trained_by, twin_on_its_own

# what a launch would do with a job in each state (job_state; RUNNING: a process holds it)
DRY_RUN = {
    "new": ("run", ""),
    "completed": ("skip", "completed"),
    "interrupted": ("resume", "from its checkpoint"),
    "failed": ("run again", "failed"),
    "ground truth changed": ("evaluate again", "ground truth changed"),
    RUNNING: ("leave", "running elsewhere"),
    # launched, the job refuses a record it cannot read or of another config (nasheur.job)
    "broken": ("fail", "its metrics.json cannot be read: move it away to run the job"),
    "other-config": ("fail", "its metrics.json is another config's: move it away"),
}


def has_checkpoint(folder: Path) -> bool:
    """Whether an interrupted job in `folder` resumes from a checkpoint rather than starting
    over (one stopped before its first checkpoint: run.checkpoint_every_s makes that common)."""
    return (folder / CHECKPOINT).is_file()


def dry_run_lines(
    sweep_dir: Path,
    jobs: list[Planned],
    reuse: bool,
    local: bool,
    packing: Callable[[int], str] = lambda n: "",
) -> list[str]:
    """The plan as a launch would carry it out, read without writing anything. `packing`:
    how the launcher runs n jobs side by side (:func:`~nasheur.sweep.launchers.side_by_side`)."""
    listed = started_jobs(sweep_dir) if reuse else None
    lines, counts, reads = [], {}, []
    trained = TrainedTwins(sweep_dir.parent) if reuse else None
    for job, folder, chash, _experiment, data, training in jobs:
        state, _, source = at_launch(folder, chash, sweep_dir, listed)
        verb, detail = DRY_RUN.get(state, ("run again", state))
        if state == "interrupted" and not has_checkpoint(folder):
            detail = "from the start: it stopped before its first checkpoint"
        trainer = None
        if source is None and copyable(state, folder, listed) and reuse:
            claims = Claims(sweep_dir)
            trainer = claims.holder(folder, chash)
            if trainer is None:
                trainer = twin_on_its_own(claims, folder, chash, sweep_dir)
            trainer = trainer if of_another_sweep(trainer, sweep_dir) else None
        twin = now = None
        new = verb == "run" and copyable(state, folder, listed)
        if source is None and trainer is None and trained is not None and new:
            twin = trained.find(folder, training)
            now = None if twin is not None else trained.training_now(folder, training)
        if source is not None:
            verb, detail = "copy", f"completed in {source}"
        elif trainer is not None:
            verb, detail = "leave", trained_by(trainer) + "; copied once it completed"
        elif twin is not None:
            verb, detail = "evaluate", f"its super-net, trained in {twin}"
        elif now is not None:
            detail = trained_elsewhere_now(now)
        if verb not in ("skip", "leave", "copy"):
            reads.append((job, data))  # the jobs that would read their data
        counts[verb] = counts.get(verb, 0) + 1
        said = f"{verb} ({detail})" if detail else verb
        lines.append(f"  {said}: {' '.join(job)}\n    in {folder}")
    summary = ", ".join(f"{n} to {verb}" for verb, n in counts.items())
    jobs_ = f"{len(jobs)} job" + ("s" if len(jobs) != 1 else "")
    launched = packing(len(reads))  # the jobs that would read their data: those launched
    summary += f": {launched}" if launched else ""
    head = f"dry run: {jobs_} in {sweep_dir} ({summary}); nothing was launched or written"
    missing = missing_data({r.cifar for _, r in reads if r.cifar is not None})
    bad = grouped(bad_inputs(reads, local, convert=False))
    return [
        head,
        *lines,
        *(["no CIFAR-10 for the jobs to run:", *missing] if missing else []),
        *(["jobs to run that would fail on their input:", bad] if bad else []),
    ]
