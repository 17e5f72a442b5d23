"""A job that another experiment's sweep already completed is not trained again.

The experiment is outside a job's identity (its config hash), so one-factor sweeps share jobs:
every Table 11-13 experiment holds the space's baseline, and `best` holds the FairNAS runs of
`sampler_ablation`. Each experiment keeps its own copy of such a job in its own sweep folder
(its table reads its own baseline row), but only the first needs to train it: a sweep that
plans a job it never listed before finds, in a sibling sweep folder (``<sweeps>/*/`` with a
``sweep.json`` that lists the job), a completed job of the same config hash whose record
tables can read, whose ground truth has not changed and that no process holds, and copies it
into its own folder (:func:`adopt`) instead of launching it.

The copy is the source's ``metrics.json`` with this experiment's ``config.experiment`` and
``choices.experiment`` and a ``reused_from`` key naming the source folder, beside its
``pool.json`` and its ``checkpoint.pt`` (a hard link where the file system allows, else a
copy), so that the copy evaluates again from its checkpoint if its ground truth changes later,
as the source would. ``metrics.json`` is written last: an adoption cut short leaves no record,
and the next launch cleans up and adopts again (or, with the checkpoint there, resumes it,
which only evaluates).

**Trained twins.** A job that differs from a completed one only in what its evaluation reads
(``eval.*``, ``metrics.*``, ``ground_truth.*``: the same :func:`nasheur.config.training_hash`)
would train the same super-net, step for step: Table 10's NB201 jobs, whose pool is 100, train
what ``best`` and the baselines trained. A sweep that plans such a job (one it never started)
and finds, in a sibling sweep or its own, a completed job of the same training hash with its
checkpoint links that final checkpoint into the job's folder beside ``trained_in.json``, which
names the source, and launches the job as usual: it resumes after its last epoch, so it only
evaluates (:func:`adopt_training`). The job takes that checkpoint as its own only where
``trained_in.json`` names the checkpoint's config hash and the job's own training hash
(:func:`trained_in`), and its record says ``trained_in``. Only completed sources count: a
twin still training is not waited for (launch such sweeps after the ones that train); a job
that trains records its training hash in the lock it holds, so that a launch can say which
of its jobs a running one trains already (:meth:`TrainedTwins.training_now`).

**Single runs** (``python -m nasheur`` without ``-m``) take the same two things from the
sweeps, before they start in a folder that holds no job yet: a sweep's completed job of their
config is copied, else a sweep's completed job of their training lends its final checkpoint
(:func:`reuse_in_single_run`).

A job that this sweep listed before and whose folder is gone was deleted to run it again: it
is trained, not copied back. A job it listed but never ran (the scheduler refused the
submission, or the sweep was stopped before it) had no folder to delete: it is copied.

**Sweeps side by side** (``make sweep-11`` launches a table's experiments at once) share their
jobs through claims (:class:`Claims`): a launch holds, until its jobs have ended, a lock file
``<sweeps>/.nasheur-claims/<space>-<config hash>.lock`` for each job it trains (lock files,
harmless where no sweep runs). A sweep that plans a
job it could copy (one it never started) whose claim another launch holds leaves the job to
that launch (``left to another sweep``), launches its other jobs, then waits for that claim
(no GPU is held: the sweep's own process waits, on the login node) and copies the job once
it completed; where the other launch ended without completing it, the job is ``not run`` and
the same command runs it. A claim lasts as long as its launch waits for its jobs; where that
launch stopped waiting (Ctrl-C, a lost login session) while its job goes on in SLURM, the
job is waited for all the same: running, it holds its folder (:func:`running_twin`); queued,
the claim file still names the SLURM job that launch submitted for it (``slurm_submitted``,
written once ``sbatch`` returned), which ``squeue`` still lists (:meth:`Claims.queued_twin`).
A launch that finds such a queued twin leaves the job to it as to a running one, and puts the
claim file's record back as it found it, so that later launches see the twin too. Where
``squeue`` cannot answer (no SLURM here, its controller down), no queued twin is seen and the
job is trained here. SLURM numbers its jobs anew after ``MaxJobId``: a claim records the user
of its launch too, and a number that ``squeue`` lists under another user is a stale claim's.
A launch releases its claims before it waits on others', so two sweeps that leave jobs to
each other do not wait forever. ``hydra.sweeper.reuse=false`` turns adoption and claims off.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

try:
    import pwd
except ImportError:  # not POSIX
    pwd = None  # type: ignore[assignment]

from nasheur.io import atomic_write_json, read_json, remove_stale_temporaries
from nasheur.jobguard import (
    CHECKPOINT,
    JOB_FILES,
    METRICS,
    POOL,
    FolderLocked,
    describe_holder,
    exclusive,
    folder_holder,
    hold_folder,
    lock_holder,
    recorded_details,
    try_hold,
    write_details,
)

log = logging.getLogger(__name__)

MANIFEST = "sweep.json"
CLAIMS = ".nasheur-claims"  # beside the sweep folders: the jobs that running launches train
LEFT = "left to another sweep"  # a job's state after a launch that left it to a sibling's
SUBMITTED = "slurm_submitted"  # a claim's record: the SLURM job its launch submitted for it
USER = "user"  # a claim's record: the user of the launch that holds it
SQUEUE_TIMEOUT_S = 60.0  # a controller that has not answered by then is taken as no answer
TRAINED_IN = "trained_in.json"  # beside a checkpoint that a trained twin's training wrote


def manifest_key(folder: Any) -> str:
    """A job's key in sweep.json: ``<space>/<job folder>`` (its folder's last two parts, the
    config hash among them), the same whatever directory a launch ran from."""
    return "/".join(Path(str(folder)).parts[-2:])


def listed_jobs(sweep_dir: Path, *, started_only: bool = False) -> set[str]:
    """The jobs a sweep folder's ``sweep.json`` lists (:func:`manifest_key`); with
    `started_only`, less those that never started: new at their latest launch, which then did
    not run them (``after: not run``: the scheduler refused them, or the sweep stopped first;
    or ``left to another sweep``).
    A job whose latest launch did not say how it ended (the sweep was killed) counts as
    started. A missing or unreadable ``sweep.json`` lists none."""
    try:
        return _keys(_entries(sweep_dir), started_only)
    except ValueError:
        return set()


def started_jobs(sweep_dir: Path) -> set[str] | None:
    """The jobs that the sweep in `sweep_dir` started before (:func:`listed_jobs` with
    `started_only`), or None where its ``sweep.json`` is there but cannot be read: a job whose
    folder is gone may then have been deleted to run it again, so none of its jobs is copied
    from a sibling sweep (or evaluates a twin's super-net) at this launch; each is trained."""
    try:
        return _keys(_entries(sweep_dir), started_only=True)
    except ValueError as err:
        log.warning(
            "%s; which of this sweep's jobs were deleted to run again cannot be told, so "
            "none is copied from another sweep at this launch: each is trained",
            err,
        )
        return None


def _entries(sweep_dir: Path) -> list[dict[str, Any]]:
    """The entries of the sweep's ``sweep.json`` ([] where there is none); ValueError where it
    cannot be read."""
    from nasheur.results.collect import read_manifest

    path = sweep_dir / MANIFEST
    return read_manifest(path) if path.is_file() else []


def _keys(entries: list[dict[str, Any]], started_only: bool) -> set[str]:
    return {
        manifest_key(e["folder"])
        for e in entries
        if not (
            started_only
            and e.get("state_at_launch") == "new"
            and e.get("after") in ("not run", LEFT)
        )
    }


def sweep_twins(
    sweeps: Path, space: str, config_hash: str, *, besides: Path | None = None
) -> list[Path]:
    """The folders of jobs of `config_hash` (space `space`) in the sweep folders under
    `sweeps`, less those of the sweep `besides` (its own)."""
    own = None if besides is None else besides.resolve()
    return [
        candidate
        for candidate in sorted(sweeps.glob(f"*/{space}/*-{config_hash}"))
        if candidate.parent.parent.resolve() != own
    ]


def completed_twin(folder: Path, config_hash: str, sweep_dir: Path) -> Path | None:
    """A completed job of `config_hash` that a sweep beside `sweep_dir` lists (same space),
    whose record is readable, whose ground truth has not changed and that no process holds;
    None if there is none."""
    twins = sweep_twins(sweep_dir.parent, folder.parent.name, config_hash, besides=sweep_dir)
    return first_completed(twins, config_hash)


def first_completed(candidates: list[Path], config_hash: str) -> Path | None:
    """The first of the job folders `candidates` that a sweep lists and that holds a usable
    completed record of `config_hash` (:func:`completed_twin`)."""
    for candidate in candidates:
        if not (candidate / METRICS).is_file():
            continue
        if manifest_key(candidate) not in listed_jobs(candidate.parent.parent):
            continue  # not a sweep's job: a run of its own, a folder put aside
        record = _usable_record(candidate)
        if record is not None and record.get("config_hash") == config_hash:
            return candidate
    return None


def adopt(source: Path, folder: Path, experiment: dict[str, Any]) -> bool:
    """Copy the completed job in `source` into `folder` as a job of `experiment` (the resolved
    ``experiment`` node of this sweep's config). False where a process holds `folder`, it has
    a ``metrics.json`` by now (another launch got there first), or the files cannot be copied
    (the job is then trained as usual)."""
    try:
        record = read_json(source / METRICS)
        folder.mkdir(parents=True, exist_ok=True)
        with hold_folder(folder):
            if (folder / METRICS).exists():
                return False
            remove_stale_temporaries(
                folder, (*JOB_FILES, TRAINED_IN)
            )  # of an adoption or a job killed here before
            # a trained twin's note too: the checkpoint is that twin's, and the copy needs the
            # note to evaluate it again. The note before the checkpoint: a copy cut short with
            # the checkpoint alone would be resumed, and refused as another config's
            for name in (POOL, TRAINED_IN, CHECKPOINT):
                if (source / name).is_file():
                    _link_or_copy(source / name, folder / name)
            record["config"] = {**(record.get("config") or {}), "experiment": experiment}
            choices = record.get("choices")
            if isinstance(choices, dict) and "experiment" in choices:
                record["choices"] = {**choices, "experiment": experiment.get("name")}
            record["reused_from"] = str(source.resolve())
            atomic_write_json(folder / METRICS, record)
    except FolderLocked:
        return False
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("could not copy %s into %s (%s): the job runs instead", source, folder, err)
        return False
    return True


def _usable_record(folder: Path, *, evaluation: bool = True) -> dict[str, Any] | None:
    """The completed record in `folder` that tables can read and, with `evaluation` (its
    results are taken, not only its training), whose ground truth has not changed, where no
    process holds the folder; None otherwise."""
    from nasheur.groundtruth.convert import fingerprint_of, source_changed
    from nasheur.results.collect import record_problem

    try:
        record = read_json(folder / METRICS)
        if (
            not isinstance(record, dict)
            or record.get("status") != "completed"
            or record_problem(record) is not None
            or folder_holder(folder) is not None
            # (hashing a touched file again for each of a sweep's trained twins: not needed)
            or (evaluation and source_changed(fingerprint_of(record)))
        ):
            return None
    except (OSError, ValueError, AttributeError, TypeError):
        return None  # a record this version cannot read is no source
    return record


class TrainedTwins:
    """The completed jobs of the sweep folders under `sweeps` (a sweep's own among them: an
    evaluation setting given on the command line makes new jobs there) that have their
    checkpoint, by space and training hash: read once per space and launch, however many
    jobs look."""

    def __init__(self, sweeps: Path) -> None:
        self.sweeps = sweeps
        self._by_space: dict[str, dict[str, list[Path]]] = {}
        self._running: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def find(self, folder: Path, training: str, space: str | None = None) -> Path | None:
        """A completed job that trained the super-net of `folder`'s job (`training`, its
        training hash; `space`, by default the name of `folder`'s parent), still completed
        and unheld now; None if there is none."""
        space = space or folder.parent.name
        if space not in self._by_space:
            self._by_space[space] = self._index(space)
        for candidate in self._by_space[space].get(training, []):
            if candidate.resolve() == folder.resolve():
                continue  # its own record, if it has one, is not another training's
            usable = _usable_record(candidate, evaluation=False)
            if (candidate / CHECKPOINT).is_file() and usable is not None:
                return candidate
        return None

    def training_now(
        self, folder: Path, training: str, space: str | None = None
    ) -> dict[str, Any] | None:
        """The job of a sweep that trains the super-net of `folder`'s job now (a job that
        records `training` in the lock it holds): its holder's details, with ``folder`` and
        ``sweep``; None where none does. (Once it completed, a launch only evaluates it.)"""
        space = space or folder.parent.name
        if space not in self._running:
            self._running[space] = {}
            for candidate in sorted(self.sweeps.glob(f"*/{space}/*")):
                holder = folder_holder(candidate)
                if holder and isinstance(holder.get("training"), str):
                    self._running[space].setdefault(holder["training"], []).append(
                        {
                            **holder,
                            "folder": str(candidate),
                            "sweep": str(candidate.parent.parent.resolve()),
                        }
                    )
        for holder in self._running[space].get(training, []):
            if Path(holder["folder"]).resolve() != folder.resolve():
                return holder
        return None

    def _index(self, space: str) -> dict[str, list[Path]]:
        from nasheur.config import training_hash

        index: dict[str, list[Path]] = {}
        if not self.sweeps.is_dir():  # a dry run's first sweep
            return index
        for sweep in sorted(p for p in self.sweeps.iterdir() if p.is_dir()):
            if not (sweep / MANIFEST).is_file():
                continue
            jobs = listed_jobs(sweep)  # not a run of its own, nor a folder put aside
            for candidate in sorted((sweep / space).glob("*")):
                if manifest_key(candidate) not in jobs or not (candidate / CHECKPOINT).is_file():
                    continue
                record = _usable_record(candidate, evaluation=False)
                try:
                    key = None if record is None else training_hash(record["config"])
                except (KeyError, TypeError, ValueError, AttributeError):
                    key = None
                if key is not None:
                    index.setdefault(key, []).append(candidate)
        return index


def adopt_training(source: Path, folder: Path) -> bool:
    """Link the final checkpoint of `source`, a trained twin, into `folder`, with
    ``trained_in.json`` naming it; the job launched there then only evaluates. False where a
    process holds `folder`, it has a record or checkpoint by now, or the files cannot be
    linked or copied (the job then trains as usual)."""
    from nasheur.config import training_hash

    try:
        record = read_json(source / METRICS)
        training = training_hash(record["config"])
        # a source that itself evaluated a twin's checkpoint (its record says trained_in) lends
        # that twin's: the note names the config that wrote the checkpoint, which is what
        # load_checkpoint compares
        lent = trained_in(source, training) if record.get("trained_in") else None
        if record.get("trained_in") and lent is None:
            raise ValueError(f"its {TRAINED_IN}, which names the checkpoint's config, is gone")
        note = {
            "source": str(lent["source"]) if lent else str(source.resolve()),
            "config_hash": lent["config_hash"] if lent else record["config_hash"],
            "training_hash": training,
        }
        folder.mkdir(parents=True, exist_ok=True)
        with hold_folder(folder):
            if (folder / METRICS).exists() or (folder / CHECKPOINT).exists():
                return False
            remove_stale_temporaries(folder, (*JOB_FILES, TRAINED_IN))
            atomic_write_json(folder / TRAINED_IN, note)  # first: the checkpoint needs it
            _link_or_copy(source / CHECKPOINT, folder / CHECKPOINT)
    except FolderLocked:
        return False
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning(
            "could not take the checkpoint of %s into %s (%s): the job trains instead",
            source,
            folder,
            err,
        )
        return False
    log.info("%s: evaluates the super-net trained in %s", folder, source)
    return True


def trained_in(folder: Path, training: str) -> dict[str, Any] | None:
    """What ``trained_in.json`` in `folder` says (``source``, ``config_hash``) where it names
    a twin of `training` (the job's own training hash); None where there is none, or it names
    another training."""
    try:
        note = read_json(folder / TRAINED_IN)
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or note.get("training_hash") != training:
        return None
    if not all(isinstance(note.get(key), str) for key in ("config_hash", "source")):
        return None  # a damaged note names no twin, as an unreadable one
    return note


def trained_elsewhere_now(holder: dict[str, Any]) -> str:
    """What a launch that trains a job says of a twin that trains its super-net now
    (:meth:`TrainedTwins.training_now`)."""
    return (
        f"its super-net trains now in {holder['folder']} ({describe_holder(holder)}); it is "
        "trained here too, where after that job completed it would only be evaluated"
    )


def reuse_in_single_run(folder: Path, config: dict[str, Any], sweeps: Path) -> Path | None:
    """What a single run (no ``-m``) of the resolved `config` in `folder` takes from the sweep
    folders under `sweeps` before it starts, where its folder holds no job yet (no record, no
    checkpoint): a sweep's completed job of its config is copied in (:func:`adopt`: the run
    returns that record at once), else the final checkpoint of a sweep's completed job of its
    training is linked in (:func:`adopt_training`: the run only evaluates). The source taken,
    or None. A sweep's job of its config that runs now is not waited for: a warning says
    that this run trains it too."""
    if any((folder / name).exists() for name in (METRICS, CHECKPOINT)):
        return None  # its own job: resumed or returned as it is
    try:
        return _take_from_sweeps(folder, config, sweeps)
    except OSError as err:  # another user's unreadable sweep, a file system gone: no twin
        log.warning("could not look for this job in %s (%s): it runs here", sweeps, err)
        return None


def _take_from_sweeps(folder: Path, config: dict[str, Any], sweeps: Path) -> Path | None:
    from nasheur.config import config_hash, training_hash

    space, chash = config["search_space"]["name"], config_hash(config)
    # (a run folder named inside a sweep, with hydra.run.dir, is not its own twin)
    twins = [t for t in sweep_twins(sweeps, space, chash) if t.resolve() != folder.resolve()]
    source = first_completed(twins, chash)
    if source is not None and adopt(source, folder, config["experiment"]):
        log.info("%s: copied from %s, where a sweep completed this job", folder, source)
        return source
    trained, training = TrainedTwins(sweeps), training_hash(config)
    source = trained.find(folder, training, space)
    if source is not None and adopt_training(source, folder):
        return source
    running = first_running(twins)
    if running is not None:
        log.warning(
            "this job runs now in a sweep, in %s (%s); this run trains it too, in %s (Ctrl-C "
            "and the same command once that one completed copies its results)",
            running["sweep"],
            describe_holder(running),
            folder,
        )
    elif (now := trained.training_now(folder, training, space)) is not None:
        log.warning(
            "%s (Ctrl-C now, and the same command once it completed only evaluates)",
            trained_elsewhere_now(now),
        )
    return None


class Claims:
    """The claims of one launch of the sweep in `sweep_dir` on the jobs it trains (module doc):
    :meth:`take` before the launch, :meth:`note_submitted` once SLURM took its job,
    :meth:`release` once its jobs have ended."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir
        self._held: dict[Path, int] = {}
        self._before: dict[Path, dict[str, Any]] = {}  # what a taken claim's file said before

    def path(self, folder: Path, config_hash: str) -> Path:
        return self.sweep_dir.parent / CLAIMS / f"{folder.parent.name}-{config_hash}.lock"

    def take(self, folder: Path, config_hash: str) -> dict[str, Any] | None:
        """Claim the job: None where this launch holds the claim now (or claims cannot be
        made here: the job is trained as without them), else the details of the launch that
        holds it (its ``sweep`` folder among them)."""
        path = self.path(folder, config_hash)
        if path in self._held:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        before: dict[str, Any] = {}
        fd, holder = try_hold(
            path, {"sweep": str(self.sweep_dir.resolve()), USER: current_user()}, before=before
        )
        if fd is not None:
            self._held[path] = fd
            self._before[path] = before
        return holder

    def note_submitted(self, folder: Path, config_hash: str, slurm_job: str) -> None:
        """Record in the job's claim (where this launch holds it) the SLURM job that trains
        it, so that a later launch sees it queued after this one stopped waiting."""
        fd = self._held.get(self.path(folder, config_hash))
        if fd is None:
            return
        details = recorded_details(self.path(folder, config_hash))
        try:
            write_details(fd, {**details, SUBMITTED: str(slurm_job)})
        except OSError as err:
            log.warning(
                "could not record SLURM job %s in the claim of %s (%s)", slurm_job, folder, err
            )

    def drop(self, folder: Path, config_hash: str) -> None:
        """Let one claim go (the job was copied after all, or is left to a twin), its file
        put back as this launch found it: a queued twin that it named stays named."""
        path = self.path(folder, config_hash)
        fd = self._held.pop(path, None)
        before = self._before.pop(path, {})
        if fd is not None:
            with contextlib.suppress(OSError):
                write_details(fd, before)
            with contextlib.suppress(OSError):
                os.close(fd)

    def holder(self, folder: Path, config_hash: str) -> dict[str, Any] | None:
        """The launch that holds the job's claim, without taking it (a dry run's look)."""
        return lock_holder(self.path(folder, config_hash))

    def queued_twin(self, folder: Path, config_hash: str) -> dict[str, Any] | None:
        """The SLURM job that another sweep's launch, no longer holding the job's claim,
        submitted for it and that SLURM still lists (queued or running): that launch's
        details with ``slurm_state`` and ``slurm_reason`` (squeue's); None where there is
        none, or squeue cannot tell."""
        path = self.path(folder, config_hash)
        if path in self._held:
            details = self._before.get(path, {})
        elif lock_holder(path) is None:
            details = recorded_details(path)
        else:
            return None  # a launch holds the claim: it is that launch's to wait for
        job, sweep = details.get(SUBMITTED), details.get("sweep")
        if not job or sweep == str(self.sweep_dir.resolve()):
            return None  # this sweep's own job: its folder lock settles who trains it
        status = slurm_job_status(str(job))
        if status is None:
            return None
        state, reason, user = status
        submitter = details.get(USER)  # absent in claims of versions before 2026-12-05
        if submitter is not None and user != str(submitter):
            # SLURM gave the number to another job since: job ids start again after
            # MaxJobId, and at 1 on a controller set up anew
            log.warning(
                "%s: the sweep in %s submitted SLURM job %s for this config, and that number "
                "is now %s's job, not %s's: the job it named ended long ago (its claim is "
                "stale), and this one is trained here",
                folder,
                sweep,
                job,
                user,
                submitter,
            )
            return None
        return {**details, "slurm_state": state, "slurm_reason": reason}

    def release(self) -> None:
        while self._held:
            path, fd = self._held.popitem()
            self._before.pop(path, None)
            with contextlib.suppress(OSError):
                os.close(fd)

    def wait(self, folder: Path, config_hash: str) -> None:
        """Until no launch holds the job's claim (its launch ended, or its process died)."""
        path = self.path(folder, config_hash)
        if path.is_file():
            with exclusive(path):
                pass


# what squeue's reason (%r) says of a pending job that waits until someone acts, and what to do
STUCK_REASONS = {
    "JobHeldUser": "held by its user: `scontrol release {job}` lets it run",
    "JobHeldAdmin": "held by an administrator: `scontrol release {job}` (as one) lets it run",
    "launch_failed_requeued_held": "held after its launch failed: `scontrol release {job}` "
    "lets it run",
    "DependencyNeverSatisfied": "its dependency can never be satisfied",
}


def launch_holding(sweep_dir: Path, folder: Path, config_hash: str) -> dict[str, Any] | None:
    """The details of the launch in progress that claims a job of the sweep in `sweep_dir`
    (its process, and the SLURM job it submitted for it once SLURM took it: ``SUBMITTED``);
    None where no launch holds its claim now, or where the launch that holds it is another
    sweep's: the claims folder is shared by sibling sweeps, and a twin's claim says nothing of
    this sweep's job (its launch left it to that one, or ended, or runs with reuse=false)."""
    holder = lock_holder(Claims(sweep_dir).path(folder, config_hash))
    ours = str(Path(sweep_dir).resolve())
    if holder is None or str(holder.get("sweep", ours)) != ours:
        return None
    return holder


def slurm_job_status(job: str) -> tuple[str, str, str] | None:
    """The state in which ``squeue`` lists the SLURM job (``1234`` or an array task,
    ``1234_5``), the reason it gives and the job's user (``PENDING``, ``Priority``, ``ana``;
    ``RUNNING``, ``None``; a held job ``PENDING``, ``JobHeldUser``); None where it lists it
    no more (ended, or never known), or cannot be asked (no squeue, no answer from the
    controller)."""
    try:
        done = subprocess.run(
            ["squeue", "--noheader", "--array", "--jobs", job, "--format", "%T|%u|%r"],
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("could not ask squeue about SLURM job %s (%s)", job, err)
        return None
    if done.returncode != 0:
        if "invalid job id" not in done.stderr.lower():  # an ended job SLURM forgot is no error
            said = (done.stderr or done.stdout).strip().splitlines()
            log.warning("squeue about SLURM job %s: %s", job, said[0] if said else done.returncode)
        return None
    lines = done.stdout.strip().splitlines()
    if not lines:
        return None
    state, _, rest = lines[0].partition("|")
    user, _, reason = rest.partition("|")  # the reason last: it may hold spaces and commas
    return state.strip(), reason.strip(), user.strip()


@functools.cache  # one look-up per process: a directory service may be slow to answer
def current_user() -> str:
    """This process's user name as SLURM says it (``squeue``'s ``%u``: the passwd entry of
    the uid, not $USER, which ``su`` and ``sudo`` may leave as it was)."""
    if pwd is None:  # not POSIX: no SLURM either
        return ""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry: squeue prints the number
        return str(os.getuid())


def stuck_reason(job: str, reason: str) -> str | None:
    """Why a pending SLURM job will not start by itself, and what to do; None where it will."""
    said = STUCK_REASONS.get(reason)
    return None if said is None else said.format(job=job)


def running_twin(folder: Path, config_hash: str, sweep_dir: Path) -> dict[str, Any] | None:
    """The job of `config_hash` that runs now in a sweep beside `sweep_dir` (same space): the
    details of the process that holds its folder, with ``sweep``; None where none runs."""
    return first_running(
        sweep_twins(sweep_dir.parent, folder.parent.name, config_hash, besides=sweep_dir)
    )


def first_running(candidates: list[Path]) -> dict[str, Any] | None:
    """The details of the process that holds the first of the job folders `candidates` that
    one holds, with its ``sweep``; None where none is held."""
    for candidate in candidates:
        holder = folder_holder(candidate)
        if holder is not None:
            return {**holder, "sweep": str(candidate.parent.parent.resolve())}
    return None


def _link_or_copy(src: Path, dst: Path) -> None:
    """`src` at `dst` in one step: a hard link (no second copy of a large checkpoint) where
    the file system allows, else a copy of our own. The link is never written to or chmod-ed
    (it is the source's file too); a later atomic replace of either file breaks it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:  # our own copy: durable before it is named
                os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
