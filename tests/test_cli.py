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


def option_type(kind: str):
    """The argument type of nasheur's command lines (src/nasheur/cli_args.py) named `kind`."""
    from nasheur.cli_args import at_least, bin_width, rate

    return {
        "at_least(0)": at_least(0),
        "at_least(1)": at_least(1),
        "rate": rate,
        "bin_width": bin_width,
    }[kind]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("at_least(1)", "1", 1),  # the bound itself is allowed (">= low")
        ("at_least(0)", "0", 0),
        ("rate", "0", 0.0),  # no weight decay is a valid choice
        ("rate", "0.025", 0.025),
        ("bin_width", "0.5", 0.5),
        ("bin_width", "0.001", 0.001),
    ],
)
def test_each_option_type_takes_the_edges_of_its_range(kind, text, value):
    assert option_type(kind)(text) == value


@pytest.mark.parametrize(
    ("kind", "text", "said"),
    [
        ("at_least(1)", "0", "must be >= 1, got 0"),
        ("at_least(1)", "1.5", "expects an integer, got '1.5'"),
        ("rate", "-0.1", "must be a finite number >= 0, got '-0.1'"),
        ("rate", "inf", "must be a finite number >= 0, got 'inf'"),
        ("rate", "nan", "must be a finite number >= 0, got 'nan'"),
        ("rate", "x", "expects a number, got 'x'"),
        ("bin_width", "0", "must be a fraction in (0, 1), got '0'"),
        ("bin_width", "1", "must be a fraction in (0, 1), got '1'"),  # one bin: every tie
        ("bin_width", "nan", "must be a fraction in (0, 1), got 'nan'"),  # compares false
    ],
)
def test_each_option_type_refuses_what_lies_outside_its_range(kind, text, said):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as refused:
        option_type(kind)(text)
    assert str(refused.value) == said


def test_a_file_to_write_must_be_a_file_path_that_can_be_made(tmp_path):
    import argparse

    from nasheur.cli_args import file_path

    afile = tmp_path / "afile"
    afile.write_text("")
    deep = tmp_path / "new" / "deeper" / "out.json"  # folders made when it is written
    assert file_path(str(deep)) == str(deep) and file_path(str(afile)) == str(afile)
    for text, said in [
        ("", "expects a file path, got an empty one"),
        ("   ", "expects a file path, got an empty one"),
        (str(tmp_path), f"{tmp_path} is a folder, not a file"),
        (f"{afile}/out.json", f"{afile}/out.json: {afile} is a file, not a folder"),
        (f"{afile}/a/out.json", f"{afile}/a/out.json: {afile} is a file, not a folder"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            file_path(text)
        assert str(refused.value) == said, text


def test_a_path_to_write_to_starting_with_a_tilde_is_under_home(tmp_path, monkeypatch):
    # `--out=~/tables`: the shell leaves the ~ after `=`; not a folder named ~ here
    from nasheur.cli_args import file_path, folder_path
    from nasheur.config import runs_root

    monkeypatch.setenv("HOME", str(tmp_path))
    assert folder_path("~/tables") == str(tmp_path / "tables")
    assert file_path("~/gt/out.json") == str(tmp_path / "gt" / "out.json")
    monkeypatch.setenv("NASHEUR_RUNS", "~/runs")
    assert runs_root() == tmp_path / "runs"


def test_a_folder_to_write_into_may_exist_or_be_made_but_not_be_a_file(tmp_path):
    import argparse

    from nasheur.cli_args import folder_path

    afile = tmp_path / "afile"
    afile.write_text("")
    assert folder_path(str(tmp_path)) == str(tmp_path)  # an existing folder: written into
    assert folder_path(str(tmp_path / "new" / "out")) == str(tmp_path / "new" / "out")
    for text, said in [
        ("  ", "expects a folder, got an empty path"),
        (str(afile), f"{afile} is not a folder"),
        (f"{afile}/out", f"{afile}/out: {afile} is a file, not a folder"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            folder_path(text)
        assert str(refused.value) == said, text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_neither_a_folder_nor_a_folder_to_write_under(tmp_path):
    # a pipe exists but is no folder (nor a regular file): nothing can be made inside it
    import argparse

    from nasheur.cli_args import file_path, folder_path

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for check, text, said in [
        (folder_path, str(pipe), f"{pipe} is not a folder"),
        (folder_path, f"{pipe}/out", f"{pipe}/out: {pipe} is a file, not a folder"),
        (file_path, f"{pipe}/out.json", f"{pipe}/out.json: {pipe} is a file, not a folder"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            check(text)
        assert str(refused.value) == said, text


# `python -m nasheur` with the job itself (`_run`) standing in for a job that ends as said:
# how the command says it, its exit status and what it leaves in the job's folder
STUB = """
import os
import sys
from pathlib import Path

import nasheur.__main__ as m
from nasheur.config import ConfigError
from nasheur.jobguard import Terminated

WRITES, ENDING = sys.argv.pop(1), sys.argv.pop(1)


def stub(hc, config, out, refused=None):
    for name in WRITES.split(","):  # files the job wrote before it ended
        if name == "claimed":  # the folder claimed, as run_job's on_claimed does
            m._keep_hydra_record(out / ".hydra", m._read_hydra_record(out / ".hydra"))
        elif name:
            (out / name).write_text("{}")
    raise eval(ENDING)


def takes(out, config, sweeps):  # a sweep's final checkpoint linked in, as adopt_training does
    out.mkdir(parents=True, exist_ok=True)
    os.link(Path(TAKES, "checkpoint.pt"), out / "checkpoint.pt")
    (out / "trained_in.json").write_text("{}")
    return Path(TAKES)


m._run = stub
TAKES = os.environ.get("STUB_TAKES")
if TAKES:
    m.reuse_in_single_run = takes
m.cli()
"""


def stubbed_job(
    tmp_path: Path,
    ending: str,
    writes: str,
    folder: Path | None = None,
    more: tuple = (),
    takes: Path | None = None,
):
    # takes: a sweep's job folder whose checkpoint the run links in first (trained twins)
    gt = write_nb201_gt(tmp_path / "gt.csv")
    args = [*TINY_JOB, f"ground_truth.path={gt}", *more]
    if folder is not None:
        args.append(f"hydra.run.dir={folder}")
    return subprocess.run(
        [PYTHON, "-c", STUB, writes, ending, *args],
        cwd=REPO,
        env={**run_env(tmp_path), **({"STUB_TAKES": str(takes)} if takes else {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("ending", "code", "said"),
    [
        ("KeyboardInterrupt()", 130, "nasheur: interrupted; the same command starts it again"),
        ("Terminated()", 143, "nasheur: stopped by SIGTERM; the same command starts it again"),
        ("Terminated(1)", 129, "nasheur: stopped by SIGHUP; the same command starts it again"),
        ("FloatingPointError('training loss is nan')", 1, "nasheur: failed: training loss"),
    ],
    ids=["Ctrl-C", "SIGTERM", "SIGHUP", "diverged"],
)
def test_a_stopped_or_failed_job_exits_with_its_status_and_one_line(tmp_path, ending, code, said):
    # the README's statuses: Ctrl-C 130, SIGTERM 143, SIGHUP 129, a failure 1
    folder = tmp_path / "job"
    done = stubbed_job(tmp_path, ending, "metrics.json", folder)
    assert done.returncode == code, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("nasheur:")]
    assert line.startswith(said)
    if code == 1:
        assert line.endswith(f"(record: {folder / 'metrics.json'})")
    else:  # no checkpoint yet: it starts again in the same folder
        assert line.endswith(f"in {folder} (it stopped before its first checkpoint)")
    assert (folder / "metrics.json").is_file()  # its record stays: it resumes from it


def test_a_failed_job_whose_record_could_not_be_written_points_at_no_record(tmp_path):
    folder = tmp_path / "job"
    ending = "setattr(e := FloatingPointError('training loss is nan'), 'unrecorded', 'lost') or e"
    done = stubbed_job(tmp_path, ending, "", folder)
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("nasheur:")]
    assert line == "nasheur: failed: training loss is nan (lost)"


def test_bad_input_found_by_a_new_job_leaves_nothing_behind(tmp_path):
    # a folder made for this command only (and claimed by its job): its record, pool and
    # lock go with it, and with ./runs/<space>/ under $NASHEUR_RUNS, which the user named
    # and which stays
    writes = "claimed,metrics.json,pool.json,job.lock"
    done = stubbed_job(tmp_path, "ConfigError('the data moved')", writes)
    assert done.returncode == 2, done.stderr[-3000:]
    assert [x for x in done.stderr.splitlines() if x.startswith("nasheur:")] == [
        "nasheur: input error: the data moved"
    ]
    assert (tmp_path / "runs").is_dir() and list((tmp_path / "runs").iterdir()) == []
    # a folder the user named: only what the command wrote there goes, not the folder
    mine = tmp_path / "mine"
    mine.mkdir()
    done = stubbed_job(tmp_path, "ConfigError('the data moved')", "metrics.json,job.lock", mine)
    assert done.returncode == 2 and mine.is_dir() and list(mine.iterdir()) == []


def test_bad_input_found_after_taking_a_sweeps_super_net_leaves_nothing_behind(tmp_path):
    # a new folder into which the run linked a sweep's final checkpoint (a trained twin) and
    # whose evaluation then met bad input (a pool larger than the GT) was made for this
    # command only: it goes, link and note too; the sweep's checkpoint stays
    source = tmp_path / "sweep-job"
    source.mkdir()
    (source / "checkpoint.pt").write_bytes(b"the sweep's super-net")
    writes = "claimed,metrics.json,pool.json,job.lock"
    done = stubbed_job(tmp_path, "ConfigError('pool too large')", writes, takes=source)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "nasheur: input error: pool too large" in done.stderr
    assert list((tmp_path / "runs").iterdir()) == []
    assert (source / "checkpoint.pt").read_bytes() == b"the sweep's super-net"


def test_bad_input_found_by_a_resumed_job_keeps_its_folder(tmp_path):
    # a job that trained before (its checkpoint there) keeps its folder and its failed record
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"epochs of work")
    done = stubbed_job(tmp_path, "ConfigError('the data moved')", "metrics.json,pool.json", folder)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "nasheur: input error: the data moved" in done.stderr
    assert (folder / "checkpoint.pt").read_bytes() == b"epochs of work"
    assert (folder / "metrics.json").is_file() and (folder / "pool.json").is_file()


def test_a_damaged_cifar_batch_is_said_in_one_line(tmp_path):
    # a data file the job found damaged is bad input as a missing one is: one line naming
    # it, status 2, no traceback; the resumed job's checkpoint and record stay
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"epochs of work")
    bad = "__import__('nasheur.data.cifar10').data.cifar10.BadBatchError('data_batch_3: damaged')"
    done = stubbed_job(tmp_path, bad, "metrics.json", folder)
    assert done.returncode == 2, done.stderr[-3000:]
    assert [x for x in done.stderr.splitlines() if x.startswith("nasheur:")] == [
        "nasheur: input error: data_batch_3: damaged"
    ]
    assert "Traceback" not in done.stderr
    assert (folder / "checkpoint.pt").read_bytes() == b"epochs of work"
    assert (folder / "metrics.json").is_file()


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_a_single_run_may_name_a_launcher_that_runs_it_here(tmp_path, launcher):
    # hydra/launcher=local (or Hydra's basic) runs a job in this process, as a single run
    # does: the job runs (here it is stopped at once), not refused as a sweep's option
    more = (f"hydra/launcher={launcher}",)
    done = stubbed_job(tmp_path, "KeyboardInterrupt()", "", tmp_path / "job", more)
    assert done.returncode == 130, done.stderr[-3000:]
    assert "nasheur: interrupted;" in done.stderr


def test_a_single_run_copies_or_evaluates_what_a_sweep_trained(tmp_path):
    # a sweep of one job; the same config without -m is copied, another evaluation of it
    # evaluates the sweep's super-net (the accuracies of a run that trains it itself), and
    # hydra.sweeper.reuse=false trains it
    gt = write_nb201_gt(tmp_path / "gt.csv")
    env = run_env(tmp_path)
    job = [*TINY_JOB, "protocol.epochs=2", f"ground_truth.path={gt}"]
    swept = nasheur([*job, "seed=0", "-m"], env, timeout=900)
    assert swept.returncode == 0, swept.stderr[-3000:]
    (source,) = [p.parent for p in (tmp_path / "runs" / "sweeps").rglob("metrics.json")]

    def single(name: str, *more: str) -> tuple[dict, str]:
        done = nasheur([*job, *more, f"hydra.run.dir={tmp_path / name}"], env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        record = json.loads((tmp_path / name / "metrics.json").read_text())
        return record, done.stderr + done.stdout

    copied, said = single("copied")
    assert copied["reused_from"] == str(source.resolve()) and "epoch 1/2" not in said
    evaluated, said = single("evaluated", "eval.pool_size=8")
    assert evaluated["trained_in"] == str(source.resolve()) and "epoch 1/2" not in said
    trained, said = single("trained", "eval.pool_size=8", "hydra.sweeper.reuse=false")
    assert "trained_in" not in trained and "epoch 1/2" in said
    assert evaluated["archs"] == trained["archs"] and evaluated["metrics"] == trained["metrics"]


def test_a_missing_cifar10_names_the_key_and_the_variable_that_set_it(tmp_path):
    # a stale $NASHEUR_DATA (launch/site.env) is easy to miss: the line says where the
    # folder came from
    env = {**run_env(tmp_path), "NASHEUR_DATA": str(tmp_path / "nowhere")}
    done = nasheur(["dataset=cifar10"], env, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("nasheur:")]
    assert line.startswith(
        f"nasheur: input error: dataset.root={tmp_path / 'nowhere'} (from $NASHEUR_DATA): CIFAR-10 not found"
    )
    done = nasheur(["dataset=cifar10", f"dataset.root={tmp_path}"], env, timeout=300)
    assert f"input error: dataset.root={tmp_path}: CIFAR-10 not found" in done.stderr
    # a quoted ~ (site.env) is the home folder: still named as the variable's
    env = {**env, "HOME": str(tmp_path), "NASHEUR_DATA": "~/nowhere"}
    done = nasheur(["dataset=cifar10"], env, timeout=300)
    assert f"dataset.root={tmp_path / 'nowhere'} (from $NASHEUR_DATA): CIFAR-10" in done.stderr
