"""``hydra/launcher=slurm`` with ``jobs_per_task``: K jobs of a sweep in one SLURM array task.

One NB201 job at the paper's settings keeps a large GPU busy a fraction of the time (its step
is bound by the host that issues it), so K jobs side by side on one GPU train K times as many
images per GPU-hour, nearly. Sites with GPU sharding (SLURM's ``shard`` GRES) or MPS GRES can
pack jobs themselves; this launcher does it anywhere: with ``jobs_per_task=K`` (> 1) the sweep's
jobs, in launch order, go K at a time into one array task, which asks for the resources of
one (``gpus_per_node`` and the rest, so raise ``cpus_per_task`` and ``mem_gb`` with K) and
runs its K jobs as K processes at once. Each process runs its job exactly as an unpacked task
would (hydra-submitit-launcher's own job function, in a fresh interpreter), and the task
returns the K results in order, so the sweep's summary and ``sweep.json`` do not tell the
two apart. Where the task sees several GPUs (``CUDA_VISIBLE_DEVICES``), its jobs take them in
turn. With ``mps=true`` a task of several jobs runs them under a CUDA MPS daemon of its own
(:func:`private_mps`), so that their kernels overlap instead of taking turns.

Signals: SLURM's warning before a time limit (USR2) is answered by the task's own process,
which requeues the task (the jobs then resume from their checkpoints, completed ones are
skipped); its jobs ignore it and end, as interrupted, with the SIGTERM that follows the
requeue or a ``scancel``. A job whose process dies without a result (the OOM killer) is a
failed result of its own; the task's other jobs go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from hydra_plugins.nasheur_ablation.submitit_arrays import map_array_wrapped

log = logging.getLogger(__name__)

# a job's arguments to BaseSubmititLauncher.__call__: (overrides, job_dir_key, job_num,
# job_id, singleton_state), as hydra-submitit-launcher builds them for one array task each
JobArgs = tuple[Any, ...]


@dataclass
class PackedSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.nasheur_ablation.packed_launcher.PackedSlurmLauncher"
    # jobs of the sweep run side by side in one array task (sharing its GPU); 1: one per task
    jobs_per_task: int = 1
    # a packed task runs its jobs under a private CUDA MPS daemon (where it starts)
    mps: bool = False


ConfigStore.instance().store(
    group="hydra/launcher",
    name="nasheur_submitit_slurm",
    node=PackedSlurmQueueConf,
    provider="nasheur",
)


class PackedSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, plus ``jobs_per_task`` (see the module)."""

    def __init__(self, jobs_per_task: int = 1, mps: bool = False, **params: Any) -> None:
        super().__init__(**params)
        self.jobs_per_task = jobs_per_task
        self.mps = mps

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        if self.jobs_per_task < 1:
            raise ValueError(
                f"hydra.launcher.jobs_per_task={self.jobs_per_task}: a task runs at least one job"
            )
        if self.jobs_per_task == 1:
            return super().launch(job_overrides, initial_job_idx)
        # the base launcher submits an array of one task per job: each of its map_array calls
        # is made an array of one task per pack, whose results stand in for the jobs'
        with _packing(self.jobs_per_task, self.mps):
            return super().launch(job_overrides, initial_job_idx)


def _packing(size: int, mps: bool = False):
    """Within the block, each array that submitit submits is one task per `size` jobs
    (:class:`Pack`), and the jobs it hands back stand for the jobs, not the tasks."""

    def packed(original: Any, executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        jobs = list(zip(*iterables, strict=True))
        packs = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        submitted = original(executor, Pack(fn, mps), packs)
        return [
            PackedJob(task, pack, i)
            for task, pack in zip(submitted, packs, strict=True)
            for i in range(len(pack))
        ]

    return map_array_wrapped(packed)


class PackedJob:
    """One job of a packed array task, as the launcher waits for it: ``results()`` gives its
    own result out of the task's list. A task that its cluster ended without a result (the
    ablation sweeper turns that into one failed result for the task) fails each of its jobs
    with that result's error."""

    def __init__(self, task: Any, pack: list[JobArgs], index: int) -> None:
        self.task = task
        self.overrides = list(pack[index][0])
        self.index = index

    def results(self) -> list[JobReturn]:
        got = self.task.results()[0]
        if isinstance(got, JobReturn):  # the task's one failure stands for each of its jobs
            return [
                JobReturn(
                    overrides=self.overrides, status=got.status, _return_value=got._return_value
                )
            ]
        return [got[self.index]]

    def __getattr__(self, name: str) -> Any:  # job_id, state, ... of the array task
        return getattr(self.task, name)


class Pack:
    """The function of a packed array task: runs its jobs, one process each, all at once,
    and returns their results in order. ``checkpoint`` is submitit's requeue hook, as on the
    launcher itself: the task is submitted again with the same jobs."""

    def __init__(self, run_job: Any, mps: bool = False) -> None:
        self.run_job = run_job  # the launcher: run_job(*args) runs one job, returns its result
        self.mps = mps

    def __call__(self, pack: list[JobArgs]) -> list[JobReturn]:
        if not (self.mps and len(pack) > 1):
            return self._run(pack)
        with private_mps():
            return self._run(pack)

    def _run(self, pack: list[JobArgs]) -> list[JobReturn]:
        import cloudpickle  # submitit's own; needed only here, in a packed task

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state
        devices = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        started = []
        for i, args in enumerate(pack):
            receive, send = context.Pipe(duplex=False)
            # by cloudpickle, as submitit sends the launcher: its task function may be
            # `__main__.main`, which a plain pickle names but a fresh interpreter lacks
            job = cloudpickle.dumps((self.run_job, args))
            process = context.Process(target=_run_one, args=(job, send), name=f"nasheur-{args[2]}")
            with _environment(CUDA_VISIBLE_DEVICES=devices[i % len(devices)] if devices else None):
                process.start()
            send.close()  # the child's end: EOF here once the child is gone
            started.append((process, receive, args))
        results = []
        for process, receive, args in started:
            try:
                got = pickle.loads(receive.recv_bytes())
            except EOFError:  # the process died before it sent anything
                got = None
            process.join()
            if got is None:
                got = _failed(
                    args,
                    RuntimeError(
                        f"the process of job #{args[2]} ended without a result (exit code "
                        f"{process.exitcode}); its metrics.json says how far it got"
                    ),
                )
            results.append(got)
        return results

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _failed(args: JobArgs, error: BaseException) -> JobReturn:
    return JobReturn(overrides=list(args[0]), status=JobStatus.FAILED, _return_value=error)


def _run_one(job: bytes, send: Any) -> None:
    """One job of a pack, in its own process; its result goes back through `send`."""
    usr2 = getattr(signal, "SIGUSR2", None)
    if usr2 is not None:  # SLURM's warning: the task's process requeues, the job goes on
        signal.signal(usr2, signal.SIG_IGN)
    import cloudpickle

    run_job, args = pickle.loads(job)
    try:
        result = run_job(*args)
    except BaseException as err:  # SIGTERM's SystemExit too: a result, always
        result = _failed(args, err)
    try:
        payload = cloudpickle.dumps(result)
    except Exception as err:  # a result that does not pickle: said as text
        payload = cloudpickle.dumps(_failed(args, RuntimeError(f"{type(err).__name__}: {err}")))
    send.send_bytes(payload)
    send.close()


@contextmanager
def _environment(**values: str | None):
    """os.environ with `values` set (None: left as it is) for the block: what a process
    started within it inherits."""
    saved = {k: os.environ.get(k) for k, v in values.items() if v is not None}
    for k in saved:
        os.environ[k] = str(values[k])
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextmanager
def private_mps():
    """A CUDA MPS daemon of this task's own for the block (its pipe and log folders under
    TMPDIR, named in the environment that the jobs' processes inherit), so that the kernels of
    its jobs run side by side; stopped when the block ends, however it ends. Where
    ``nvidia-cuda-mps-control`` (``$NASHEUR_MPS_CONTROL``) is missing or the daemon does not
    start, the block runs without, with a warning. ``launch/with_mps.sh`` does the same around
    a shell command."""
    control = shutil.which(os.environ.get("NASHEUR_MPS_CONTROL", "nvidia-cuda-mps-control"))
    if control is None:
        log.warning("mps: no nvidia-cuda-mps-control here; the jobs run without MPS")
        yield
        return
    # TMPDIR as it is now (a SLURM job's own, often), not as tempfile first cached it
    with tempfile.TemporaryDirectory(
        prefix="nasheur-mps.", dir=os.environ.get("TMPDIR") or None
    ) as tmp:
        dirs = {"CUDA_MPS_PIPE_DIRECTORY": f"{tmp}/pipe", "CUDA_MPS_LOG_DIRECTORY": f"{tmp}/log"}
        for d in dirs.values():
            os.makedirs(d)
        with _environment(**dirs):
            started = subprocess.run([control, "-d"], check=False).returncode == 0
        if not started:
            log.warning("mps: the MPS daemon did not start; the jobs run without MPS")
            yield
            return
        try:
            with _environment(**dirs):
                yield
        finally:
            with _environment(**dirs):
                subprocess.run([control], input=b"quit\n", check=False, capture_output=True)
