"""`hydra.launcher.jobs_per_task`: several jobs of a sweep in one SLURM array task, each in a
process of its own (hydra_plugins/nasheur_ablation/packed_launcher.py). Here without SLURM:
the task's function on its own, and the packing of submitit's arrays on its in-process
executor; tests/test_slurm.py runs packed sweeps on a cluster."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.nasheur_ablation.packed_launcher import (
    Pack,
    PackedJob,
    _packing,
    cpu_share,
    run_in_processes,
)
from nasheur.jobguard import NoResult
from tests.test_with_mps import fake_control

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def job_args(n: int) -> list[tuple]:
    """What hydra-submitit-launcher hands each job: overrides, dir key, number, id, state."""
    return [([f"seed={i}"], "hydra.sweep.dir", i, f"job_id_for_{i}", {}) for i in range(n)]


def started(delay: float = 0.0):
    """A job function defined here, inside a test (plain pickle cannot send it; the task's
    own is `__main__.main`): it returns its process, its GPUs and its start and end."""

    def run_job(overrides, _key, num, _id, _state):
        begin = time.monotonic()
        time.sleep(delay)
        value = (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), begin, time.monotonic())
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)

    return run_job


def test_a_pack_runs_its_jobs_at_once_in_processes_of_their_own(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    results = Pack(started(delay=1.0))(job_args(3))
    assert [r.overrides for r in results] == [["seed=0"], ["seed=1"], ["seed=2"]]
    assert all(r.status is JobStatus.COMPLETED for r in results)
    pids = [r.return_value[0] for r in results]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert [r.return_value[1] for r in results] == ["3", "5", "3"]  # the task's GPUs in turn
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"  # the task's own is left as it was
    # side by side: each job started before any other had ended (each sleeps 1 s)
    assert max(r.return_value[2] for r in results) < min(r.return_value[3] for r in results)


def threads(overrides, _key, num, _id, _state):
    import torch

    value = (os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


def test_jobs_side_by_side_share_the_cpus_unless_the_user_set_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    # 8 CPUs: 3 jobs at once get 2 threads each; so does one job left to a launch of 3 at
    # once (a sweep run again for its last job): the CPU's sums depend on the threads
    shared = run_in_processes(threads, job_args(3), at_once=3)
    assert [r.return_value[0] for r in shared] == ["2"] * 3
    assert [r.return_value[0] for r in run_in_processes(threads, job_args(1), at_once=3)] == ["2"]
    assert [r.return_value[0] for r in run_in_processes(threads, job_args(1), at_once=1)] == ["8"]
    assert "OMP_NUM_THREADS" not in os.environ  # this process's own left as it was
    # 2 CPUs, 2 jobs: one thread each, and torch's operators take one
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    shared = run_in_processes(threads, job_args(2), at_once=2)
    assert [r.return_value for r in shared] == [("1", 1)] * 2
    assert cpu_share(4) == "1"  # never none
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice holds
    assert cpu_share(2) is None
    shared = run_in_processes(threads, job_args(2), at_once=2)
    assert [r.return_value[0] for r in shared] == ["3"] * 2


def test_without_gpus_a_pack_sets_none(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (result,) = Pack(started())(job_args(1))
    assert result.return_value[1] is None


def dies_or_fails(overrides, _key, num, _id, _state):
    if num == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer: nothing sent back
    if num == 1:
        raise ValueError("bad job")
    if num == 2:
        raise SystemExit(143)  # as a job that SIGTERM ended
    os.kill(os.getpid(), signal.SIGUSR2)  # SLURM's warning: the task's process answers it
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value="done")


def test_each_job_of_a_pack_ends_on_its_own():
    results = Pack(dies_or_fails)(job_args(4))
    assert [r.status for r in results] == [JobStatus.FAILED] * 3 + [JobStatus.COMPLETED]
    assert [r.overrides for r in results] == [[f"seed={i}"] for i in range(4)]
    died, raised, exited, done = (r._return_value for r in results)
    # no result, so no record of its end: the sweep says "no record", not "failed"
    assert isinstance(died, NoResult)
    assert "job #0 ended without a result (killed by SIGKILL, the out-of-memory" in str(died)
    assert isinstance(raised, ValueError) and str(raised) == "bad job"
    assert isinstance(exited, SystemExit) and exited.code == 143
    assert done == "done"


def warned(overrides, _key, num, _id, _state):
    os.kill(os.getpid(), signal.SIGUSR1)  # SLURM's warning, where submitit was told USR1
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value="done")


def test_a_packed_job_goes_on_through_the_warning_submitit_was_told(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    (result,) = Pack(warned)(job_args(1))
    assert result.status is JobStatus.COMPLETED and result._return_value == "done"


def test_a_packed_job_gives_its_own_result_or_its_task_failure():
    pack = job_args(2)

    class Task:
        job_id = "7_0"

        def __init__(self, value):
            self.value = value

        def results(self):
            return [self.value]

    ok = [JobReturn(overrides=["a"], status=JobStatus.COMPLETED), JobReturn(overrides=["b"])]
    assert [PackedJob(Task(ok), pack, i).results()[0] for i in (0, 1)] == ok
    # the sweeper turns a task its cluster ended into one failed result: each job gets it
    lost = JobReturn(overrides=None, status=JobStatus.FAILED, _return_value=RuntimeError("x"))
    got = [PackedJob(Task(lost), pack, i).results()[0] for i in (0, 1)]
    assert [g.overrides for g in got] == [["seed=0"], ["seed=1"]]
    assert all(g.status is JobStatus.FAILED and g._return_value is lost._return_value for g in got)
    assert PackedJob(Task(ok), pack, 1).job_id == "7_0"  # the rest is the task's


def test_packing_makes_an_array_of_one_task_per_pack(tmp_path):
    import submitit

    executor = submitit.AutoExecutor(folder=tmp_path, cluster="debug")  # runs in this process
    own = submitit.AutoExecutor.__dict__.get("map_array")
    with _packing(2):
        jobs = executor.map_array(started(), *zip(*job_args(5), strict=True))
    assert submitit.AutoExecutor.__dict__.get("map_array") is own  # put back
    assert len(jobs) == 5 and len({id(j.task) for j in jobs}) == 3  # 2 + 2 + 1
    results = [j.results()[0] for j in jobs]
    assert [r.overrides for r in results] == [[f"seed={i}"] for i in range(5)]
    assert len({r.return_value[0] for r in results}) == 5  # a process each


def test_the_last_task_of_a_packed_sweep_gives_its_jobs_a_full_tasks_threads(tmp_path, monkeypatch):
    import submitit

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="debug")  # runs in this process
    # 3 jobs at 2 per task: the second task holds one job, which must get the 4 threads of
    # its share, as a job of a full task does (and as it would if a relaunch ran it alone):
    # the CPU's sums depend on the threads
    with _packing(2):
        jobs = executor.map_array(threads, *zip(*job_args(3), strict=True))
    assert [j.results()[0].return_value[0] for j in jobs] == ["4", "4", "4"]
    # a task pickled before it knew its size shares the CPUs among its own jobs
    legacy = Pack(threads)
    del legacy.size
    assert [r.return_value[0] for r in legacy(job_args(1))] == ["8"]


def pipe_dir(overrides, _key, num, _id, _state):
    value = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_packed_task_runs_its_jobs_under_a_private_mps_daemon(
    tmp_path, monkeypatch, caplog, jobs
):
    fake = fake_control(tmp_path)
    monkeypatch.setenv("NASHEUR_MPS_CONTROL", str(fake))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    pipes = [r.return_value for r in Pack(pipe_dir, mps=True)(job_args(jobs))]
    if jobs == 1:  # one job shares its GPU with nobody: no daemon
        assert pipes == [None] and not (tmp_path / "control.log").exists()
        return
    log = (tmp_path / "control.log").read_text().splitlines()
    assert log == [f"start {pipes[0]}", "stdin quit"]  # started for the jobs, then stopped
    assert pipes[0] == pipes[1] and pipes[0].startswith(str(tmp_path))
    assert not Path(pipes[0]).exists()  # private to the task, removed
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_under_mps_the_jobs_name_the_gpus_as_the_server_numbers_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NASHEUR_MPS_CONTROL", str(fake_control(tmp_path)))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    results = Pack(started(), mps=True)(job_args(3))
    assert [r.return_value[1] for r in results] == ["0", "1", "0"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"  # the task's own, as it was


def test_the_next_job_takes_the_least_busy_gpu(tmp_path, monkeypatch):
    # job 0 runs on GPU 3 until job 2 has started; job 1 ends at once on GPU 5, which job 2
    # then takes (by job number it would have joined job 0 on GPU 3 while GPU 5 stood idle)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv("NASHEUR_TEST_FLAG", str(tmp_path / "job2-started"))
    results = run_in_processes(long_first, job_args(3), at_once=2)
    assert [r.return_value for r in results] == ["3", "5", "5"]


def long_first(overrides, _key, num, _id, _state):
    flag = Path(os.environ["NASHEUR_TEST_FLAG"])
    if num == 2:
        flag.touch()
    deadline = time.monotonic() + 60
    while num == 0 and not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


@pytest.mark.parametrize("control", ["missing", "fails"])
def test_without_an_mps_daemon_the_jobs_run_all_the_same(tmp_path, monkeypatch, caplog, control):
    fake = fake_control(tmp_path, starts=False)
    monkeypatch.setenv(
        "NASHEUR_MPS_CONTROL", "no-such-control" if control == "missing" else str(fake)
    )
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    with caplog.at_level("WARNING"):
        results = Pack(pipe_dir, mps=True)(job_args(2))
    assert [r.return_value for r in results] == [None, None]
    assert (
        "no nvidia-cuda-mps-control" if control == "missing" else "did not start"
    ) in caplog.text


def test_jobs_run_at_most_so_many_at_once_the_next_when_one_ends():
    results = run_in_processes(started(delay=0.5), job_args(5), at_once=2)
    assert [r.overrides for r in results] == [[f"seed={i}"] for i in range(5)]
    spans = [r.return_value[2:] for r in results]
    # how many ran at each start: never more than two, and two at times (side by side)
    running = [sum(b <= start < e for b, e in spans) for start, _ in spans]
    assert max(running) == 2


def logs_a_line(overrides, _key, num, _id, _state):
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("nasheur.test")
    logger.addHandler(handler)
    logger.warning("epoch %d", 1)
    value = (seen, os.environ.get("TERM"))
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


def test_the_lines_of_jobs_that_share_an_output_say_whose_they_are():
    results = run_in_processes(logs_a_line, job_args(2), at_once=2)
    assert [r.return_value for r in results] == [
        (["[#0] epoch 1"], "dumb"),  # and no status line redrawn in place
        (["[#1] epoch 1"], "dumb"),
    ]


@pytest.mark.parametrize(
    ("per_task", "at_once", "jobs", "batch", "said"),
    [
        (4, 1, 9, None, "3 SLURM tasks of up to 4 jobs each"),
        (4, 1, 10, None, "3 SLURM tasks of up to 4 jobs each"),
        (4, 1, 10, 5, "4 SLURM tasks of up to 4 jobs each"),  # batches of 5 = 4 + 1, twice
        (2, 1, 1, None, ""),
        (1, 3, 9, None, "3 at a time"),
        (1, 3, 2, None, "2 at a time"),
        (1, 1, 9, None, ""),
    ],
)
def test_the_sweep_says_how_many_jobs_run_side_by_side(per_task, at_once, jobs, batch, said):
    from nasheur.sweep.launchers import side_by_side

    class Launcher:
        jobs_per_task, jobs_at_once = per_task, at_once

    assert side_by_side(Launcher(), jobs, batch) == said


@pytest.mark.parametrize(("per_task", "packed"), [(1, None), (2, 2), (3, 3)])
def test_every_jobs_per_task_above_one_packs_the_jobs(monkeypatch, per_task, packed):
    # module doc: with jobs_per_task=K (> 1) the jobs go K at a time into one array task;
    # with 1, hydra-submitit-launcher's own array of one task per job
    from contextlib import nullcontext

    from hydra_plugins.nasheur_ablation import packed_launcher

    # the class and module globals as they are now (Hydra's scan of hydra_plugins may run the
    # plugin modules again, making new classes of the same names)
    cls = packed_launcher.PackedSlurmLauncher
    used = []
    monkeypatch.setitem(
        cls.launch.__globals__,
        "_packing",
        lambda size, mps=False: used.append(size) or nullcontext(),
    )
    # hydra-submitit-launcher's own launch, stubbed: no executor, nothing submitted
    monkeypatch.setattr(cls.__bases__[0], "launch", lambda self, jobs, idx: ["launched"])
    launcher = object.__new__(cls)
    launcher.jobs_per_task, launcher.mps = per_task, False
    assert launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], 0) == ["launched"]
    assert used == ([] if packed is None else [packed])


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (-signal.SIGKILL, "killed by SIGKILL, the out-of-memory killer's?"),  # what it sends
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),  # no signal of that number here
        (0, "exit code 0"),
        (3, "exit code 3"),
    ],
)
def test_how_a_jobs_process_ended_is_said_from_its_exit_code(code, said):
    # multiprocessing's exitcode: negative, the signal that killed the process
    from hydra_plugins.nasheur_ablation.packed_launcher import _ended

    assert _ended(code) == said


def exits_or_returns_a_lock(overrides, _key, num, _id, _state):
    import threading

    if num in (0, 1):
        os._exit(3 * num)  # ends itself, nothing sent back (no exception to report)
    # a result that cannot be pickled back to the task
    return JobReturn(
        overrides=overrides, status=JobStatus.COMPLETED, _return_value=threading.Lock()
    )


def test_a_job_that_ends_itself_without_a_result_fails_as_no_record_only_if_killed():
    results = run_in_processes(exits_or_returns_a_lock, job_args(3), at_once=3)
    assert [r.status for r in results] == [JobStatus.FAILED] * 3
    assert [r.overrides for r in results] == [[f"seed={i}"] for i in range(3)]
    exited0, exited3, unpicklable = (r._return_value for r in results)
    # an exit of its own is not the cluster's or the kernel's doing: no NoResult for either
    for num, (error, code) in enumerate([(exited0, 0), (exited3, 3)]):
        assert type(error) is RuntimeError
        assert str(error) == f"the process of job #{num} ended without a result (exit code {code})"
    # the job ran, but its result does not travel: said as text, not lost with the task
    assert type(unpicklable) is RuntimeError and str(unpicklable).startswith("TypeError: ")
    assert "lock" in str(unpicklable)


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_omp_num_threads_is_no_choice_of_the_users(monkeypatch, value):
    # `export OMP_NUM_THREADS=` sets nothing: the jobs get their share all the same
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert cpu_share(2) == "4" and cpu_share(3) == "2" and cpu_share(16) == "1"


def test_nested_wraps_of_map_array_come_off_in_turn():
    # the sweeper's wrap holds for its whole sweep, the packing's for one launch of it: a
    # packing left on after its launch would pack the next launch's packs again
    import submitit

    from nasheur.sweep.launchers import map_array_wrapped

    def outer(original, executor, fn, *iterables):
        return ["outer"]

    def inner(original, executor, fn, *iterables):
        return ["inner", *original(executor, fn, *iterables)]

    before = submitit.AutoExecutor.__dict__.get("map_array")
    with map_array_wrapped(outer):
        with map_array_wrapped(inner):
            assert submitit.AutoExecutor.map_array(None, print, [1]) == ["inner", "outer"]
        assert submitit.AutoExecutor.map_array(None, print, [1]) == ["outer"]
    assert submitit.AutoExecutor.__dict__.get("map_array") is before


def test_the_last_job_killed_without_a_result_is_seen_to_end():
    # the only (so the last started) job of a launch: its end is seen, not waited for forever
    (result,) = run_in_processes(dies_or_fails, job_args(1), at_once=1)
    assert result.status is JobStatus.FAILED and isinstance(result._return_value, NoResult)


def test_the_mps_daemon_is_stopped_however_the_jobs_end(tmp_path, monkeypatch):
    # a task stopped while its jobs run (Ctrl-C, a requeue) stops its daemon all the same
    monkeypatch.setenv("NASHEUR_MPS_CONTROL", str(fake_control(tmp_path)))
    monkeypatch.setenv("TMPDIR", str(tmp_path))

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(Pack.__call__.__globals__, "run_in_processes", stopped)
    with pytest.raises(KeyboardInterrupt):
        Pack(started(), mps=True)(job_args(2))
    log = (tmp_path / "control.log").read_text().splitlines()
    assert len(log) == 2 and log[0].startswith("start ") and log[1] == "stdin quit"


def local_launcher(monkeypatch, tmp_path, *, at_once: int, mps: bool):
    """A LocalParallelLauncher whose processes, daemon and log set-up are stubbed: (the
    launcher, the (jobs, at_once) of each run_in_processes call, the daemons started)."""
    from omegaconf import OmegaConf

    from hydra_plugins.nasheur_ablation.packed_launcher import LocalParallelLauncher

    ran, daemons = [], []

    @contextmanager
    def daemon_here():
        daemons.append(True)
        yield

    glob = LocalParallelLauncher.launch.__globals__
    monkeypatch.setitem(glob, "private_mps", daemon_here)
    monkeypatch.setitem(glob, "configure_log", lambda *args: None)
    monkeypatch.setitem(glob, "run_in_processes", lambda run, js, n: ran.append((js, n)) or [])
    launcher = LocalParallelLauncher(jobs_at_once=at_once, mps=mps)
    launcher.config = OmegaConf.create(
        {"hydra": {"hydra_logging": None, "verbose": False, "sweep": {"dir": str(tmp_path)}}}
    )
    return launcher, ran, daemons


@pytest.mark.parametrize(
    ("at_once", "jobs", "daemon"),
    [(1, 3, False), (2, 1, False), (2, 2, True), (3, 5, True)],
)
def test_a_local_sweep_runs_one_job_at_a_time_if_told_and_shares_only_between_jobs(
    tmp_path, monkeypatch, at_once, jobs, daemon
):
    # jobs_at_once=1 is allowed (at least one); an MPS daemon only where two jobs run at once
    launcher, ran, daemons = local_launcher(monkeypatch, tmp_path, at_once=at_once, mps=True)
    assert launcher.launch([[f"seed={i}"] for i in range(jobs)], 0) == []
    assert [(len(js), n) for js, n in ran] == [(jobs, at_once)] and bool(daemons) is daemon


def stopped_with_its_task(overrides, _key, num, _id, _state):
    # SLURM's SIGTERM (`scancel`, `scontrol requeue`, a preemption by SIGTERM) reaches every
    # process of the step: the task's own, and the job, which ends itself as interrupted
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(0.5)
    raise SystemExit(143)


def test_a_packed_task_stopped_by_sigterm_ends_without_a_result_as_an_unpacked_job_does():
    # submitit's handler leaves SIGTERM be in the task's process; had the task then returned
    # its jobs' interrupted results, submitit would write them as the task's end, and the
    # sweep would stop waiting for a task that SLURM requeued (`scontrol requeue`)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        with pytest.raises(SystemExit) as ended:
            Pack(stopped_with_its_task)(job_args(2))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ended.value.code == 143
