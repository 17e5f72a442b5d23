"""Details of the packed and local-parallel launchers (hydra_plugins/nasheur_ablation/
packed_launcher.py) that tests/test_packed_launcher.py leaves open: which jobs a local sweep
hands its processes, when a daemon starts (only with ``mps=true``), the GPUs that jobs see
under a daemon where none was named, the refusal of no job per task, and what a stop of the
launching process does to the jobs still running."""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.nasheur_ablation.packed_launcher import Pack, _result_of, run_in_processes
from tests.test_packed_launcher import job_args, local_launcher, pipe_dir, started
from tests.test_with_mps import fake_control

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_a_local_sweep_numbers_its_jobs_from_the_launchs_first_index(tmp_path, monkeypatch):
    # Hydra's sweepers launch in batches: the second batch's jobs go on from the first's
    # numbers (the job's folder, hydra.job.num and the [#n] of its log lines), each job with
    # the sweep's folder key and Hydra's singleton state, as hydra-submitit-launcher's are
    from hydra.core.singleton import Singleton

    launcher, ran, _ = local_launcher(monkeypatch, tmp_path, at_once=2, mps=False)
    launcher.launch([["seed=5"], ["seed=6"]], 3)
    ((jobs, at_once),) = ran
    assert at_once == 2
    assert [job[:4] for job in jobs] == [
        (["seed=5"], "hydra.sweep.dir", 3, "3"),
        (["seed=6"], "hydra.sweep.dir", 4, "4"),
    ]
    assert all(job[4].keys() == Singleton.get_state().keys() for job in jobs)


def test_a_local_sweep_without_mps_starts_no_daemon_however_many_jobs_share(tmp_path, monkeypatch):
    # mps=false (the default) is the user's choice: jobs side by side take turns on the GPU
    launcher, ran, daemons = local_launcher(monkeypatch, tmp_path, at_once=3, mps=False)
    launcher.launch([[f"seed={i}"] for i in range(5)], 0)
    assert len(ran) == 1 and daemons == []


def test_no_job_at_once_is_refused_by_the_local_launcher_itself(tmp_path, monkeypatch):
    # the launcher's own check, whoever launches it (the sweeper checks before it too)
    launcher, ran, _ = local_launcher(monkeypatch, tmp_path, at_once=0, mps=False)
    with pytest.raises(ValueError, match="jobs_at_once=0: at least one job runs at once"):
        launcher.launch([["seed=0"]], 0)
    assert ran == []


def test_a_pack_without_mps_starts_no_daemon(tmp_path, monkeypatch):
    # the daemon is asked for (mps=true), never implied by a pack of several jobs
    monkeypatch.setenv("NASHEUR_MPS_CONTROL", str(fake_control(tmp_path)))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    results = Pack(pipe_dir, mps=False)(job_args(2))
    assert [r.return_value for r in results] == [None, None]
    assert not (tmp_path / "control.log").exists()


def test_under_mps_jobs_of_a_task_that_names_no_gpus_see_them_all(tmp_path, monkeypatch):
    # CUDA_VISIBLE_DEVICES unset: every GPU is the task's. Renumbering nothing must not set
    # it empty, which would hide every GPU from the jobs (and train them on the CPU)
    monkeypatch.setenv("NASHEUR_MPS_CONTROL", str(fake_control(tmp_path)))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    results = Pack(started(), mps=True)(job_args(2))
    assert [r.return_value[1] for r in results] == [None, None]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_no_job_per_task_is_refused(monkeypatch):
    # jobs_per_task=0 would submit empty tasks (or none): refused, naming the key
    from hydra_plugins.nasheur_ablation import packed_launcher

    cls = packed_launcher.PackedSlurmLauncher
    monkeypatch.setattr(cls.__bases__[0], "launch", lambda self, jobs, idx: ["launched"])
    launcher = object.__new__(cls)
    launcher.jobs_per_task, launcher.mps = 0, False
    with pytest.raises(ValueError, match="jobs_per_task=0: a task runs at least one job"):
        launcher.launch([["seed=0"]], 0)


def ends_soon(overrides, _key, num, _id, _state):
    """Says it started, ends on its own some seconds later and says so (unless stopped
    before)."""
    flags = Path(os.environ["NASHEUR_TEST_FLAG"])
    (flags / "started").touch()
    time.sleep(float(os.environ["NASHEUR_TEST_SLEEP"]))
    (flags / "ended").touch()
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value="done")


class TwoPartError(Exception):
    """Pickles as ``TwoPartError("a and b")``, which does not load: __init__ takes two."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def fails_oddly(overrides, _key, num, _id, _state):
    if num == 0:
        raise TwoPartError("a", "b")
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value="done")


def test_a_job_error_that_pickles_but_does_not_load_fails_that_job_alone():
    first, second = run_in_processes(fails_oddly, job_args(2), at_once=1)
    assert first.status is JobStatus.FAILED
    assert str(first._return_value) == "TwoPartError: a and b"
    assert second.status is JobStatus.COMPLETED


def test_a_result_the_launcher_cannot_load_fails_that_job_alone():
    # the job's process checks that its result loads; one that still does not load in the
    # launcher's (a module only the job's process can import) fails that job, not the sweep
    receive, send = multiprocessing.Pipe(duplex=False)
    send.send_bytes(b"cno_such_module_here\nThing\n.")  # protocol 0: a global, then STOP
    joined = []
    process = SimpleNamespace(join=lambda: joined.append(True), exitcode=0)
    got = _result_of(process, receive, job_args(4)[3])
    assert got.status is JobStatus.FAILED and got.overrides == ["seed=3"] and joined
    said = str(got._return_value)
    assert said.startswith("the result of job #3 cannot be read") and "no_such_module" in said


@pytest.mark.parametrize(
    ("stop", "ends_itself", "runs_for"),
    [
        # a SIGINT to the launching process alone: the job got none, but it is given its
        # grace (15 s) to end as a terminal's Ctrl-C would end it
        (KeyboardInterrupt(), True, 0.5),
        # SIGTERM (SystemExit): passed on at once, the job ends as interrupted (a job that
        # would run long, so that a slow machine's delay cannot pass for its termination)
        (SystemExit(143), False, 20.0),
    ],
    ids=["Ctrl-C", "SIGTERM"],
)
def test_a_stopped_launch_waits_for_or_terminates_its_running_jobs(
    tmp_path, monkeypatch, stop, ends_itself, runs_for
):
    monkeypatch.setenv("NASHEUR_TEST_FLAG", str(tmp_path))
    monkeypatch.setenv("NASHEUR_TEST_SLEEP", str(runs_for))
    wait = multiprocessing.connection.wait
    calls = []

    def stopped_while_waiting(objects, timeout=None):
        # the stop arrives while the launcher waits for its running job, once it runs
        if not calls:
            calls.append(True)
            deadline = time.monotonic() + 30
            while not (tmp_path / "started").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            raise stop
        return wait(objects, timeout)

    monkeypatch.setattr(multiprocessing.connection, "wait", stopped_while_waiting)
    with pytest.raises(type(stop)):
        run_in_processes(ends_soon, job_args(1), at_once=1)
    assert (tmp_path / "started").exists()
    assert (tmp_path / "ended").exists() is ends_itself


class StoppedAtStart(multiprocessing.get_context("spawn").Process):
    """A job's process whose launcher is stopped (SIGTERM) just after starting it, before it
    could list it among its running jobs."""

    started: ClassVar[list] = []

    def start(self):
        super().start()
        StoppedAtStart.started.append(self)
        raise SystemExit(143)


def test_a_launch_stopped_as_it_starts_a_job_stops_that_job_too(tmp_path, monkeypatch):
    # the job would run for 20 s and end on its own; stopped with its launcher, it ends at once
    from hydra_plugins.nasheur_ablation import packed_launcher

    monkeypatch.setenv("NASHEUR_TEST_FLAG", str(tmp_path))
    monkeypatch.setenv("NASHEUR_TEST_SLEEP", "20")
    spawn = multiprocessing.get_context("spawn")
    context = SimpleNamespace(Process=StoppedAtStart, Pipe=spawn.Pipe)
    monkeypatch.setattr(packed_launcher.multiprocessing, "get_context", lambda _: context)
    monkeypatch.setattr(StoppedAtStart, "started", [])
    with pytest.raises(SystemExit):
        run_in_processes(ends_soon, job_args(2), at_once=2)
    (process,) = StoppedAtStart.started  # the second job was never started
    assert not process.is_alive() and process.exitcode != 0
    assert not (tmp_path / "ended").exists()


class WarnedAtStart(multiprocessing.get_context("spawn").Process):
    """A job's process that gets SLURM's warning as soon as it is started."""

    def start(self):
        super().start()
        os.kill(self.pid, signal.SIGUSR2)  # while its interpreter starts


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks here")
def test_slurms_warning_while_a_jobs_interpreter_starts_does_not_kill_the_job(
    tmp_path, monkeypatch
):
    # SLURM's warning (USR2) goes to every process of the task; a job's process that gets it
    # before it could ignore it would die of its default action (a failed job). The process
    # starts with it blocked, and ignores it once it runs
    from hydra_plugins.nasheur_ablation import packed_launcher

    monkeypatch.setenv("NASHEUR_TEST_FLAG", str(tmp_path))
    monkeypatch.setenv("NASHEUR_TEST_SLEEP", "0")
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    spawn = multiprocessing.get_context("spawn")
    context = SimpleNamespace(Process=WarnedAtStart, Pipe=spawn.Pipe)
    monkeypatch.setattr(packed_launcher.multiprocessing, "get_context", lambda _: context)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    (result,) = run_in_processes(ends_soon, job_args(1), at_once=1)
    assert result.status is JobStatus.COMPLETED, result._return_value
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before  # this process's mask


class InterruptedAtStart(multiprocessing.get_context("spawn").Process):
    """A job's process that gets SIGINT, the warning named here, as soon as it is started."""

    def start(self):
        super().start()
        os.kill(self.pid, signal.SIGINT)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks here")
def test_a_warning_of_int_is_held_too_when_the_first_start_launches_the_resource_tracker(
    tmp_path, monkeypatch
):
    # multiprocessing's resource tracker, launched by spawn's first start, unblocks SIGINT
    # and SIGTERM in the launching thread: a warning of INT must still reach the job blocked
    from multiprocessing import resource_tracker

    from hydra_plugins.nasheur_ablation import packed_launcher

    fresh = resource_tracker.ResourceTracker()  # not running yet, as in a task's first start
    monkeypatch.setattr(resource_tracker, "_resource_tracker", fresh)
    monkeypatch.setattr(resource_tracker, "ensure_running", fresh.ensure_running)
    monkeypatch.setattr(resource_tracker, "getfd", fresh.getfd)
    monkeypatch.setenv("NASHEUR_TEST_FLAG", str(tmp_path))
    monkeypatch.setenv("NASHEUR_TEST_SLEEP", "0")
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "INT")
    spawn = multiprocessing.get_context("spawn")
    context = SimpleNamespace(Process=InterruptedAtStart, Pipe=spawn.Pipe)
    monkeypatch.setattr(packed_launcher.multiprocessing, "get_context", lambda _: context)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        (result,) = run_in_processes(ends_soon, job_args(1), at_once=1)
    finally:
        if fresh._fd is not None:  # the tracker ends as its pipe closes
            os.close(fresh._fd)
            os.waitpid(fresh._pid, 0)
    assert result.status is JobStatus.COMPLETED, result._return_value
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def test_a_local_job_runs_with_its_own_number_and_id(monkeypatch):
    # each job's config says which job of the sweep it is (its folder, hydra.job.num in the
    # sweep's summary): the number and id the launch gave it, set in its own process

    from omegaconf import OmegaConf

    from hydra_plugins.nasheur_ablation.packed_launcher import LocalParallelLauncher

    ran = []

    class Loader:
        def load_sweep_config(self, config, overrides):
            return OmegaConf.create({"hydra": {"job": {"id": None, "num": None}}, "o": overrides})

    glob = LocalParallelLauncher.__call__.__globals__
    monkeypatch.setitem(glob, "run_job", lambda **kw: ran.append(kw) or "result")
    # Hydra's own state, as the launching process had it: not this test's concern
    monkeypatch.setitem(glob, "Singleton", SimpleNamespace(set_state=lambda state: None))
    launcher = LocalParallelLauncher()
    launcher.config = OmegaConf.create({})
    launcher.hydra_context = SimpleNamespace(config_loader=Loader())
    launcher.task_function = print
    assert launcher(["seed=7"], "hydra.sweep.dir", 4, "4", {}) == "result"
    ((kw,),) = [ran]
    assert kw["config"].hydra.job.num == 4 and kw["config"].hydra.job.id == "4"
    assert list(kw["config"].o) == ["seed=7"]
    assert kw["job_dir_key"] == "hydra.sweep.dir" and kw["job_subdir_key"] == "hydra.sweep.subdir"
