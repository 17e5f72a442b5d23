"""`hydra/launcher=local_parallel`: the jobs of a sweep on this machine, several at once, each in
a process of its own; stopped by Ctrl-C or SIGTERM, every running job is recorded interrupted
and no process is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nasheur.results.collect import load_records
from tests.conftest import (
    TINY_JOB,
    as_from_a_terminal,
    pid_alive,
    run_env,
    start_nasheur,
    write_nb201_gt,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def start(tmp_path: Path, *overrides: str) -> tuple[subprocess.Popen, Path]:
    """`python -m nasheur -m hydra/launcher=local_parallel ...` in a session of its own (so
    that a Ctrl-C can reach its whole process group), its output in a log."""
    gt = write_nb201_gt(tmp_path / "gt.csv")
    log = tmp_path / "sweep.log"
    args = [
        "-m",
        "hydra/launcher=local_parallel",
        *TINY_JOB,
        f"ground_truth.path={gt}",
        *overrides,
    ]
    env = {**run_env(tmp_path), "OMP_NUM_THREADS": "1"}
    return start_nasheur(args, env, log, start_new_session=True, preexec_fn=as_from_a_terminal), log


def locks(tmp_path: Path) -> dict[int, dict]:
    """Each job folder's lock details (who ran it last), by the job's seed."""
    held = {}
    for lock in (tmp_path / "runs").rglob("job.lock"):
        config = (lock.parent / ".hydra" / "config.yaml").read_text()
        seed = int(next(ln for ln in config.splitlines() if ln.startswith("seed:")).split()[1])
        held[seed] = json.loads(lock.read_text())
    return held


def test_a_sweep_runs_its_jobs_two_at_a_time_in_processes_of_their_own(tmp_path):
    proc, log = start(tmp_path, "seed=0,1,2", "hydra.launcher.jobs_at_once=2")
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    out = log.read_text()
    assert "Launching 3 jobs here, 2 at a time" in out and "3 to run (2 at a time)" in out
    assert all(f"[#{n}] epoch 3/3" in out for n in range(3)), out[-3000:]  # whose line
    assert "3 jobs: 3 completed" in out, out[-3000:]
    records = load_records([tmp_path / "runs"])
    assert sorted((r["seed"], r["status"]) for r in records) == [
        (0, "completed"),
        (1, "completed"),
        (2, "completed"),
    ]
    pids = {h["pid"] for h in locks(tmp_path).values()}
    assert len(pids) == 3 and proc.pid not in pids


@pytest.mark.slow
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM", "SIGINT to the sweep alone"])
def test_a_stopped_sweep_stops_its_running_jobs_as_interrupted(tmp_path, how):
    proc, log = start(
        tmp_path,
        "seed=0,1,2",
        "hydra.launcher.jobs_at_once=2",
        "dataset.num_images=800",
        "protocol.epochs=2000",
    )
    try:
        deadline = time.monotonic() + 180
        while len(list((tmp_path / "runs").rglob("checkpoint.pt"))) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no two checkpoints in 180 s"
            time.sleep(0.25)
        if how == "Ctrl-C":  # the terminal's SIGINT reaches the whole process group
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "SIGTERM":  # `kill` of the sweep alone: it passes SIGTERM on to its jobs
            proc.send_signal(signal.SIGTERM)
        else:  # `kill -INT` of the sweep alone: its jobs are stopped after a grace
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text()
    assert code == (143 if how == "SIGTERM" else 130), out[-3000:]
    assert "Traceback" not in out and "the same command resumes the sweep" in out, out[-3000:]
    held = locks(tmp_path)
    assert sorted(held) == [0, 1]  # the third job never started
    assert not any(pid_alive(h["pid"]) for h in held.values())  # no job left running
    records = load_records([tmp_path / "runs"])
    assert sorted((r["seed"], r["status"]) for r in records) == [
        (0, "interrupted"),
        (1, "interrupted"),
    ]


def test_no_job_at_once_is_refused_before_launch(tmp_path):
    proc, log = start(tmp_path, "seed=0", "hydra.launcher.jobs_at_once=0")
    assert proc.wait(timeout=120) == 2
    out = log.read_text()
    assert "hydra.launcher.jobs_at_once=0: at least one job runs at once" in out, out
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("job.lock"))
