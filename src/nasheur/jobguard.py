"""What guards a running job: its hold on its folder, and SIGTERM ending it as interrupted.

**The folder lock.** A job holds an exclusive ``flock`` on ``<folder>/job.lock`` while it
runs, so that a second copy of it (the same sweep launched twice, a job requeued while another
launch's copy runs) refuses at once instead of training the same folder twice. ``flock`` is
kept by the open file description, so other opens and closes of the file in the same process
do not drop it (unlike POSIX ``lockf``); NFS emulates it with byte-range locks, so it holds
across nodes too. A lock held by a process that died is released by the kernel (no stale
locks); the file stays, with the details of the job that holds (or last held) it: host, pid,
SLURM job, start time, and its progress (the epoch it finished last, or how far its evaluation
got), which ``results show`` and a refused second copy print. Where the file system refuses
locks, the job warns and runs unlocked.
Nothing here imports torch: the sweeper asks :func:`folder_holder` before it launches a job.

**SIGTERM.** ``scancel`` (SIGTERM, then SIGKILL after SLURM's KillWait) and a plain ``kill``
end a job within :func:`stop_on_sigterm` at once with :class:`Terminated`, a ``SystemExit``
with status 128 + 15, so that the job records ``interrupted`` (it resumes when run again).
submitit installs a handler that ignores SIGTERM, because requeueing a job on a preemption or
a time-out (its ``USR2`` handler runs ``scontrol requeue``) makes SLURM send the job SIGTERM:
once that handler has started, SIGTERM is left to submitit's handler, and the job ends the way
submitit ends it (``SystemExit: -1``), requeued.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no locks, with a warning
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("nasheur")

LOCK = "job.lock"
# a lock file's mode before the umask: each job and launch opens it to write (its lock, its
# details), so a runs folder shared by a group (umask 002) lets each member take it over
LOCK_MODE = 0o666
# the job folder's other files, named once for the job, the sweeper and the tables
METRICS, POOL, CHECKPOINT = "metrics.json", "pool.json", "checkpoint.pt"
JOB_FILES = (METRICS, POOL, CHECKPOINT)  # what a job writes (atomically) in its folder
# the lock is also taken, shared and for an instant, by a sweep asking whether a job runs: a
# job that finds it taken tries again for about this long before it refuses
RETRIES = 10
RETRY_S = 0.05
# a file system that does not lock (some network file systems, or locking turned off there)
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES}


class FolderLocked(RuntimeError):
    """A running job holds the folder: it is refused before anything is written there."""

    def __init__(self, folder: str | Path, holder: dict[str, Any] | None = None) -> None:
        self.folder = str(folder)
        self.holder = dict(holder or {})
        super().__init__(
            f"{self.folder} is in use by a running job ({describe_holder(self.holder)}); left "
            "it alone. Wait for that job to end (or stop it), then run the same command again"
        )

    def __reduce__(self):  # pickled as it was built (a job's result travels through submitit)
        return (type(self), (self.folder, self.holder))


def holder_details() -> dict[str, Any]:
    """What the lock file records about this process."""
    details: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    for key, var in (
        ("slurm_job_id", "SLURM_JOB_ID"),
        ("slurm_array_job_id", "SLURM_ARRAY_JOB_ID"),
        ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"),
    ):
        if os.environ.get(var):
            details[key] = os.environ[var]
    details["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return details


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on node7, SLURM job 456_2, since 2026-01-02T03:04:05+00:00``, and the job's
    progress where it recorded some (:func:`describe_progress`)."""
    if not holder:
        return "no details recorded yet"
    said = _describe_process(holder)
    progress = describe_progress(holder.get(PROGRESS))
    return f"{said}; {progress}" if progress else said


def _describe_process(holder: dict[str, Any]) -> str:
    parts = []
    if holder.get("pid") is not None:
        parts.append(
            f"pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else "")
        )
    if holder.get("slurm_array_job_id") and holder.get("slurm_array_task_id") is not None:
        parts.append(f"SLURM job {holder['slurm_array_job_id']}_{holder['slurm_array_task_id']}")
    elif holder.get("slurm_job_id"):
        parts.append(f"SLURM job {holder['slurm_job_id']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    return ", ".join(parts) or "no details recorded"


PROGRESS = "progress"  # the key of a job's progress in its lock file's details


def describe_progress(progress: Any, *, left: bool = True) -> str:
    """``epoch 412/1000 done at 2026-01-02T09:10:11+00:00, about 5:12:00 of training left``
    or ``trained; evaluated 150/200 architectures at ..., about 0:00:05 of evaluation left``
    (the time left only with `left`: not for a job whose process is gone); "" where nothing
    (readable) is recorded."""
    if not isinstance(progress, dict):
        return ""
    at = f" at {progress['at']}" if isinstance(progress.get("at"), str) else ""
    try:
        if "evaluated" in progress:
            done, of = int(progress["evaluated"]), int(progress["of"])
            said, stage = f"trained; evaluated {done}/{of} architectures{at}", "evaluation"
        else:
            said = f"epoch {int(progress['epoch'])}/{int(progress['epochs'])} done{at}"
            if "checkpoint" in progress:  # run.checkpoint_every_s: a resume starts there
                saved = int(progress["checkpoint"])
                said += f" (checkpoint: epoch {saved})" if saved else " (no checkpoint yet)"
            stage = "training"
        eta = progress.get("eta_s")
        if left and isinstance(eta, (int, float)) and eta > 0:
            said += f", about {timedelta(seconds=round(eta))} of {stage} left"
        return said
    except (KeyError, TypeError, ValueError, OverflowError):  # a file from another version
        return ""


def _read_details(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8").strip()
        # the first JSON value: a read between a rewrite and its truncation (write_details)
        # finds the new details followed by the old ones' tail
        data = json.JSONDecoder().raw_decode(text)[0] if text else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_details(fd: int, details: dict[str, Any]) -> None:
    """Replace the details recorded in the lock file open as `fd` (one this process holds):
    written over the old ones, then cut to length, so that a reader meanwhile never finds the
    file empty (it reads the first JSON value)."""
    data = (json.dumps(details) + "\n").encode("utf-8") if details else b""
    if data:
        os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


class Holding(dict):
    """The details a job wrote in the lock file it holds, and :meth:`note` to add its progress
    there as it goes (for ``results show``, and the message of a second copy refused)."""

    def __init__(self, fd: int, details: dict[str, Any]) -> None:
        super().__init__(details)
        self.fd = fd

    def note(self, **progress: Any) -> None:
        """Record the job's progress (:func:`describe_progress`), stamped with the time now.
        Only for people to read: a failed write is logged at debug level and the job goes on."""
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.record(**{PROGRESS: {**progress, "at": at}})

    def record(self, **details: Any) -> None:
        """Add `details` to those in the lock file (a failed write is logged at debug level:
        they are for others to read, and the job goes on)."""
        self.update(details)
        try:
            write_details(self.fd, dict(self))
        except OSError as err:
            log.debug("could not record %s in the job's lock file (%s)", ", ".join(details), err)


def recorded_details(path: str | Path) -> dict[str, Any]:
    """The details last written in the lock file `path`, whether a process holds it now or
    held it last (``{}`` where there are none: no such file, an empty or unreadable one)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _read_details(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int, operation: int) -> bool:
    """Take the lock without blocking: True, or False where another holds it. Raises OSError
    where the file system refuses locks (errno in _UNSUPPORTED) or on other errors."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in _HELD:
            return False
        raise
    return True


@contextlib.contextmanager
def hold_folder(
    folder: str | Path,
    *,
    refused: type[FolderLocked] = FolderLocked,
    lock: str = LOCK,
    not_ours: tuple[type[BaseException], ...] = (),
) -> Iterator[Holding | None]:
    """Hold `folder` for a job: an exclusive lock on its ``job.lock`` (or the file `lock`),
    with this process's details written in it, until the context ends; yields them as a
    :class:`Holding`. Raises `refused` at once (after a few tries within a second) where
    another process holds it; where the file system cannot lock, warns and yields None.
    Where the block raises one of `not_ours` (the folder is another job's), the details found
    there are put back: the last progress of that job stays on record."""
    path = Path(folder) / lock
    if fcntl is None:
        log.warning("%s: no file locks here; a second copy of this job would not be stopped", path)
        yield None
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    try:
        try:
            locked = _lock_exclusive(fd)
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                raise
            log.warning(
                "%s: the file system refuses locks (%s); running without one, so a second copy "
                "of this job would not be stopped",
                path,
                os.strerror(err.errno or 0),
            )
            locked = None
        if locked is False:
            raise refused(folder, _read_details(fd))
        if locked is None:
            yield None
            return
        found = _read_details(fd)
        details = Holding(fd, holder_details())
        try:
            write_details(fd, details)
        except OSError as err:  # the lock holds all the same
            log.warning("%s: could not record this job's details (%s)", path, err)
        try:
            yield details
        except not_ours:
            with contextlib.suppress(OSError):
                write_details(fd, found)
            raise
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_exclusive(fd: int) -> bool:
    """The exclusive lock, tried a few times: a sweep's look (a shared lock) lasts an instant."""
    for attempt in range(RETRIES):
        if _try_lock(fd, fcntl.LOCK_EX):
            return True
        if attempt + 1 < RETRIES:
            time.sleep(RETRY_S)
    return False


def folder_holder(folder: str | Path) -> dict[str, Any] | None:
    """The details of the running job that holds `folder` (``{}`` if it recorded none yet),
    or None where no job holds it (no lock file, a free lock, or no locks on this file
    system). It asks with a shared lock, taken and dropped at once."""
    return lock_holder(Path(folder) / LOCK)


def lock_holder(path: str | Path) -> dict[str, Any] | None:
    """The details recorded in the lock file `path` by the process that holds it, or None
    where none does (no such file, a free lock, no locks on this file system)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            free = _try_lock(fd, fcntl.LOCK_SH)
        except OSError:
            return None
        if free:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_details(fd)
    finally:
        os.close(fd)


def try_hold(
    path: str | Path, details: dict[str, Any], *, before: dict[str, Any] | None = None
) -> tuple[int | None, dict[str, Any] | None]:
    """Take the lock file `path` (created if missing) without waiting beyond a look's instant:
    ``(fd, None)`` where this process holds it now, with `details` and this process's written
    in it (closing `fd` releases it), and `before` (where given) updated with the details its
    last holder wrote; ``(None, the holder's details)`` where another process holds it
    (``{}`` if it wrote none yet); ``(None, None)`` where it cannot be taken here (no locks on
    this file system, an unwritable folder)."""
    if fcntl is None:
        return None, None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except OSError:
        return None, None
    try:
        if not _lock_exclusive(fd):
            holder = _read_details(fd)
            os.close(fd)
            return None, holder
        if before is not None:
            before.update(_read_details(fd))
        write_details(fd, {**holder_details(), **details})
    except OSError:
        os.close(fd)
        return None, None
    return fd, None


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) for the context, waiting for it; where
    the file system refuses locks, a warning and no lock. For short read-modify-write steps,
    such as the merge of a sweep's ``sweep.json`` by launches that run side by side."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                raise
            log.warning("%s: the file system refuses locks (%s)", path, os.strerror(err.errno or 0))
            locked = False
        try:
            yield
        finally:
            if locked:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class NoResult(RuntimeError):
    """A job ended without a result from outside: its cluster (scancel, a lost node) or the
    kernel (the OOM killer) ended its process. Its metrics.json, if any, is from before.

    Defined here, not in the sweeper's plugin package: Hydra's scan of ``hydra_plugins``
    executes each plugin module again where it is installed as plain files, which would make a
    second class of the same name, and ``isinstance`` checks across the two would fail."""


# ---------------------------------------------------------------------------------- SIGTERM


class Terminated(SystemExit):
    """SIGTERM ended the job (``scancel``, ``kill``, a packed task's requeue), or SIGHUP: exit
    status 128 + the signal's number; it resumes when the same command runs again."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.signum == signal.SIGHUP:
            return f"{name} (the terminal or session ended; the same command resumes it)"
        # a task of several packed jobs hands its requeue to each job as a SIGTERM
        return (
            f"{name} (stopped from outside: scancel, kill, or the requeue of a SLURM task of "
            "several jobs; the same command resumes it, as does a requeued task)"
        )

    def __reduce__(self):
        return (type(self), (self.signum,))


def preemption_signal() -> signal.Signals | None:
    """The signal on which submitit requeues a job (``$SUBMITIT_PREEMPT_SIGNAL``, USR2)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", None)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity (a SLURM task's), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def _say_from_handler(msg: str, *args: Any) -> None:
    """A warning from a signal handler: logged, unless the signal came while a log record
    was being written (a handler's lock held by this thread), whose stream cannot be entered
    again: then written to stderr at once, past every Python buffer."""
    handlers, logger = [], log
    while logger is not None:
        handlers += logger.handlers
        logger = logger.parent if logger.propagate else None
    if any(getattr(getattr(h, "lock", None), "_is_owned", lambda: False)() for h in handlers):
        os.write(2, f"{msg % args}\n".encode(errors="replace"))
    else:
        log.warning(msg, *args)


@contextlib.contextmanager
def stop_on_sigterm(
    what: str = "the job; metrics.json records it as interrupted and the same command resumes "
    "it from its last checkpoint",
) -> Iterator[None]:
    """Within the context, SIGTERM raises :class:`Terminated` in the main thread (once; a
    repeated SIGTERM while the job ends is logged), after logging ``SIGTERM: stopping <what>``.
    So does SIGHUP (a terminal or SSH session that ends under a foreground job), unless it is
    ignored (``nohup``), which it stays. If submitit's requeue handler (on
    :func:`preemption_signal`) has started, SIGTERM goes to the previous handler instead. The
    previous handlers come back when the context ends. Outside the main thread, or where the
    SIGTERM handler was not set from Python, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # set outside Python: it cannot be put back
        yield
        return
    usr = preemption_signal()
    previous_usr = signal.getsignal(usr) if usr is not None else None
    wrap_usr = callable(previous_usr) and usr != signal.SIGTERM
    state = {"requeueing": False, "stopping": False}

    def on_sigterm(signum, frame):
        if state["requeueing"]:  # SLURM ends a job that submitit just requeued: its handler
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:  # the default's: the process ends, as without us
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        name = signal.Signals(signum).name
        if state["stopping"]:
            _say_from_handler("%s again: already stopping", name)
            return
        state["stopping"] = True
        _say_from_handler("%s: stopping %s", name, what)
        raise Terminated(signum)

    def on_preemption(signum, frame):
        state["requeueing"] = True
        try:
            previous_usr(signum, frame)  # requeues, then exits (SystemExit)
        except SystemExit:
            raise
        except BaseException:  # it did not requeue (submitit's last time-out): SIGTERM stops
            state["requeueing"] = False
            raise

    hup = getattr(signal, "SIGHUP", None)  # not on Windows
    previous_hup = signal.getsignal(hup) if hup is not None else None
    wrap_hup = previous_hup is signal.SIG_DFL  # default: the process dies without a record
    signal.signal(signal.SIGTERM, on_sigterm)
    if wrap_usr:
        signal.signal(usr, on_preemption)
    if wrap_hup:
        signal.signal(hup, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if wrap_usr:
            signal.signal(usr, previous_usr)
        if wrap_hup:
            signal.signal(hup, previous_hup)
