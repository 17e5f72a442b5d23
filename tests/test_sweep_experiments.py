"""launch/sweep_experiments.sh: the sweeps of one table, their exit statuses, and a stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import as_from_a_terminal

SCRIPT = Path(__file__).resolve().parents[1] / "launch" / "sweep_experiments.sh"

# A stand-in for `python -m nasheur +experiment=NAME ... -m`: NAME says how its sweep ends
# (`fail`: status 3; `stop`: 130, as the sweeper after Ctrl-C; `wait`...: runs until a
# SIGTERM or SIGINT, then 143 or 130, as the sweeper does after its summary, and so does
# `best`, the experiment of `make sweep-14`; otherwise 0).
FAKE = """#!/usr/bin/env bash
name=${3#+experiment=}
echo "$name ${*:4}" >> "$FAKE_LOG"
case $name in
    fail) exit 3 ;;
    stop) exit 130 ;;
    wait* | best)
        trap 'echo "$name: SIGTERM" >> "$FAKE_LOG"; exit 143' TERM
        trap 'echo "$name: SIGINT" >> "$FAKE_LOG"; exit 130' INT
        touch "$FAKE_DIR/$name.ready"
        while :; do sleep 0.05; done ;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[dict[str, str]]:
    python = tmp_path / "fake-python"
    python.write_text(FAKE)
    python.chmod(0o755)
    yield {
        **os.environ,
        "PYTHON": str(python),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_DIR": str(tmp_path),
        "NASHEUR_RUNS": str(tmp_path / "runs"),
    }
    with contextlib.suppress(OSError):  # none left, whatever failed
        subprocess.run(["pkill", "-KILL", "-f", str(python)], check=False)


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.is_file() else []


def sweep(env, launcher: str, experiments: str, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", str(SCRIPT), launcher, experiments, *overrides],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )


def wait_ready(tmp_path: Path, proc: subprocess.Popen, *names: str) -> None:
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{n}.ready").exists() for n in names):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def test_every_experiment_runs_and_the_first_failure_is_the_exit_status(tmp_path, fake):
    proc = sweep(fake, "local", "a fail b", "seed=0", "x=[1, 2]")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    # each with the launcher and the overrides, the one with a space kept one word
    assert calls(tmp_path) == [
        f"{e} hydra/launcher=local seed=0 x=[1, 2] -m" for e in ("a", "fail", "b")
    ]
    assert "sweep a: done" in out and "sweep b: done" in out
    assert "sweep fail: failed (exit status 3)" in err


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_a_dry_run_ends_with_plans_not_with_done(tmp_path, fake, launcher):
    proc = sweep(fake, launcher, "a b", "hydra.sweeper.dry_run=true")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "done" not in out
    assert out.count(": planned (dry run: nothing ran)") == 2
    # the plans come here, one after the other, with the launcher asked for; no launch log
    assert calls(tmp_path) == [
        f"{e} hydra/launcher={launcher} hydra.sweeper.dry_run=true -m" for e in "ab"
    ]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("overrides", "dry"),
    [
        (("hydra.sweeper.dry_run=True",), True),
        (("++hydra.sweeper.dry_run=yes",), True),
        (("+hydra.sweeper.dry_run=ON",), True),
        (("hydra.sweeper.dry_run=1",), True),
        (("hydra.sweeper.dry_run=true", "hydra.sweeper.dry_run=false"), False),
        (("hydra.sweeper.dry_run=no",), False),
    ],
)
def test_a_dry_run_is_seen_in_each_spelling_the_sweeper_reads(tmp_path, fake, overrides, dry):
    # a SLURM dry run prints its plan here; a launch goes to the background and its log
    proc = sweep(fake, "slurm", "a", *overrides)
    assert proc.communicate(timeout=60) and proc.returncode == 0
    assert (tmp_path / "runs" / "sweeps" / "a.launch.log").is_file() is not dry


def test_a_cluster_launch_log_keeps_the_earlier_launches(tmp_path, fake):
    for _ in range(2):
        proc = sweep(fake, "slurm", "a", "seed=0")
        assert proc.communicate(timeout=60) and proc.returncode == 0
    log = (tmp_path / "runs" / "sweeps" / "a.launch.log").read_text().splitlines()
    assert len(log) == 2 and all(line.endswith(": launch of sweep a") for line in log)


@pytest.mark.parametrize("args", [["local"], ["local", ""], ["slurm", "  "]])
def test_no_experiments_is_a_usage_error(fake, args):
    # an empty list (an unset make variable, say) is refused, not a success that ran nothing
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=fake, capture_output=True, text=True)
    err = proc.stderr
    assert proc.returncode == 2 and err.startswith("usage: "), (proc.stdout, err)


def test_local_parallel_runs_the_experiments_one_after_the_other_here(tmp_path, fake):
    # a profile that runs on this machine: the sweeps take turns (each already runs its
    # jobs_at_once jobs side by side), their output comes here, and no launch log is written
    proc = sweep(fake, "local_parallel", "a fail b")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert [c.split()[0] for c in calls(tmp_path)] == ["a", "fail", "b"]
    assert "sweep a: done" in out and "sweep b: done" in out
    assert not (tmp_path / "runs" / "sweeps").exists()


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_an_experiment_named_twice_is_swept_once(tmp_path, fake, launcher):
    # on a cluster the two sweeps would run at once, and the wait for the second lose the first
    proc = sweep(fake, launcher, "a b a")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert sorted(c.split()[0] for c in calls(tmp_path)) == ["a", "b"]


def test_a_sweep_stopped_by_ctrl_c_stops_the_experiments_after_it(tmp_path, fake):
    proc = sweep(fake, "local", "a stop b fail")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [c.split()[0] for c in calls(tmp_path)] == ["a", "stop"]
    assert "sweep stop: stopped; the same command resumes it" in err
    assert "sweep b: not started (stopped)" in err and "sweep fail: not started" in err


@pytest.mark.parametrize(
    ("launcher", "started"), [("local", ["wait1"]), ("slurm", ["wait1", "wait2"])]
)
@pytest.mark.parametrize(
    ("how", "status", "passed"),
    [
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGINT, 130, "SIGINT"),
        (signal.SIGHUP, 129, "SIGTERM"),  # the terminal closed: each sweep stops as for a kill
    ],
)
def test_a_signal_to_the_script_reaches_every_running_sweep(
    tmp_path, fake, launcher, started, how, status, passed
):
    # a Ctrl-C from the terminal reaches the script alone (each sweep has a process group of
    # its own), a `kill` too: it passes the signal on, and no further experiment starts
    proc = sweep(fake, launcher, "wait1 wait2")
    wait_ready(tmp_path, proc, *started)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, (out, err)
    name = passed
    assert {f"{e}: {name}" for e in started} <= set(calls(tmp_path))
    assert all(f"sweep {e}: stopped; the same command resumes it" in err for e in started)
    if launcher == "local":
        assert "sweep wait2: not started (stopped)" in err
        assert [c.split()[0] for c in calls(tmp_path)] == ["wait1", "wait1:"]
    else:
        assert (tmp_path / "runs" / "sweeps" / "wait1.launch.log").is_file()


def test_a_sigterm_to_make_reaches_the_sweep(tmp_path, fake):
    # make hands its SIGTERM to its child only: the sweep targets exec their command
    (tmp_path / "site.env").write_text("")
    env = {**fake, "NASHEUR_SITE_ENV": str(tmp_path / "site.env"), "MAKEFLAGS": ""}
    proc = subprocess.Popen(
        ["make", "-s", "sweep-14", "LAUNCHER=local", f"PYTHON={fake['PYTHON']}"],
        cwd=SCRIPT.parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_ready(tmp_path, proc, "best")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)  # once every process holding its pipes ended
    assert "best: SIGTERM" in calls(tmp_path), (out, err)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_stopped_sweep_is_waited_for_without_spinning_and_still_stops(tmp_path, fake):
    # `wait` returns at once for a stopped child (kill -STOP, or output under stty tostop):
    # the script must not loop on it, and a SIGTERM still ends the sweep
    proc = sweep(fake, "local", "wait1")
    wait_ready(tmp_path, proc, "wait1")
    child = int(
        subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()[0]
    )
    os.kill(child, signal.SIGSTOP)
    before = _cpu_seconds(proc.pid)
    time.sleep(2)
    assert _cpu_seconds(proc.pid) - before < 0.5  # asleep, not a busy loop (that is ~2 s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "wait1: SIGTERM" in calls(tmp_path), err


@pytest.mark.parametrize(
    ("runs", "home", "where"),
    [
        # NASHEUR_RUNS="~/runs" in site.env (quoted: no shell expands it): under $HOME
        ("~/runs", "home", "home/runs"),
        ("  ~/runs \t", "home", "home/runs"),  # spaces around it dropped, as nasheur drops them
        ("~someone/runs", "home", "someone/runs"),  # another user's home folder
        ("~nosuchuser/runs", "home", "~nosuchuser/runs"),  # no such user: a folder of that name
        ("   ", "home", "runs"),  # blank: the default
        ("-runs", "home", "-runs"),  # a name like an option is still a folder
        # getent reads a number as a uid (~0 would be root's home); Python's getpwnam a name
        ("~9/runs", "home", "~9/runs"),
        ("~/runs", None, "me/runs"),  # no $HOME: this user's entry, as Python's expanduser
    ],
)
def test_launch_logs_go_where_nasheur_puts_the_sweeps(
    fake, tmp_path, monkeypatch, runs, home, where
):
    bin_dir = tmp_path / "bin"  # a passwd as glibc's getent reads it: a number is a uid
    bin_dir.mkdir()
    getent = bin_dir / "getent"
    getent.write_text(
        "#!/bin/sh\n"
        'case "$2" in\n'
        f'    someone | 9) echo "someone:x:9:9::{tmp_path}/someone:/bin/sh" ;;\n'
        f'    {os.getuid()}) echo "me:x:{os.getuid()}:0::{tmp_path}/me:/bin/sh" ;;\n'
        "    *) exit 2 ;;\n"
        "esac\n"
    )
    getent.chmod(0o755)
    env = {**fake, "NASHEUR_RUNS": runs, "PATH": f"{bin_dir}:{fake['PATH']}"}
    env.pop("HOME", None)
    if home is not None:
        env["HOME"] = str(tmp_path / home)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "slurm", "bn_ablation"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (tmp_path / where / "sweeps" / "bn_ablation.launch.log").is_file(), proc
    if home is not None and "someone" not in runs:  # nasheur's own reading (its passwd is
        from nasheur.config import runs_root  # not the fake's)

        monkeypatch.setenv("HOME", env["HOME"])
        monkeypatch.setenv("NASHEUR_RUNS", runs)
        assert tmp_path / runs_root() == tmp_path / where
