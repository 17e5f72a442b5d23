"""launch/with_mps.sh: a private MPS daemon around a command, stopped however it ends."""

from __future__ import annotations

import os
import subprocess
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
