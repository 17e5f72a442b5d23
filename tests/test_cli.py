"""`python -m nasheur` as a user runs it: the acceptance runs and a SIGKILL in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO, TINY_JOB, run_env, write_nb201_gt

pytestmark = pytest.mark.slow


def nasheur(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "nasheur", *args], cwd=REPO, env=env, capture_output=True, text=True, **kw
    )


def started_until_a_checkpoint(args: list[str], env: dict[str, str], folder: Path, **kw):
    """`python -m nasheur args` started, once a checkpoint.pt appears under `folder`."""
    proc = subprocess.Popen([PYTHON, "-m", "nasheur", *args], cwd=REPO, env=env, **kw)
    deadline = time.monotonic() + 300
    while not list(folder.rglob("checkpoint.pt")):
        assert proc.poll() is None, "the job ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def only_metrics(folder: Path) -> list[Path]:
    return sorted(folder.rglob("metrics.json"))


def test_acceptance_run_on_the_real_nb201_table(shared_nb201_csv, tmp_path):
    env = run_env(tmp_path)
    args = [
        "search_space=nb201",
        "dataset=synthetic",
        f"ground_truth.path={shared_nb201_csv}",
        "protocol.epochs=2",
    ]
    proc = nasheur(args, env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = only_metrics(tmp_path / "runs")
    rec = json.loads(path.read_text())
    assert rec["status"] == "completed" and len(rec["archs"]) == 200
    assert rec["ground_truth"]["architectures"] == 15_625
    assert all(v is not None for v in rec["metrics"].values())
    assert (
        "epoch 2/2" in proc.stderr + proc.stdout
        and "sparse Kendall tau" in proc.stderr + proc.stdout
    )


def test_sigkill_then_the_same_command_resumes_to_identical_metrics(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    args = [*TINY_JOB, "dataset.num_images=480", "protocol.epochs=6", f"ground_truth.path={gt}"]

    whole_env = run_env(tmp_path / "whole")
    assert nasheur(args, whole_env, timeout=600).returncode == 0
    (whole,) = only_metrics(tmp_path / "whole")

    env = run_env(tmp_path / "killed")
    proc = started_until_a_checkpoint(
        args, env, tmp_path / "killed", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (ckpt,) = (tmp_path / "killed").rglob("checkpoint.pt")
    assert not (ckpt.parent / "metrics.json").exists()

    again = nasheur(args, env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr + again.stdout
    (resumed,) = only_metrics(tmp_path / "killed")
    a, b = json.loads(whole.read_text()), json.loads(resumed.read_text())
    assert b["metrics"] == a["metrics"] and b["archs"] == a["archs"]
    assert [h["train_loss"] for h in b["history"]] == [h["train_loss"] for h in a["history"]]


def test_a_refused_folder_keeps_its_own_hydra_record(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    folder = tmp_path / "job"
    args = [*TINY_JOB, "protocol.epochs=1", f"ground_truth.path={gt}", f"hydra.run.dir={folder}"]
    env = run_env(tmp_path)
    assert nasheur(args, env, timeout=600).returncode == 0
    hydra = folder / ".hydra"
    before = {f.name: f.read_bytes() for f in hydra.glob("*.yaml")}
    assert set(before) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    metrics = (folder / "metrics.json").read_bytes()

    refused = nasheur([*args, "protocol.lr=0.05"], env, timeout=600)
    assert refused.returncode == 1
    assert "nasheur: refused:" in refused.stderr and "another config" in refused.stderr
    # Hydra wrote the refused job's config there; the folder's own is back
    assert {f.name: f.read_bytes() for f in hydra.glob("*.yaml")} == before
    assert (folder / "metrics.json").read_bytes() == metrics


def test_the_owner_claims_its_own_hydra_record_not_one_written_meanwhile(tmp_path):
    # a copy of the same job started while the first loads (refused: the folder is held)
    # has Hydra write its record over the first's before the first claims the folder
    from nasheur.__main__ import CLAIMED, _keep_hydra_record, _read_hydra_record

    hydra = tmp_path / "job" / ".hydra"
    hydra.mkdir(parents=True)
    for name in ("config.yaml", "overrides.yaml"):
        (hydra / name).write_text(f"first's {name}\n")
    own = _read_hydra_record(hydra)  # as the first job starts
    for name in ("config.yaml", "overrides.yaml"):
        (hydra / name).write_text(f"copy's {name}\n")
    _keep_hydra_record(hydra, own)  # the first claims the folder
    for where in (hydra, hydra / CLAIMED):
        assert {f.name: f.read_text() for f in where.glob("*.yaml")} == {
            "config.yaml": "first's config.yaml\n",
            "overrides.yaml": "first's overrides.yaml\n",
        }


def test_sigterm_and_a_damaged_checkpoint_are_said_in_one_line(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    folder = tmp_path / "job"
    args = [*TINY_JOB, "protocol.epochs=6", f"ground_truth.path={gt}", f"hydra.run.dir={folder}"]
    env = run_env(tmp_path)
    proc = started_until_a_checkpoint(
        args, env, folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "nasheur: stopped by SIGTERM; the same command resumes" in err
    assert json.loads((folder / "metrics.json").read_text())["status"] == "interrupted"

    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])  # cut short: not loadable
    damaged = nasheur(args, env, timeout=600)
    assert damaged.returncode == 2
    assert "nasheur: input error:" in damaged.stderr and "checkpoint.pt" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert json.loads((folder / "metrics.json").read_text())["status"] == "failed"


def test_a_diverged_training_is_said_in_one_line_and_recorded(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    folder = tmp_path / "job"
    # a learning rate of a million, unclipped: the loss is NaN within the first epoch
    args = [*TINY_JOB, "protocol.lr=1e6", "protocol.grad_clip=1e9", f"ground_truth.path={gt}"]
    done = nasheur([*args, f"hydra.run.dir={folder}"], run_env(tmp_path), timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("nasheur:")]
    assert "failed: training loss is nan in epoch 1; lower protocol.lr?" in line
    assert str(folder / "metrics.json") in line
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("FloatingPointError")


def test_a_sweep_job_whose_config_fails_on_its_node_leaves_a_failed_record(tmp_path):
    # the sweeper checks every job before launching it; what changes after (a ground truth
    # moved while the array waited in the queue) is found by the job, which records it.
    # Hydra's basic sweeper checks nothing, so the job meets the missing file itself
    missing = tmp_path / "moved.csv"
    args = ["hydra/sweeper=basic", f"ground_truth.path={missing}", "seed=0"]
    done = nasheur([*args, f"hydra.sweep.dir={tmp_path / 's'}", "-m"], run_env(tmp_path))
    assert done.returncode == 1
    (path,) = only_metrics(tmp_path / "s")
    record = json.loads(path.read_text())
    assert record["status"] == "failed" and record["config_hash"]
    assert record["error"] == f"ConfigError: ground_truth.path={missing}: no such file or folder"
