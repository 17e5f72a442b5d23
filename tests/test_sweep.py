"""A sweep as a user runs it: `python -m nasheur +experiment=... -m`, with one job failing on
purpose, relaunched, and merged into its table."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PYTHON, REPO, TINY_JOB, run_env, write_nb201_gt

pytestmark = pytest.mark.slow


def nasheur(args, env, **kw):
    return subprocess.run(
        [PYTHON, "-m", "nasheur", *args], cwd=REPO, env=env, capture_output=True, text=True, **kw
    )


def test_a_sweep_with_a_failed_job_still_gives_its_table(tmp_path):
    good = write_nb201_gt(tmp_path / "good.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.5\n")
    env = run_env(tmp_path)
    args = [
        "+experiment=bn_ablation",
        "search_space=nb201",
        "seed=0",
        *TINY_JOB,
        "protocol.epochs=1",
        "eval.pool_size=6",
        f"ground_truth.path={good},{bad}",
        "hydra.sweeper.check_data=false",  # else the sweep refuses bad.csv before launching
        "-m",
    ]
    first = nasheur(args, env, timeout=900)
    assert first.returncode != 0  # the sweep reports its failures ...
    assert "4 of 8 launched jobs failed" in first.stderr + first.stdout
    sweep = tmp_path / "runs" / "sweeps" / "bn_ablation"
    records = [json.loads(p.read_text()) for p in sweep.rglob("metrics.json")]
    assert (
        sorted(r["status"] for r in records) == ["completed"] * 4 + ["failed"] * 4
    )  # ... after running all

    again = nasheur(args, env, timeout=900)  # relaunch: completed jobs are skipped
    assert "4 already completed, 4 to run" in again.stderr + again.stdout
    manifest = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert sorted(j["state_at_launch"] for j in manifest) == ["completed"] * 4 + ["failed"] * 4

    table = subprocess.run(
        [
            PYTHON,
            "-m",
            "nasheur.results",
            "table",
            str(sweep),
            "--table",
            "11",
            "--bootstrap",
            "40",
            "--out",
            str(tmp_path / "t"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr
    assert "**Batch norm**" in table.stdout and "bn_track=false, bn_affine=true" in table.stdout
    assert "4 failed run(s) left out" in table.stdout
    assert (tmp_path / "t" / "table-11.tex").is_file()


def test_a_bad_value_fails_the_sweep_before_any_job_runs(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    args = [
        "+experiment=lr_ablation",
        "search_space=nb201",
        "seed=0",
        *TINY_JOB,
        f"ground_truth.path={gt}",
        "fidelity.train_portion=0.5,1.5",
        "-m",
    ]
    proc = nasheur(args, run_env(tmp_path), timeout=300)
    assert proc.returncode == 2 and "fidelity.train_portion" in proc.stderr
    # one message, as a single job's config error, not Hydra's traceback
    assert proc.stderr.startswith("nasheur: config error: 7 of 14 jobs have a bad config")
    # the seven jobs' one error, said once
    assert proc.stderr.count("fidelity.train_portion=1.5 is out of range") == 1
    assert "(7 jobs, e.g. " in proc.stderr
    assert "nothing was launched" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob("metrics.json"))


def test_relative_levels_follow_the_command_lines_baseline(tmp_path):
    # TINY_JOB sets fidelity.baseline.channels=4: base, base/2, base/4 are 4, 2 and 1 here,
    # not NB201's 16, 8 and 4
    gt = write_nb201_gt(tmp_path / "gt.csv")
    args = [
        "+experiment=channels_ablation",
        "search_space=nb201",
        "seed=0",
        *TINY_JOB,
        "protocol.epochs=1",
        "eval.pool_size=4",
        f"ground_truth.path={gt}",
        "-m",
    ]
    proc = nasheur(args, run_env(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = tmp_path / "runs" / "sweeps" / "channels_ablation"
    records = [json.loads(p.read_text()) for p in sweep.rglob("metrics.json")]
    assert sorted(r["config"]["fidelity"]["channels"] for r in records) == [1, 2, 4]
    # it ends with a summary: what completed, where, and how to read it
    tail = proc.stdout.strip().splitlines()[-4:]
    assert tail[0] == "nasheur: sweep channels_ablation: 3 jobs: 3 completed", tail
    assert tail[2:] == [
        f"  python -m nasheur.results show {sweep}",
        f"  python -m nasheur.results table {sweep} --table 12",
    ]


def test_launches_side_by_side_into_one_sweep_folder_all_stay_listed(tmp_path):
    # README's several jobs per GPU: `for s in 0 1; do python -m nasheur ... seed=$s -m & done`
    gt = write_nb201_gt(tmp_path / "gt.csv")
    env = run_env(tmp_path)
    procs = []
    for seed in (0, 1):
        args = [
            "+experiment=bn_ablation",
            *TINY_JOB,
            "protocol.epochs=1",
            "eval.pool_size=4",
            f"ground_truth.path={gt}",
            "protocol.bn_track=true",
            "protocol.bn_affine=false,true",
            f"seed={seed}",
            "hydra/launcher=local",
            "-m",
        ]
        procs.append(
            subprocess.Popen(
                [PYTHON, "-m", "nasheur", *args],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outputs]
    manifest = json.loads((tmp_path / "runs" / "sweeps" / "bn_ablation" / "sweep.json").read_text())
    jobs = manifest["jobs"]
    assert len(jobs) == 4 and len({j["folder"] for j in jobs}) == 4
    assert sorted(o for j in jobs for o in j["overrides"] if o.startswith("seed=")) == [
        "seed=0",
        "seed=0",
        "seed=1",
        "seed=1",
    ]
    for job in jobs:  # each factor named once per job: the command line's values
        assert [o for o in job["overrides"] if "bn_track" in o] == ["protocol.bn_track=true"]


def test_sweeps_side_by_side_train_the_job_they_share_once(tmp_path):
    # make sweep-11's way: two experiments launched at once, both holding the NB201 baseline
    gt = write_nb201_gt(tmp_path / "gt.csv")
    env = run_env(tmp_path)
    common = [*TINY_JOB, "protocol.epochs=1", "eval.pool_size=4", f"ground_truth.path={gt}"]
    common += ["seed=0", "hydra/launcher=local", "-m"]
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "nasheur", f"+experiment={name}", *common],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("bn_ablation", "wd_ablation")
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outputs]
    sweeps = tmp_path / "runs" / "sweeps"
    records = [json.loads(p.read_text()) for p in sweeps.glob("*/nb201/*/metrics.json")]
    assert {r["status"] for r in records} == {"completed"}
    by_hash: dict[str, list[dict]] = {}
    for r in records:
        by_hash.setdefault(r["config_hash"], []).append(r)
    (shared,) = [rs for rs in by_hash.values() if len(rs) == 2]  # the baseline
    assert sorted("reused_from" in r for r in shared) == [False, True]  # trained once
    assert all(len(rs) == 1 for rs in by_hash.values() if rs is not shared)
