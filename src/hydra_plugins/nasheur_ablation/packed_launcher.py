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
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, open_dict

from nasheur.jobguard import NoResult, preemption_signal, stop_on_sigterm, usable_cpus
from nasheur.sweep.launchers import map_array_wrapped

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # no generic alias among a plugin module's names (tests/test_packaging.py)
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


@dataclass
class LocalParallelConf:
    _target_: str = "hydra_plugins.nasheur_ablation.packed_launcher.LocalParallelLauncher"
    jobs_at_once: int = 2  # jobs of the multirun running at the same time on this machine
    mps: bool = False  # under a CUDA MPS daemon of the sweep's own (where it starts)


# the schemas of conf/hydra/launcher/slurm.yaml and local_parallel.yaml
for _name, _node in (
    ("nasheur_submitit_slurm", PackedSlurmQueueConf),
    ("nasheur_local_parallel", LocalParallelConf),
):
    ConfigStore.instance().store(group="hydra/launcher", name=_name, node=_node, provider="nasheur")


# the first line of every sbatch script's setup (conf/hydra/launcher/slurm.yaml): from SLURM
# 22.05 srun no longer takes the job's --cpus-per-task, and under CPU binding a job would get
# one CPU. Kept however `hydra.launcher.setup` is overridden (a site's `module load` lines
# replace the list), and first, before any `set -u` of theirs
SRUN_CPUS_SETUP = (
    'if [ -n "$SLURM_CPUS_PER_TASK" ]; then export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"; fi'
)


class PackedSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, plus ``jobs_per_task`` (see the module)."""

    # what hydra.launcher takes (the schema's keys): the base launcher takes any key, and
    # submitit would refuse a misspelt one only as the sweep submits, after its checks
    SETTINGS = tuple(f.name for f in fields(PackedSlurmQueueConf) if f.name != "_target_")

    def __init__(self, jobs_per_task: int = 1, mps: bool = False, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.SETTINGS))
        if unknown:  # Python's own words, as for the other plugins (config.unknown_plugin_setting)
            raise TypeError(
                f"{type(self).__name__}.__init__() got an unexpected keyword argument "
                f"'{unknown[0]}'"
            )
        super().__init__(**params)
        setup = [line for line in self.params.get("setup") or [] if line != SRUN_CPUS_SETUP]
        self.params["setup"] = [SRUN_CPUS_SETUP, *setup]
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


class LocalParallelLauncher(Launcher):
    """``hydra/launcher=local_parallel``: the jobs of a multirun on this machine,
    ``jobs_at_once`` at a time, each in a process of its own (so that they share its GPU),
    the next starting when one ends; where the machine has several GPUs
    (``CUDA_VISIBLE_DEVICES``), the jobs take them in turn. Ctrl-C reaches every job; a
    SIGTERM to the sweep is passed on to them: each ends as interrupted, and the same command
    resumes them."""

    def __init__(self, jobs_at_once: int = 2, mps: bool = False) -> None:
        super().__init__()
        self.jobs_at_once = jobs_at_once
        self.mps = mps
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        if self.jobs_at_once < 1:
            raise ValueError(
                f"hydra.launcher.jobs_at_once={self.jobs_at_once}: at least one job runs at once"
            )
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        at_once = min(self.jobs_at_once, len(job_overrides))
        log.info(
            "Launching %d job%s here%s",
            len(job_overrides),
            "" if len(job_overrides) == 1 else "s",
            f", {at_once} at a time" if at_once > 1 else "",
        )
        state = Singleton.get_state()
        jobs = []
        for num, overrides in enumerate(job_overrides, initial_job_idx):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
            jobs.append((list(overrides), "hydra.sweep.dir", num, str(num), state))
        shared = self.mps and min(self.jobs_at_once, len(jobs)) > 1
        with private_mps() if shared else nullcontext():
            return run_in_processes(self, jobs, self.jobs_at_once)

    def __call__(
        self,
        overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[Any, Any],
    ) -> JobReturn:
        """One job, in its own process (:func:`run_in_processes`)."""
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = job_id
            sweep_config.hydra.job.num = job_num
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )


def _packing(size: int, mps: bool = False):
    """Within the block, each array that submitit submits is one task per `size` jobs
    (:class:`Pack`), and the jobs it hands back stand for the jobs, not the tasks."""

    def packed(original: Any, executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        jobs = list(zip(*iterables, strict=True))
        packs = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        submitted = original(executor, Pack(fn, mps, size), packs)
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
    launcher itself: the task is submitted again with the same jobs. Each job's CPU threads
    are its share of `size` jobs (``jobs_per_task``), however many this task holds: the last
    task of a sweep, or one relaunched for a job that did not complete, gives its jobs what a
    full task gives them (the CPU's sums depend on the threads)."""

    def __init__(self, run_job: Any, mps: bool = False, size: int | None = None) -> None:
        self.run_job = run_job  # the launcher: run_job(*args) runs one job, returns its result
        self.mps = mps
        self.size = size  # jobs_per_task; None: the task's own jobs

    def __call__(self, pack: list[JobArgs]) -> list[JobReturn]:
        # A SIGTERM (`scancel`, `scontrol requeue`, a preemption by SIGTERM) reaches the jobs
        # too, and each records itself interrupted; the task then ends without a result, as
        # an unpacked job does, so that the sweep waits for a task that SLURM requeued rather
        # than take its jobs' interrupted results for its end (submitit's requeue on USR2 is
        # left to submitit, as in a job).
        with (
            stop_on_sigterm("the task's jobs, each recorded interrupted"),
            private_mps() if self.mps and len(pack) > 1 else nullcontext(),
        ):
            # a task pickled before `size` existed (requeued across an upgrade) has none
            share = getattr(self, "size", None) or len(pack)
            return run_in_processes(self.run_job, pack, at_once=len(pack), share=share)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def run_in_processes(
    run_job: Any, jobs: list[JobArgs], at_once: int, share: int | None = None
) -> list[JobReturn]:
    """``run_job(*args)`` for each of `jobs`, each in a fresh process of its own, at most
    `at_once` at a time (the next starts when one ends); their results in the order of `jobs`.
    Each job takes the GPU, of those this process sees (``CUDA_VISIBLE_DEVICES``), that runs
    the fewest of them as it starts (the first such in order: job i of the first n takes GPU
    i), and its share of the CPUs among `share` jobs (:func:`cpu_share`; `at_once` unless
    told). A job whose
    process dies without a result fails on its own. If this process is stopped meanwhile
    (Ctrl-C, which reaches the jobs too, or SIGTERM, passed on to them), it waits for the
    running jobs to end, as interrupted, and stops."""
    import cloudpickle  # submitit's own

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state
    devices = visible_gpus()
    # the share of `at_once` jobs, however many this launch has: a job's CPU sums depend on
    # its threads, and a sweep run again for its last job must give what one run through gave
    threads = cpu_share(share or at_once)
    results: list[JobReturn | None] = [None] * len(jobs)
    running: dict[Any, tuple[Any, int, str | None]] = {}  # receiving end -> (process, index, GPU)
    todo = iter(enumerate(jobs))
    starting: tuple[Any, ...] | None = None  # a process being started, not yet in `running`
    try:
        while True:
            while len(running) < at_once and (item := next(todo, None)) is not None:
                i, args = item
                receive, send = context.Pipe(duplex=False)
                # by cloudpickle, as submitit sends the launcher: the task function may be
                # `__main__.main`, which a plain pickle names but a fresh interpreter lacks
                job = cloudpickle.dumps((run_job, args))
                process = context.Process(target=_run_one, args=(job, send), name=f"job-{args[2]}")
                # the least busy GPU: by job number, a long job's GPU would take the next job
                # when a short one's freed another
                busy = Counter(g for _, _, g in running.values())
                gpu = min(devices, key=lambda d: busy[d]) if devices else None
                starting = (receive, send, process, i, gpu)
                with (
                    _environment(CUDA_VISIBLE_DEVICES=gpu, OMP_NUM_THREADS=threads),
                    _warning_held(),
                ):
                    process.start()
                send.close()  # the child's end: EOF here once the child is gone
                running[receive] = (process, i, gpu)
                starting = None
            if not running:
                break
            for receive in multiprocessing.connection.wait(list(running)):
                process, i, _ = running.pop(receive)
                results[i] = _result_of(process, receive, jobs[i])
    except BaseException as stop:
        if starting is not None:  # stopped as a process started: it is stopped as the others
            receive, send, process, i, gpu = starting
            send.close()
            if process.pid is not None:  # it did start
                running[receive] = (process, i, gpu)
        late = list(running)
        if isinstance(stop, KeyboardInterrupt):
            # a terminal's Ctrl-C reaches the jobs too, and each ends itself as interrupted;
            # a SIGINT sent to this process alone does not: jobs still on after a grace are
            # stopped as SIGTERM stops them
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            with suppress(KeyboardInterrupt):  # a second Ctrl-C: stop them now
                while late and (left := deadline - time.monotonic()) > 0:
                    ended = multiprocessing.connection.wait(late, timeout=left)
                    late = [r for r in late if r not in ended]
        for receive in late:
            process = running[receive][0]
            if process.is_alive():
                process.terminate()  # SIGTERM: the job records itself interrupted
        for receive, (process, _, _) in running.items():
            with suppress(EOFError, OSError):  # read it, so that its send can end
                receive.recv_bytes()
            process.join()
        raise
    return [r for r in results if r is not None]


# how long jobs have to end on their own after this process got SIGINT (a Ctrl-C at the
# terminal: they got it too, and end within a step or an evaluation batch)
INTERRUPT_GRACE_S = 15.0


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them ([]: unset)."""
    return [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]


def cpu_share(side_by_side: int) -> str | None:
    """The CPU threads of each of `side_by_side` jobs (``OMP_NUM_THREADS``, which torch's
    operators on the CPU follow): the CPUs this process may use (a SLURM task's, its
    affinity), shared out, at least one each; None (left as it is) where the user set it.
    Each job taking every CPU would oversubscribe them K times over: two short embedded jobs
    side by side on 2 CPUs took 24.6 s with 2 threads each, 6.8 s with 1."""
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return str(max(1, usable_cpus() // max(1, side_by_side)))


def _result_of(process: Any, receive: Any, args: JobArgs) -> JobReturn:
    try:
        got = pickle.loads(receive.recv_bytes())
    except EOFError:  # the process died before it sent anything
        got = None
    except Exception as err:  # checked as it was sent; not to stop the other jobs if not
        process.join()
        return _failed(args, RuntimeError(f"the result of job #{args[2]} cannot be read: {err}"))
    process.join()
    if got is not None:
        return got
    code = process.exitcode
    if code is not None and code < 0:  # killed (the OOM killer): no record of its end
        return _failed(
            args,
            NoResult(
                f"the process of job #{args[2]} ended without a result ({_ended(code)}); its "
                "last checkpoint resumes it"
            ),
        )
    return _failed(  # it ended itself before it could say why (it could not start the job)
        args,
        RuntimeError(f"the process of job #{args[2]} ended without a result ({_ended(code)})"),
    )


def _ended(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", the out-of-memory killer's?" if -code == 9 else "")
    return f"exit code {code}"


def _failed(args: JobArgs, error: BaseException) -> JobReturn:
    return JobReturn(overrides=list(args[0]), status=JobStatus.FAILED, _return_value=error)


def _warning() -> signal.Signals | None:
    """SLURM's warning before a time limit (submitit's signal, $SUBMITIT_PREEMPT_SIGNAL, USR2
    unless told), which the task's process answers and its jobs ignore; None where it is
    SIGTERM, which stops a job as ever, or the platform has no such signal."""
    warning = preemption_signal() or getattr(signal, "SIGUSR2", None)
    return None if warning is None or warning == signal.SIGTERM else warning


@contextmanager
def _warning_held():
    """The warning blocked in this process for the block: a process started within it starts
    with it blocked (the mask survives fork and exec), so that a warning sent to the whole
    task while the job's interpreter starts waits until :func:`_run_one` ignores it, instead
    of killing the job with the signal's default action. One that reached this process
    meanwhile is answered as the block ends."""
    warning = _warning()
    if warning is None or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {warning})
    try:
        # spawn's first start launches multiprocessing's resource tracker, which unblocks
        # SIGINT and SIGTERM in this thread once it has: a warning of INT would then reach the
        # job's interpreter unblocked. The tracker started here, the warning blocked again
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {warning})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_one(job: bytes, send: Any) -> None:
    """One job of :func:`run_in_processes`, in its own process; its result goes back through
    `send`."""
    # SLURM's warning: the task's process requeues, the job goes on. It started blocked
    # (:func:`_warning_held`); one that came meanwhile is dropped as it is unblocked
    warning = _warning()
    if warning is not None:
        signal.signal(warning, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {warning})
    import cloudpickle

    run_job, args = pickle.loads(job)
    # jobs that share a terminal (or a task's output file) write plain log lines, each marked
    # with the job's number as the launcher listed it, and no status line redrawn in place
    os.environ["TERM"] = "dumb"
    _tag_log_records(f"[#{args[2]}] ")
    try:
        result = run_job(*args)
    except BaseException as err:  # SIGTERM's SystemExit too: a result, always
        result = _failed(args, err)
    try:
        payload = cloudpickle.dumps(result)
        # as the launcher will: an exception whose __init__ takes other arguments than its
        # args pickles, but does not load, and would stop the sweep there
        pickle.loads(payload)
    except Exception as err:  # a result that does not pickle or load: said as text
        error = getattr(result, "_return_value", None)
        said = error if isinstance(error, BaseException) else err
        payload = cloudpickle.dumps(_failed(args, RuntimeError(f"{type(said).__name__}: {said}")))
    send.send_bytes(payload)
    send.close()


def _tag_log_records(tag: str) -> None:
    """Every log record of this process starts with `tag`, whatever handlers the job's
    logging set-up (Hydra's, per job) installs later."""
    make = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = f"{tag}{record.msg}"
        return record

    logging.setLogRecordFactory(tagged)


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
        env = {**os.environ, **dirs}
        started = subprocess.run([control, "-d"], env=env, check=False).returncode == 0
        if not started:
            log.warning("mps: the MPS daemon did not start; the jobs run without MPS")
            yield
            return
        # the server numbers the GPUs it was started with from 0: a client naming them as
        # the task does (GPU 2 of 0-3) would find none, and its job would train on the CPU
        visible = visible_gpus()
        renumbered = ",".join(map(str, range(len(visible)))) if visible else None
        try:
            with _environment(**dirs, CUDA_VISIBLE_DEVICES=renumbered):
                yield
        finally:
            subprocess.run([control], input=b"quit\n", env=env, check=False, capture_output=True)
