"""What the sweep knows of its launchers (whether one submits to a scheduler, how it runs
jobs side by side) and how it reaches into submitit's job arrays.

hydra-submitit-launcher submits a sweep with ``submitit.AutoExecutor.map_array`` and waits
for the jobs it returns, all within its ``launch``; the only way to change what it submits or
how it waits is to wrap that method for the duration of the launch (:func:`map_array_wrapped`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus

from nasheur.jobguard import NoResult
from nasheur.sweep.outcomes import first_line

if TYPE_CHECKING:
    # wrap(original map_array, executor, fn, *iterables) -> the jobs the launcher waits for
    Wrapper = Callable[..., list[Any]]


def side_by_side(launcher: Any, jobs: int, batch: int | None = None) -> str:
    """How a launcher that runs several jobs at once runs `jobs` (handed to it `batch` at a
    time): ``2 SLURM tasks of up to 4 jobs each``, ``3 at a time``; "" for one at a time."""
    per_task = getattr(launcher, "jobs_per_task", 1)
    at_once = getattr(launcher, "jobs_at_once", 1)
    if jobs > 1 and per_task > 1:
        batch = batch or jobs  # each batch is packed on its own
        tasks = sum(-(-min(batch, jobs - i) // per_task) for i in range(0, jobs, batch))
        return f"{tasks} SLURM task{'s' if tasks != 1 else ''} of up to {per_task} jobs each"
    # each batch is launched once the one before has ended: no more than a batch at once
    most = min(at_once, batch or jobs, jobs)
    return f"{most} at a time" if most > 1 else ""


def submits(launcher: Any) -> bool:
    """Whether `launcher` hands jobs to a scheduler (submitit's), which runs them whatever
    becomes of this process."""
    # by the module of its classes, not isinstance: Hydra's scan of `hydra_plugins` runs a
    # plugin module again, which makes new classes of the same names
    submitit = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
    return any(c.__module__ == submitit for c in type(launcher).__mro__)


@contextlib.contextmanager
def map_array_wrapped(wrap: Wrapper) -> Iterator[None]:
    """Within the block, ``AutoExecutor.map_array(fn, *iterables)`` is ``wrap(original,
    executor, fn, *iterables)``; blocks nest (the inner wraps the outer's). Without submitit
    installed, nothing changes."""
    try:
        import submitit
    except ImportError:
        yield
        return
    cls = submitit.AutoExecutor
    own = cls.__dict__.get("map_array")
    original = cls.map_array

    def map_array(executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        return wrap(original, executor, fn, *iterables)

    cls.map_array = map_array
    try:
        yield
    finally:
        if own is not None:
            cls.map_array = own
        else:
            del cls.map_array


def uncompleted_errors() -> tuple[type[BaseException], ...]:
    try:
        from submitit.core.utils import UncompletedJobError
    except ImportError:
        return ()
    return (UncompletedJobError,)


def refused_submission(err: BaseException) -> bool:
    """Whether submitit's error is the scheduler refusing a submission (sbatch's own error,
    which submitit raises from the failed command), not a submitted job that ended."""
    import subprocess

    return isinstance(err.__cause__, subprocess.CalledProcessError)


def uncompleted_line(err: BaseException) -> str:
    """``SLURM job 123_4 ended without a result (state: CANCELLED by 0)`` from submitit's
    message (which goes on with the job's whole error stream)."""
    text = str(err)
    job = re.search(r"Job (\S+)", text)
    state = re.search(r"\(state: ([^)]*)\)", text)
    if job is None:
        return first_line(err)
    return f"job {job.group(1)} ended without a result" + (
        f" (state: {state.group(1)})" if state else ""
    )


class _Settled:
    """A submitit job whose results() gives a failed JobReturn, instead of raising, when the
    cluster ended it without a result: the launcher then goes on waiting for the others."""

    def __init__(self, job: Any, overrides: Any) -> None:
        self._job = job
        self._overrides = list(overrides) if overrides is not None else None

    def results(self) -> list[Any]:
        try:
            return self._job.results()
        except uncompleted_errors() as err:
            value = NoResult(uncompleted_line(err))
            return [
                JobReturn(overrides=self._overrides, status=JobStatus.FAILED, _return_value=value)
            ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


@contextlib.contextmanager
def each_job_settled(submitted: Any = None) -> Iterator[None]:
    """hydra-submitit-launcher waits for its jobs in turn, and the first that SLURM ended
    without a result (``scancel``, a lost node) raises submitit's UncompletedJobError out of
    ``launch``, while the array's other jobs still run. Within this context submitit's
    ``map_array`` hands out :class:`_Settled` jobs, so each such job becomes a failed result and
    the launcher waits for all. Each job that SLURM took is also handed, with its SLURM job id,
    to `submitted(overrides, job_id)`, where given."""

    def settled(original: Any, executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        jobs = original(executor, fn, *iterables)
        overrides = list(iterables[0]) if iterables else []
        if len(overrides) != len(jobs):
            overrides = [None] * len(jobs)
        if submitted is not None and getattr(executor, "cluster", None) == "slurm":
            for job, item in zip(jobs, overrides, strict=True):
                for each in _job_overrides(item):
                    submitted(each, str(job.job_id))
        return [_Settled(job, o) for job, o in zip(jobs, overrides, strict=True)]

    with map_array_wrapped(settled):
        yield


def _job_overrides(item: Any) -> list[Sequence[str]]:
    """The overrides of the jobs an array task runs, from its item in ``map_array``: one
    job's overrides, or a packed task's jobs (each ``(overrides, ...)``, packed_launcher)."""
    if not item:
        return []
    if isinstance(item[0], str):
        return [item]
    return [args[0] for args in item if isinstance(args, (tuple, list)) and args]
