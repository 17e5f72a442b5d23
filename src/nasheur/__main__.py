"""``python -m nasheur [overrides]``: one super-net job, configured by Hydra.

Thin on purpose: compose, validate (before torch is imported, so a bad command line fails in
about a second), then hand the typed config to :func:`nasheur.job.run_job`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from nasheur.config import (
    ConfigError,
    check_command_line,
    check_groups,
    composed,
    composition_said,
    drop_reserved_name,
    plain,
    raise_composition_errors,
    register_configs,
    register_resolvers,
    runs_root,
    to_config,
    unread_keys,
    validate,
)
from nasheur.fidelity import LEVEL
from nasheur.io import atomic_path
from nasheur.jobguard import CHECKPOINT, LOCK, METRICS, POOL, folder_holder
from nasheur.reuse import TRAINED_IN, reuse_in_single_run

register_configs()
register_resolvers()
log = logging.getLogger("nasheur")


def _choices(hc) -> dict[str, str | None]:
    """The option chosen in each of nasheur's own groups (Hydra's internals left out)."""
    return {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}


# what a job's folder holds before its job has done anything: Hydra's record, the log, the lock
START_FILES = {".hydra", "nasheur.log", LOCK}


def _drop_empty_run_folder(folder: Path, *, new: bool = False) -> None:
    """Remove the folder Hydra made for a job that never started (only its own files in it):
    a rejected command line should leave nothing behind. Not a folder that another job
    claimed (`new`: this command's job made it and claimed it itself), which it holds while
    it loads its data and then looks the same: the refused command only wrote its record
    into it, and the owner's is put back."""
    owned = not new and (
        folder_holder(folder) is not None or (folder / ".hydra" / CLAIMED).is_dir()
    )
    if not folder.is_dir() or {p.name for p in folder.iterdir()} - START_FILES or owned:
        _restore_hydra_record(folder / ".hydra")
        return
    logging.shutdown()  # close the log file before it goes
    named_root = bool(os.environ.get("NASHEUR_RUNS", "").strip())
    root = runs_root().resolve()
    if folder.resolve().parent.parent != root:
        # hydra.run.dir named another place, which the user may have made (`.`, even): only
        # what this command wrote there goes
        for name in START_FILES:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    drop_reserved_name(folder)
    with contextlib.suppress(OSError):  # runs/<space>/ too, if this was its only job
        folder.parent.rmdir()
        if not named_root:  # and the ./runs that Hydra made for it (not a root one named)
            root.rmdir()


CLAIMED = "claimed"  # a copy of Hydra's record of the job that owns the folder


def _read_hydra_record(record: Path | None) -> dict[str, bytes]:
    """Hydra's record (`<record>/*.yaml`) as it is now: a job reads its own before anything
    slow, as a copy of the same job started meanwhile (refused, as the folder is this one's)
    writes its own there first."""
    if record is None or not record.is_dir():
        return {}
    return {f.name: f.read_bytes() for f in record.glob("*.yaml")}


def _write_yaml(folder: Path, files: dict[str, bytes]) -> None:
    """Each of `files` written atomically into `folder`."""
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)


def _keep_hydra_record(record: Path | None, own: dict[str, bytes]) -> None:
    """Write this job's Hydra record (`own`, read as it started) into `.hydra/`, and its copy
    into `.hydra/claimed/`, which Hydra never writes: the record of the job that now owns the
    folder, whatever a refused copy wrote there meanwhile."""
    if record is not None and own:
        for folder in (record, record / CLAIMED):
            _write_yaml(folder, own)


def _restore_hydra_record(record: Path | None) -> bool:
    """Put back the owner's record that Hydra overwrote with a refused job's, if kept."""
    if record is None or not (record / CLAIMED).is_dir():
        return False
    _write_yaml(record, _read_hydra_record(record / CLAIMED))
    return True


def _sweep_only(hc, config) -> None:
    """A single run (no -m) of what only a sweep does: refused, not run here quietly."""
    launcher = hc.runtime.choices.get("hydra/launcher")
    if launcher not in (None, "basic", "local"):
        raise ConfigError(
            f"hydra/launcher={launcher} takes effect in a sweep only; without -m this job would "
            f"run here, not through it. Add -m to {'submit' if launcher == 'slurm' else 'launch'} "
            "it (a sweep of one job)"
        )
    if config.experiment.table is not None:
        chosen = hc.runtime.choices.get("experiment")
        what = (
            f"+experiment={chosen} is a sweep"
            if chosen
            else f"experiment.table={config.experiment.table} marks a job of an experiment's sweep"
        )
        raise ConfigError(
            f"{what}: add -m (without it only one job of it, the baseline, would run)"
        )


def _warn_unread(overrides: list[str], config) -> None:
    """A key set on the command line that nothing reads under this config (dataset.root
    with generated images, say) is said, not dropped in silence: it was likely meant to act."""
    unread = unread_keys(plain(config))
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in unread:
            log.warning("%s is not read: %s", override, unread[key])


# whether Hydra has called the task function: an OSError before it is Hydra's (or the
# sweeper's) making of the output folder, one after it the job's own
_task_started = False


def tolerant_console() -> None:
    """The log lines on stdout too: a path's bytes in another encoding are escaped there, as
    in the log file, not a "Logging error" (a UTF-8 locale other than C.UTF-8 is strict).
    The command calls it, and so does each job, which a launcher (submitit, a packed task)
    may run in a process of its own whose stdout is a file."""
    with contextlib.suppress(AttributeError, ValueError):  # no stdout (>&-), or not a text file
        if sys.stdout.errors == "strict":
            sys.stdout.reconfigure(errors="backslashreplace")


@hydra.main(version_base="1.3", config_path="pkg://nasheur.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    global _task_started
    _task_started = True
    tolerant_console()
    composed()
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    config = None
    try:
        check_groups(hc.runtime.choices)
        config = to_config(cfg)
        validate(config)
        if hc.mode != RunMode.MULTIRUN:
            _sweep_only(hc, config)
        _warn_unread(list(hc.overrides.task), config)
    except ConfigError as err:
        if hc.mode == RunMode.MULTIRUN:
            if config is None:
                raise
            # the sweep checked every job before launching it: what fails here changed
            # since (a ground truth moved, data not mounted on the node). The job's folder
            # gets a failed record saying so, which the summary and `results show` read
            return _run(hc, config, out, refused=err)
        print(f"nasheur: config error: {err}", file=sys.stderr)
        _drop_empty_run_folder(out)
        raise SystemExit(2) from None
    if hc.mode == RunMode.MULTIRUN:
        return _run(hc, config, out)
    # one job on the command line: bad input found by the job (data, ground truth, device)
    # is said in one line, like a config error, and a folder made only for it goes again
    from nasheur.data import DatasetNotFoundError
    from nasheur.data.cifar10 import BadBatchError
    from nasheur.groundtruth.table import GroundTruthError
    from nasheur.job import RecordWriteError
    from nasheur.jobguard import Terminated
    from nasheur.safe_pickle import UnsafePickleError
    from nasheur.training import CheckpointWriteError, UnreadableCheckpoint

    new = not out.is_dir() or not {p.name for p in out.iterdir()} - START_FILES
    bad_input = (
        ConfigError,
        DatasetNotFoundError,
        BadBatchError,  # a damaged data file: the error names it and says to extract it again
        GroundTruthError,
        UnsafePickleError,
        UnreadableCheckpoint,  # a damaged checkpoint: the error says to delete it
    )
    taken = None
    try:
        if hc.sweeper.get("reuse", True):
            # what the sweeps completed: their copy of this job, or its super-net to evaluate
            taken = reuse_in_single_run(out, plain(config), runs_root() / "sweeps")
        return _run(hc, config, out)
    except bad_input as err:
        print(f"nasheur: input error: {_with_key(err, config)}", file=sys.stderr)
        if new:  # its failed record says what the line above says
            # and what it took from a sweep (a copy, a linked checkpoint) stays in the sweep
            took = (CHECKPOINT, TRAINED_IN) if taken is not None else ()
            for name in (METRICS, POOL, *took):
                (out / name).unlink(missing_ok=True)
        _drop_empty_run_folder(out, new=new)
        raise SystemExit(2) from None
    except RecordWriteError as err:  # a full disk at the end: no record to point at
        print(f"nasheur: failed: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except (FloatingPointError, CheckpointWriteError) as err:  # diverged; a full disk
        record = getattr(err, "unrecorded", None) or f"record: {out / METRICS}"
        print(f"nasheur: failed: {err} ({record})", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"nasheur: interrupted; the same command {_resumes(out)}", file=sys.stderr)
        raise SystemExit(130) from None
    except Terminated as err:
        print(
            f"nasheur: stopped by {signal.Signals(err.signum).name}; the same command "
            f"{_resumes(out)}",
            file=sys.stderr,
        )
        raise


def _with_key(err: Exception, config: Any) -> str:
    """A bad input's line; a missing CIFAR-10 also names the key its folder came from (and
    the variable that set it, where one did: a stale $NASHEUR_DATA is easy to miss)."""
    from nasheur.data import DatasetNotFoundError

    root = config.dataset.root
    if not isinstance(err, DatasetNotFoundError) or root is None:
        return str(err)
    from nasheur.config import _env_or

    try:
        came = " (from $NASHEUR_DATA)" if _env_or("NASHEUR_DATA", "") == root else ""
    except ValueError:  # a $NASHEUR_DATA that nasheur refuses did not name this root
        came = ""
    return f"dataset.root={root}{came}: {err}"


def _resumes(out: Path) -> str:
    """What rerunning a stopped job does: before its first epoch ended there is no checkpoint
    to resume from, and saying so would send a user looking for one."""
    if (out / CHECKPOINT).is_file():
        return f"resumes from the last checkpoint in {out}"
    return f"starts it again in {out} (it stopped before its first checkpoint)"


def _run(hc, config, out: Path, refused: Exception | None = None) -> float | None:
    # Hydra has written this job's config into the folder's `.hydra/` already: if the folder
    # holds another config's job, which is refused, its own record is put back
    hydra_record = None if hc.output_subdir is None else out / hc.output_subdir
    own = _read_hydra_record(hydra_record)

    from nasheur.job import run_job  # imports torch
    from nasheur.training import CheckpointMismatch

    try:
        record = run_job(
            config,
            output_dir=out,
            choices=_choices(hc),
            on_claimed=lambda: _keep_hydra_record(hydra_record, own),
            refused=refused,
        )
    except CheckpointMismatch as err:
        if _restore_hydra_record(hydra_record):
            log.debug("%s: put back the record of the folder's own job", hydra_record)
        if hc.mode == RunMode.MULTIRUN:
            raise
        print(f"nasheur: refused: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    return record["metrics"]["sparse_kendall_tau"]


MULTIRUN_FLAGS = ("-m", "--multirun")


def flags_first(argv: list[str]) -> list[str]:
    """`argv` with ``-m``/``--multirun`` moved before the overrides: Hydra's parser takes its
    overrides as one run of positional arguments, so ``a=1 -m b=2`` would stop at ``b=2`` with
    argparse's bare "unrecognized arguments". The flag takes no value, so moving it changes
    nothing else."""
    flags = [a for a in argv[1:] if a in MULTIRUN_FLAGS]
    return argv[:1] + flags + [a for a in argv[1:] if a not in MULTIRUN_FLAGS]


def levels_as_sweeps(args: list[str]) -> list[str]:
    """`args` with each single level of a low-fidelity key (``fidelity.channels=base/2``)
    written as a sweep of that one value (``fidelity.channels=choice(base/2)``) where `args`
    ask for a multirun: the sweeper resolves levels against each space's baseline, but Hydra
    checks a plain value's type (a number) before the sweeper sees it. A single run has no
    sweeper to resolve a level: refused, with what to write instead (ConfigError)."""
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    out = []
    for arg in args:
        name, eq, value = arg.partition("=")
        level = value.strip().strip("'\"")
        field = name.removeprefix("fidelity.")
        if eq and field != name and "." not in field and LEVEL.fullmatch(level):
            if not multirun:
                raise ConfigError(
                    f"{arg}: a level of the space's baseline (fidelity.baseline.{field}) is "
                    "resolved by a sweep, not by a single run: add -m to run it as a sweep of "
                    f"one job, or give {name} a value"
                )
            arg = f"{name}=choice({level})"
        out.append(arg)
    return out


def cli() -> None:
    """The command (``python -m nasheur``, the ``nasheur`` script): :func:`main` with the
    multirun flag accepted anywhere among the overrides, and a single level of a fidelity key
    in a multirun taken as a sweep of it (:func:`levels_as_sweeps`)."""
    sys.argv = flags_first(sys.argv)
    tolerant_console()
    try:
        sys.argv = sys.argv[:1] + levels_as_sweeps(sys.argv[1:])
        check_command_line(sys.argv[1:])
    except ConfigError as err:
        print(f"nasheur: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    ours = raise_composition_errors()
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:  # raised while composing
        if not ours:
            raise
        print(f"nasheur: config error: {composition_said(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:
        # Hydra opens the job's log file before the job starts; logging reports a file it
        # cannot open (another user's nasheur.log, a read-only runs folder) as a ValueError
        cause = err.__cause__
        if _task_started or not isinstance(cause, OSError):
            raise
        print(
            f"nasheur: cannot open the job's log file {cause.filename}: "
            f"{cause.strerror or cause} (runs go under $NASHEUR_RUNS, default runs/; "
            "hydra.run.dir= names another folder)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    except OSError as err:
        if _task_started:
            raise
        # a write (Hydra's record on a full disk) names no file
        what = (
            f"make the output folder {err.filename}" if err.filename else "write the output folder"
        )
        print(
            f"nasheur: config error: cannot {what}: "
            f"{err.strerror or err} (runs go under $NASHEUR_RUNS, default runs/; "
            "hydra.run.dir= or hydra.sweep.dir= names another folder)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    finally:
        composed()


if __name__ == "__main__":
    cli()
