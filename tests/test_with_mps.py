"""launch/with_mps.sh: a private MPS daemon around a command, stopped however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "launch" / "with_mps.sh"


def fake_control(tmp_path: Path, starts: bool = True) -> Path:
    """A stand-in for nvidia-cuda-mps-control that logs how it is called and what it reads."""
    log = tmp_path / "control.log"
    fake = tmp_path / "fake-mps-control"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'if [[ ${{1:-}} == -d ]]; then echo "start $CUDA_MPS_PIPE_DIRECTORY" >> {log}; '
        f"exit {0 if starts else 1}; fi\n"
        f'echo "stdin $(cat)" >> {log}\n'
    )
    fake.chmod(0o755)
    return fake


def run(tmp_path: Path, command: str, control: str, **more: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASHEUR_MPS_CONTROL": control, "TMPDIR": str(tmp_path), **more}
    return subprocess.run(
        ["bash", str(SCRIPT), "bash", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("status", [0, 3])
def test_the_daemon_runs_around_the_command_and_stops_after(tmp_path, status):
    fake = fake_control(tmp_path)
    out = run(tmp_path, f'echo "pipe=$CUDA_MPS_PIPE_DIRECTORY"; exit {status}', str(fake))
    assert out.returncode == status, out.stderr
    log = (tmp_path / "control.log").read_text().splitlines()
    pipe = out.stdout.strip().removeprefix("pipe=")
    assert log == [f"start {pipe}", "stdin quit"]  # started with the command's pipe, then quit
    assert pipe.startswith(str(tmp_path)) and not Path(pipe).exists()  # private, cleaned up


def test_without_mps_the_command_still_runs(tmp_path):
    out = run(tmp_path, 'echo "pipe=${CUDA_MPS_PIPE_DIRECTORY:-none}"; exit 4', "no-such-control")
    assert out.returncode == 4 and out.stdout.strip() == "pipe=none"
    assert "running without MPS" in out.stderr


def test_a_daemon_that_does_not_start_leaves_the_command_alone(tmp_path):
    fake = fake_control(tmp_path, starts=False)
    out = run(tmp_path, 'echo "pipe=${CUDA_MPS_PIPE_DIRECTORY:-none}"', str(fake))
    assert out.returncode == 0 and out.stdout.strip() == "pipe=none"
    assert "did not start" in out.stderr


def test_without_a_private_folder_the_daemon_is_not_started(tmp_path):
    # mktemp fails (a TMPDIR that is gone): no daemon with its pipe at /pipe (the folders
    # would be made at the root by root, and left there); the command runs without MPS
    fake = fake_control(tmp_path)
    show = 'echo "pipe=${CUDA_MPS_PIPE_DIRECTORY:-none}"; exit 5'
    out = run(tmp_path, show, str(fake), TMPDIR=str(tmp_path / "gone"))
    assert out.returncode == 5 and out.stdout.strip() == "pipe=none", out.stderr
    assert "running without MPS" in out.stderr
    assert not (tmp_path / "control.log").exists()  # never started, nothing to stop


@pytest.mark.parametrize(("given", "seen"), [("2,3", "0,1"), ("5", "0"), ("", "")])
def test_the_command_names_the_gpus_as_the_server_numbers_them(tmp_path, given, seen):
    # NVIDIA's MPS guide: the server numbers the GPUs it was started with from 0; a client
    # naming GPU 5 would find none (and a job on device=auto would stop, or run on the CPU)
    fake = fake_control(tmp_path)
    show = 'echo "gpus=${CUDA_VISIBLE_DEVICES-unset}"'
    out = run(tmp_path, show, str(fake), CUDA_VISIBLE_DEVICES=given)
    assert out.returncode == 0 and out.stdout.strip() == f"gpus={seen}", out.stderr
    # without a daemon the task's own numbers hold
    out = run(tmp_path, show, "no-such-control", CUDA_VISIBLE_DEVICES=given)
    assert out.stdout.strip() == f"gpus={given}"


# a command that says when it is ready, counts the signals it gets and ends 0.5 s after the
# first, with status 40 + how many it got (and says how SIGINT was set when it started)
COUNTING = (
    "import signal, sys, time\n"
    "got = []\n"
    "print('int', signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)\n"
    "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
    "    signal.signal(s, lambda n, f: got.append(n))\n"
    "print('ready', flush=True)\n"
    "while not got: time.sleep(0.02)\n"
    "time.sleep(0.5)\n"
    "sys.exit(40 + len(got))\n"
)


def _signals_at_their_defaults() -> None:
    # as a terminal starts a command: the tests themselves may run where these signals are
    # ignored (a `nohup ... &` job), which a shell passes on and cannot undo
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_counting(tmp_path: Path) -> subprocess.Popen:
    fake = fake_control(tmp_path)
    env = {**os.environ, "NASHEUR_MPS_CONTROL": str(fake), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), sys.executable, "-c", COUNTING],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=_signals_at_their_defaults,
    )
    assert proc.stdout.readline().split() == ["int", "True"]  # SIGINT not left ignored
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_sent_to_the_script_alone_reaches_the_command(tmp_path, sig):
    # kill PID, SLURM's --signal=B:TERM@60: before, bash held the signal until the command
    # ended on its own, and the command never heard of it
    proc = start_counting(tmp_path)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 41  # the command got it once, and its status came back
    log = (tmp_path / "control.log").read_text().splitlines()
    assert log[-1] == "stdin quit"  # the daemon was stopped after the command
    assert not list(tmp_path.glob("nasheur-mps.*"))


def test_a_ctrl_c_reaches_the_command_once(tmp_path):
    # a terminal's Ctrl-C goes to the whole foreground group: the command gets it itself, and
    # the script does not hand it on a second time
    proc = start_counting(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 41
    assert (tmp_path / "control.log").read_text().splitlines()[-1] == "stdin quit"


def test_the_command_reads_the_scripts_stdin(tmp_path):
    fake = fake_control(tmp_path)
    env = {**os.environ, "NASHEUR_MPS_CONTROL": str(fake), "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(SCRIPT), "cat"],
        input="given\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == "given\n", out.stderr
