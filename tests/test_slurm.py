"""The SLURM launcher profile (`hydra/launcher=slurm`) on a real cluster.

A two-job sweep, a preempted job that is requeued and resumes from its checkpoint, and a job
killed outright, which the launcher must report instead of waiting for it. CI starts a one-node
cluster first (`bash launch/slurm/start_cluster.sh`); where sbatch is absent or sinfo fails,
every test here is skipped. The jobs ask for partition `debug` (NASHEUR_TEST_SLURM_PARTITION
picks another), one CPU, no GPU option.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nasheur.results.collect import load_records
from nasheur.reuse import current_user, slurm_job_status, stuck_reason
from tests.conftest import TINY_JOB, pid_alive, run_env, start_nasheur, write_nb201_gt
from tests.test_with_mps import fake_control

pytestmark = pytest.mark.slurm

PARTITION = os.environ.get("NASHEUR_TEST_SLURM_PARTITION", "debug")
# every wait of one test draws on this many seconds, so that a test never runs much longer
TEST_BUDGET_S = 270


def _sh(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


# the launcher profile of the one-node test cluster (environment variables of site.env)
TEST_PROFILE = {
    "NASHEUR_SLURM_PARTITION": PARTITION,
    "NASHEUR_SLURM_GPUS": "null",  # no --gpus-per-node at all
    "NASHEUR_SLURM_CPUS": "1",
    "NASHEUR_SLURM_MEM_GB": "2",
    # above 10 minutes: submitit then reads an early USR2 as a preemption, not a time-out
    "NASHEUR_SLURM_TIME_MIN": "15",
    "NASHEUR_SLURM_ARRAY_PARALLELISM": "2",
    "NASHEUR_SLURM_MAX_NUM_TIMEOUT": "3",
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def cluster() -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("no SLURM here: sbatch is not on PATH (bash launch/slurm/start_cluster.sh)")
    try:
        proc = _sh("sinfo", "-h", "-o", "%P %a %D %t")
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"sinfo failed: {err}")
    if proc.returncode != 0:
        pytest.skip(f"sinfo failed: {(proc.stderr or proc.stdout).strip()}")


@pytest.fixture
def env(cluster, tmp_path) -> dict[str, str]:
    """run_env plus the launcher profile's variables, whatever the caller's site.env says."""
    env = {k: v for k, v in run_env(tmp_path).items() if not k.startswith("NASHEUR_SLURM_")}
    env.update(TEST_PROFILE)
    return env


class Budget:
    """Seconds left to a test: each wait takes at most its own limit and what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def __call__(self, limit: float) -> float:
        return max(1.0, min(limit, self.end - time.monotonic()))


@pytest.fixture
def budget() -> Budget:
    return Budget(TEST_BUDGET_S)


@pytest.fixture
def submitit_folder(tmp_path) -> Iterator[Path]:
    """A fresh submitit folder for the test; its jobs are cancelled (by id) when it ends."""
    folder = tmp_path / "submitit"
    yield folder
    ids = job_ids(folder)
    if ids:
        _sh("scancel", *ids)


def job_ids(folder: Path) -> list[str]:
    """The SLURM ids of the jobs submitted into a submitit folder (`<id>` or `<id>_<task>`)."""
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and re.fullmatch(r"\d+(_\d+)?", p.name) and any(p.glob("*_submitted.pkl"))
    )


def sweep_args(folder: Path, gt: Path, *overrides: str) -> list[str]:
    # the overrides are one block after -m: the profile, its folder, the job, the sweep
    return [
        "-m",
        "hydra/launcher=slurm",
        f"hydra.launcher.submitit_folder={folder}/%j",
        *TINY_JOB,
        f"ground_truth.path={gt}",
        *overrides,
    ]


start = start_nasheur  # `python -m nasheur -m ...`: it submits, then waits for its jobs


def finish(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_until(what: str, ok: Callable[[], object], timeout: float, proc=None):
    """Poll ok() (bounded); fail early if the launcher process ended meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = ok()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the launcher exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else f"({path} is missing)"


def job_state(job_id: str) -> str:
    """squeue's state of the job, "" once it lists it no more: as a sweep asks it of a twin
    left to it (nasheur.reuse)."""
    status = slurm_job_status(job_id)
    return "" if status is None else status[0]


def accounted_states(job_id: str) -> list[str]:
    """Every state sacct recorded for the job, requeued runs included."""
    proc = _sh("sacct", "-n", "-X", "-P", "--duplicates", "-j", job_id, "-o", "State")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def preempt_and_finish(job_id: str, budget: Budget, proc: subprocess.Popen, runs: Path) -> int:
    """What SLURM does before preempting a job: USR2, on which submitit requeues it and exits;
    then, as a requeued job waits a while before it may start again (on a cluster, long after
    its processes are gone), let it start now, once the processes of its jobs (the pids of
    the job.lock files under `runs`) have ended: a run started while the last one's step was
    still being torn down failed at once on this one-node cluster. The launcher's exit
    status once it returned."""
    assert _sh("scancel", "--signal=USR2", job_id).returncode == 0
    wait_until("the requeued job to pend", lambda: job_state(job_id) == "PENDING", budget(60), proc)
    wait_until(
        "the processes of the requeued run to end",
        lambda: (
            not any(
                pid_alive(json.loads(lock.read_text())["pid"]) for lock in runs.rglob("job.lock")
            )
        ),
        budget(60),
        proc,
    )
    wait_until(
        "the requeued job to be released",
        lambda: _sh("scontrol", "update", f"JobId={job_id}", "StartTime=now").returncode == 0,
        budget(30),
        proc,
    )
    return finish(proc, timeout=budget(240))


def test_a_two_job_sweep_runs_on_slurm_and_merges(env, submitit_folder, budget, tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    proc = start(sweep_args(submitit_folder, gt, "seed=0,1"), env, log)
    assert finish(proc, timeout=budget(240)) == 0, tail(log)

    records = load_records([tmp_path / "runs"])
    assert [r["status"] for r in records] == ["completed", "completed"], tail(log)
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert len({Path(r["path"]).parent for r in records}) == 2  # one folder per job
    for r in records:
        assert [h["epoch"] for h in r["history"]] == [1, 2, 3]
        assert len(r["archs"]) == 12

    # both ran as one SLURM array, each task with its own submitit log, both accounted
    ids = job_ids(submitit_folder)
    assert len(ids) == 2 and len({i.split("_")[0] for i in ids}) == 1, ids
    for job_id in ids:
        assert list((submitit_folder / job_id).glob("*_log.out")), job_id
        wait_until(
            f"sacct to record {job_id} as completed",
            lambda j=job_id: accounted_states(j) == ["COMPLETED"],
            budget(30),
        )
    # each job's claim names the SLURM job that ran it, for a sweep that finds it queued
    claims = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob(".nasheur-claims/*")]
    assert sorted(c.get("slurm_submitted") for c in claims) == ids, claims


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(
    env, submitit_folder, budget, tmp_path
):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    # about a second per epoch on one CPU: time to preempt it after its first checkpoint
    args = sweep_args(submitit_folder, gt, "dataset.num_images=800", "protocol.epochs=20", "seed=0")
    proc = start(args, env, log)
    try:
        ckpt = wait_until(
            "the first checkpoint",
            lambda: next((tmp_path / "runs").rglob("checkpoint.pt"), None),
            budget(120),
            proc,
        )
        (job_id,) = job_ids(submitit_folder)
        assert not (ckpt.parent / "metrics.json").exists()

        assert preempt_and_finish(job_id, budget, proc, tmp_path / "runs") == 0, tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    folder = ckpt.parent
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed", record.get("error")
    assert [h["epoch"] for h in record["history"]] == list(range(1, 21))
    job_log = (folder / "nasheur.log").read_text()
    assert re.search(r"resuming from \S+checkpoint\.pt after epoch [1-9]\d* of 20", job_log), (
        job_log[-3000:]
    )
    # submitit says so in the job's log (Hydra's logging) or in its own stderr
    logs = job_log + "".join(p.read_text() for p in (submitit_folder / job_id).glob("*_log.*"))
    assert f"Requeued job {job_id}" in logs, logs[-3000:]
    # the accounting keeps both runs: the requeued one, then the completed one
    wait_until(
        "sacct to record both runs",
        lambda: accounted_states(job_id) == ["REQUEUED", "COMPLETED"],
        budget(30),
    )


def test_a_killed_job_is_reported_not_waited_for(env, submitit_folder, budget, tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    # long enough to be killed midway on a fast machine too (40 epochs here took 8 s): the
    # kill, not the epochs, ends it
    args = sweep_args(
        submitit_folder,
        gt,
        "hydra/sweeper=ablation",
        "dataset.num_images=800",
        "protocol.epochs=2000",
        "seed=0",
    )
    proc = start(args, env, log)
    try:
        ckpt = wait_until(
            "the first checkpoint",
            lambda: next((tmp_path / "runs").rglob("checkpoint.pt"), None),
            budget(120),
            proc,
        )
        (job_id,) = job_ids(submitit_folder)
        # the job's process dies at once, as under the OOM killer: it writes nothing more, and
        # only SLURM's accounting (sacct) can tell the launcher that the job is over. (Not
        # `scancel --signal=KILL`: SLURM cancels the job then, SIGTERM first.) The job runs on
        # this machine, and its lock file names its process.
        pid = json.loads((ckpt.parent / "job.lock").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        assert finish(proc, timeout=budget(120)) == 1, tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = tail(log)
    assert f"job {job_id} ended without a result (state: FAILED" in out, out
    assert "1 job: 1 no record" in out and "Traceback" not in out, out
    assert not (ckpt.parent / "metrics.json").exists()
    wait_until(
        "sacct to record the job as failed",
        lambda: accounted_states(job_id)[-1:] in (["FAILED"], ["CANCELLED"]),
        budget(30),
    )


def test_a_running_job_is_left_alone_and_a_cancelled_one_recorded(
    env, submitit_folder, budget, tmp_path
):
    """A plain `scancel` (SIGTERM, then SIGKILL after KillWait) leaves an `interrupted`
    record, and the sweep reports it in a summary once its other job is done; the same job
    launched again while it runs is not submitted a second time."""
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    # the ablation sweeper (hydra/sweeper=ablation), one long job and one short one
    ours = ["hydra/sweeper=ablation", "seed=0", "dataset.num_images=800"]
    proc = start(sweep_args(submitit_folder, gt, *ours, "protocol.epochs=2000,3"), env, log)
    try:
        folder = wait_until(
            "the long job's first checkpoint",
            lambda: next(
                (
                    c.parent
                    for c in (tmp_path / "runs").rglob("checkpoint.pt")
                    if "epochs: 2000" in (c.parent / ".hydra" / "config.yaml").read_text()
                ),
                None,
            ),
            budget(120),
            proc,
        )
        holder = json.loads((folder / "job.lock").read_text())  # who runs it: its SLURM job
        job_id = f"{holder['slurm_array_job_id']}_{holder['slurm_array_task_id']}"
        assert job_id in job_ids(submitit_folder)

        # the same job launched again while it runs: left to it, nothing submitted
        again_log = tmp_path / "again.log"
        again = start(
            sweep_args(submitit_folder, gt, *ours, "protocol.epochs=2000"), env, again_log
        )
        assert finish(again, timeout=budget(60)) == 0, tail(again_log)
        assert "1 running elsewhere" in tail(again_log), tail(again_log)
        assert len(job_ids(submitit_folder)) == 2, job_ids(submitit_folder)
        listed = json.loads((folder.parents[1] / "sweep.json").read_text())["jobs"]
        assert [j["state_at_launch"] for j in listed if j["folder"].endswith(folder.name)] == [
            "running"
        ]

        # scancel as a user types it: SIGTERM ends the job as interrupted, at once
        assert _sh("scancel", job_id).returncode == 0
        assert finish(proc, timeout=budget(120)) == 1, tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "interrupted", record.get("error")
    assert record["error"].startswith("Terminated: SIGTERM")
    out = tail(log, 6000)
    assert "Traceback" not in out, out
    assert f"job {job_id} ended without a result (state: CANCELLED" in out, out
    assert "1 completed, 1 interrupted" in out, out  # the short job was waited for
    assert "Run the same command again" in out, out


def _holders(runs: Path) -> dict[str, dict]:
    """Each job folder's lock details (who ran it last), by the job's seed."""
    held = {}
    for lock in runs.rglob("job.lock"):
        seed = re.search(r"^seed: (\d+)$", (lock.parent / ".hydra/config.yaml").read_text(), re.M)
        held[seed.group(1)] = json.loads(lock.read_text())
    return held


def test_jobs_per_task_packs_a_sweep_into_fewer_array_tasks(env, submitit_folder, budget, tmp_path):
    """Three jobs at two per task: an array of two tasks, the first running two jobs side by
    side in processes of their own under its MPS daemon (a stand-in here), each job's record
    as an unpacked job's."""
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    control = fake_control(tmp_path)
    env = {
        **env,
        **{"NASHEUR_SLURM_JOBS_PER_TASK": "2", "NASHEUR_SLURM_CPUS": "2"},
        **{"NASHEUR_SLURM_MPS": "true", "NASHEUR_MPS_CONTROL": str(control)},
    }
    proc = start(sweep_args(submitit_folder, gt, "seed=0,1,2"), env, log)
    assert finish(proc, timeout=budget(240)) == 0, tail(log)

    records = load_records([tmp_path / "runs"])
    assert sorted((r["seed"], r["status"]) for r in records) == [
        (0, "completed"),
        (1, "completed"),
        (2, "completed"),
    ], tail(log)
    ids = job_ids(submitit_folder)
    assert len(ids) == 2 and len({i.split("_")[0] for i in ids}) == 1, ids
    held = _holders(tmp_path / "runs")
    tasks = {s: (h["slurm_array_job_id"], h["slurm_array_task_id"]) for s, h in held.items()}
    assert tasks["0"] == tasks["1"] != tasks["2"], tasks  # launch order, two to a task
    assert held["0"]["pid"] != held["1"]["pid"]  # a process each
    assert "3 jobs: 3 completed" in tail(log), tail(log)
    assert "3 to run (2 SLURM tasks of up to 2 jobs each)" in tail(log, 20000)
    # the task of two jobs started a daemon and stopped it; the task of one job needs none
    calls = (tmp_path / "control.log").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["start", "stdin"], calls


def test_a_preempted_packed_task_requeues_and_its_jobs_resume(
    env, submitit_folder, budget, tmp_path
):
    """USR2 to a task of two jobs: the task is requeued, both jobs stop as interrupted and
    resume from their checkpoints when it runs again."""
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "launcher.log"
    env = {**env, "NASHEUR_SLURM_JOBS_PER_TASK": "2", "NASHEUR_SLURM_CPUS": "2"}
    args = sweep_args(
        submitit_folder, gt, "dataset.num_images=800", "protocol.epochs=20", "seed=0,1"
    )
    proc = start(args, env, log)
    try:
        wait_until(
            "both jobs' first checkpoints",
            lambda: len(list((tmp_path / "runs").rglob("checkpoint.pt"))) == 2,
            budget(150),
            proc,
        )
        (job_id,) = job_ids(submitit_folder)
        assert preempt_and_finish(job_id, budget, proc, tmp_path / "runs") == 0, tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = load_records([tmp_path / "runs"])
    assert [r["status"] for r in records] == ["completed", "completed"], tail(log)
    for r in records:
        assert [h["epoch"] for h in r["history"]] == list(range(1, 21))
        job_log = (Path(r["path"]).parent / "nasheur.log").read_text()
        assert re.search(r"resuming from \S+checkpoint\.pt after epoch \d+ of 20", job_log), (
            job_log[-3000:]
        )
    wait_until(
        "sacct to record both runs of the task",
        lambda: accounted_states(job_id) == ["REQUEUED", "COMPLETED"],
        budget(30),
    )


# a job of a test's own: its id alone on stdout, and no slurm-<id>.out where the tests run
QUIET = ("--parsable", "-p", PARTITION, "--output=/dev/null")


def test_squeue_says_why_a_held_job_waits(cluster):
    # the state and reason a sweep waiting on a queued twin reads, as this SLURM gives them
    done = _sh("sbatch", *QUIET, "--hold", "--wrap", "true")
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip().split(";")[0]
    try:
        # the user as the claims of a sweep record it (nasheur.reuse.current_user)
        assert slurm_job_status(job) == ("PENDING", "JobHeldUser", current_user())
        assert f"scontrol release {job}" in stuck_reason(job, "JobHeldUser")
        assert _sh("scontrol", "release", job).returncode == 0
        # released, it waits for its turn or runs: nothing left to do about it
        state, reason, _ = slurm_job_status(job) or ("", "", "")
        assert state in {"PENDING", "RUNNING", "COMPLETING", ""}
        assert stuck_reason(job, reason) is None
    finally:
        _sh("scancel", job)
    assert wait_until(
        "the cancelled job to leave squeue", lambda: slurm_job_status(job) is None, 60
    )


def test_squeue_says_a_dependency_can_never_be_met(cluster, budget):
    failed = _sh("sbatch", *QUIET, "--wrap", "exit 1").stdout.strip()
    done = _sh("sbatch", *QUIET, f"--dependency=afterok:{failed}", "--wrap", "true")
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip().split(";")[0]
    try:
        status = wait_until(
            "SLURM to see the dependency fail",
            lambda: (s := slurm_job_status(job)) and s[1] == "DependencyNeverSatisfied" and s,
            budget(60),
        )
        assert status[0] == "PENDING" and stuck_reason(job, status[1]) is not None
    finally:
        _sh("scancel", job, failed)
