"""Merging metrics.json records into tables: rows, cells, missing and failed runs, formats."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nasheur.results import load_records
from nasheur.results.render import to_csv, to_latex, to_markdown
from nasheur.results.tables import build_table, correlation_table
from tests.conftest import PYTHON, REPO


def record(
    space: str,
    seed: int,
    lr: float,
    *,
    acc: float = 0.7,
    status: str = "completed",
    skdt_shift: float = 0.0,
) -> dict:
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.8, 0.95, size=30)
    s = np.clip(g + rng.normal(0, 0.02 + skdt_shift, size=30), 0, 1)  # accuracies
    rec = {
        "status": status,
        "seed": seed,
        "config": {  # as a job writes it: the seed in the config too, not a setting
            "seed": seed,
            "search_space": {"name": space},
            "protocol": {"lr": lr},
            "metrics": {"skdt_threshold": 0.001},
            "experiment": {"name": "lr_ablation", "table": "11", "factors": ["protocol.lr"]},
        },
    }
    if status == "completed":
        rec.update(
            metrics={
                "supernet_acc_mean": acc,
                "supernet_acc_std": 0.1,
                "kendall_tau": 0.5,
                "sparse_kendall_tau": 0.5 - skdt_shift,
                "spearman": 0.6,
                "sparse_spearman": 0.6,
                "p_beat_random": 0.9,
                "final_performance": 0.93 - skdt_shift,
            },
            untrained=acc < 0.4,
            archs=[
                {"key": str(i), "supernet_acc": float(a), "gt_acc": float(b)}
                for i, (a, b) in enumerate(zip(s, g, strict=True))
            ],
        )
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def results(*args: str) -> subprocess.CompletedProcess:
    """``python -m nasheur.results ...`` as a user runs it."""
    return subprocess.run(
        [PYTHON, "-m", "nasheur.results", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(folder: Path, records: list[dict]) -> Path:
    for i, r in enumerate(records):
        (folder / f"job{i}").mkdir(parents=True)
        (folder / f"job{i}" / "metrics.json").write_text(json.dumps(r))
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    recs = [record("nb201", s, lr) for lr in (0.025, 0.1) for s in range(3)]
    recs += [record("nb101", s, 0.025, acc=0.2) for s in range(3)]  # untrained
    recs += [record("nb101", 0, 0.1), record("nb101", 1, 0.1, status="failed")]  # one failure
    return write(tmp_path / "sweep", recs)


def test_cells_aggregate_seeds_and_mark_what_is_special(sweep):
    table = build_table(load_records([sweep]), "11", bootstrap=50)
    (block,) = table.blocks
    assert block.rows == [(0.025,), (0.1,)] and table.spaces == ["nb101", "nb201"]
    nb201 = block.cells[((0.025,), "nb201")]
    assert nb201.runs == 3 and nb201.mean["supernet_acc_mean"] == pytest.approx(0.7)
    lo, hi = nb201.ci["sparse_kendall_tau"]
    assert -1 <= lo <= hi <= 1
    assert block.cells[((0.025,), "nb101")].untrained == 3
    partial = block.cells[((0.1,), "nb101")]
    assert partial.runs == 1 and partial.failed == 1
    md = to_markdown(table)
    assert "†" in md and "(n=1)" in md and "1 failed run(s) left out" in md
    assert "Learning rate" in md and "no runs of +experiment=bn_ablation" in md


def test_a_missing_cell_is_shown_as_missing(tmp_path):
    recs = [record("nb201", s, 0.025) for s in range(3)] + [record("nb101", 0, 0.1)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    row = next(line for line in to_markdown(table).splitlines() if line.startswith("| lr=0.1"))
    assert row.count("—") == 4  # NB201 has no lr=0.1 run: its four columns are missing


def test_csv_and_latex_carry_the_same_numbers(sweep):
    table = build_table(load_records([sweep]), "11", bootstrap=0)
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert len(rows) == 4  # 2 settings x 2 spaces
    cell = next(r for r in rows if r["row"] == "lr=0.025" and r["space"] == "nb201")
    assert float(cell["supernet_acc_mean_mean"]) == pytest.approx(0.7) and cell["runs"] == "3"
    tex = to_latex(table)
    assert r"\begin{tabular}" in tex and "0.700" in tex and r"$\pm$" in tex
    # LaTeX reads % as a comment (it would swallow the row's \\) and # as a macro argument;
    # after the tabular, the legend and the notes are comments of their own lines
    body, _, after = tex.partition("\\end{tabular}\n")
    assert r"Final perf. (\%)" in body and not re.search(r"(?<!\\)[%#]", body)
    assert after and all(line.startswith("% ") for line in after.splitlines())


def test_latex_escapes_every_special_character_once():
    from nasheur.results.render import _tex

    assert _tex("lr (#2) 5% a_b {x} $ & ~^ \\") == (
        r"lr (\#2) 5\% a\_b \{x\} \$ \& \textasciitilde{}\textasciicircum{} \textbackslash{}"
    )
    assert _tex("0.5 ± 0.1 † — P>R") == r"0.5 $\pm$ 0.1 $^\dagger$ -- P$>$R"


def test_table_3_correlates_each_metric_with_final_performance(tmp_path):
    recs = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(6)]
    t3 = correlation_table(load_records([write(tmp_path / "s", recs)]))
    assert t3["nb201"]["sparse_kendall_tau"] == pytest.approx(1.0)  # both fall with the shift
    assert t3["nb201"]["kendall_tau"] is None  # constant across runs: undefined


def test_the_command_writes_every_format_and_survives_a_failed_job(sweep, tmp_path):
    out = tmp_path / "tables"
    proc = subprocess.run(
        [
            PYTHON,
            "-m",
            "nasheur.results",
            "table",
            str(sweep),
            "--table",
            "11",
            "--out",
            str(out),
            "--bootstrap",
            "40",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"table-11.md", "table-11.csv", "table-11.tex"}
    assert "## Table 11" in proc.stdout
    show = results("show", str(sweep))
    assert (
        show.returncode == 0 and "1 failed" in show.stdout and "RuntimeError: boom" in show.stdout
    )


def test_show_of_one_job_prints_its_summary(tmp_path):
    rec = record("embedded", 0, 0.05)
    rec["timing"] = {"wall_seconds": 61.5, "train_images_per_s": 1800.0, "eval_archs_per_s": 5.2}
    folder = write(tmp_path / "job", [rec])
    show = results("show", str(folder))
    assert show.returncode == 0, show.stderr
    for line in ("super-net accuracy  70.00% ± 10.00%", "sparse Kendall tau  0.5000", "61.5 s"):
        assert line in show.stdout


def test_the_figures_command_draws_what_the_runs_allow(sweep, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    proc = subprocess.run(
        [PYTHON, "-m", "nasheur.results", "figures", str(sweep), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert {
        "rank_disorder-nb201.png",
        "rank_disorder-nb201.pdf",
        "accuracy_scatter-nb101.png",
    } <= names
    assert "skipped bn_histograms: no search space" in proc.stderr  # no BN settings to compare
    assert "bn_histograms: bn_histograms" not in proc.stderr  # the name once


def _with(rec: dict, **config: object) -> dict:
    """`rec` with dotted config keys set (``protocol__epochs=1`` sets protocol.epochs)."""
    rec = json.loads(json.dumps(rec))
    for key, value in config.items():
        node = rec["config"]
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return rec


def test_runs_of_another_setting_are_shown_apart_not_averaged(tmp_path):
    # the real sweep, and a one-epoch try of it with worse numbers beside it in the same folder
    main = [_with(record("nb201", s, 0.025), protocol__epochs=400) for s in range(3)]
    debug = [_with(record("nb201", s, 0.025, acc=0.2), protocol__epochs=1) for s in range(2)]
    table = build_table(load_records([write(tmp_path / "s", main + debug)]), "11", bootstrap=0)
    first, second = table.blocks
    assert first.title == "Learning rate" and second.title == "Learning rate [protocol.epochs=1]"
    assert first.cells[((0.025,), "nb201")].runs == 3
    assert first.cells[((0.025,), "nb201")].mean["supernet_acc_mean"] == pytest.approx(0.7)
    assert second.cells[((0.025,), "nb201")].mean["supernet_acc_mean"] == pytest.approx(0.2)
    assert any("shown apart" in n for n in table.notes)
    # the CSV tells the two blocks' rows apart too
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert [(r["row"], r["settings"], r["title"], r["runs"]) for r in rows] == [
        ("lr=0.025", "", "Learning rate", "3"),
        ("lr=0.025", "protocol.epochs=1", "Learning rate [protocol.epochs=1]", "2"),
    ]
    assert rows[0]["sparse_kendall_tau_runs"] == "3"


def test_a_job_found_twice_counts_once(tmp_path):
    recs = [dict(record("nb201", s, 0.025), config_hash=f"h{s}") for s in range(3)]
    recs.append(dict(record("nb201", 0, 0.025, acc=0.1), config_hash="h0"))  # a copy of seed 0
    recs[-1]["status"] = "failed"  # ... left unfinished: the completed one counts
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    cell = table.blocks[0].cells[((0.025,), "nb201")]
    assert (cell.runs, cell.failed) == (3, 0)
    assert cell.mean["supernet_acc_mean"] == pytest.approx(0.7)
    assert any("1 copy(ies) of a job found twice" in n for n in table.notes)
    # copies of another table's jobs are that table's to count
    other = [
        _with(dict(record("nb201", 0, 0.025), config_hash="x"), experiment__name="layers_ablation")
        for _ in range(2)
    ]
    table = build_table(load_records([write(tmp_path / "t", recs + other)]), "11", bootstrap=0)
    assert any("1 copy(ies) of a job found twice" in n for n in table.notes)


def test_completed_copies_that_disagree_say_which_one_counts(tmp_path):
    recs = [dict(record("nb201", s, 0.025), config_hash=f"h{s}") for s in range(3)]
    folder = write(tmp_path / "s", recs)
    same = load_records([folder])
    # a copy made by a sweep (identical) is only counted once; a rerun elsewhere differs
    twin = tmp_path / "s" / "copy" / "metrics.json"
    twin.parent.mkdir()
    twin.write_text((folder / "job1" / "metrics.json").read_text())
    table = build_table(load_records([folder]), "11", bootstrap=0)
    assert not any("different metrics" in n for n in table.notes)
    rerun = json.loads(twin.read_text())
    rerun["metrics"]["sparse_kendall_tau"] += 0.01
    twin.write_text(json.dumps(rerun))
    table = build_table(load_records([folder]), "11", bootstrap=0)
    said = [n for n in table.notes if "different metrics" in n]
    first, other = sorted([str(twin.resolve()), same[1]["path"]])
    assert said == [
        f"job h1 has completed copies with different metrics: counted {first}, not {other}"
    ]


def test_low_fidelity_rows_are_levels_of_each_spaces_baseline(tmp_path):
    # Table 12's batch size: the three spaces' baselines differ (256, 128, 256), so the
    # absolute 128 is NB101's /2 but NB201's baseline; a row is one level in every space
    recs = []
    for space, base in (("nb101", 256), ("nb201", 128), ("darts_nds", 256)):
        for div, acc in ((1, 0.7), (2, 0.5), (4, 0.3)):
            for s in range(3):
                rec = _with(
                    record(space, s, 0.025, acc=acc),
                    fidelity__batch_size=base // div,
                    fidelity__baseline__batch_size=base,
                    experiment__name="batch_size_ablation",
                    experiment__factors=["fidelity.batch_size"],
                )
                recs.append(rec)
    table = build_table(load_records([write(tmp_path / "s", recs)]), "12", bootstrap=0)
    (block,) = table.blocks
    assert block.rows == [("base",), ("base/2",), ("base/4",)]
    for space in ("nb101", "nb201", "darts_nds"):
        assert block.cells[(("base/2",), space)].mean["supernet_acc_mean"] == pytest.approx(0.5)
    md = to_markdown(table)
    assert "| batch_size=base/2 |" in md  # absolute values differ across the spaces
    one = build_table(load_records([write(tmp_path / "one", recs[9:18])]), "12", bootstrap=0)
    assert "| batch_size=base/2 (64) |" in to_markdown(one)  # NB201 alone: 128 / 2


def test_super_net_accuracy_is_shown_with_the_pools_std(sweep):
    # the paper prints super-net accuracy as mean ± std over the pool's architectures (spec 5):
    # every run here has pool std 0.1 and the same mean, so the seeds' std would be 0.00
    md = to_markdown(build_table(load_records([sweep]), "11", bootstrap=0))
    row = next(line for line in md.splitlines() if line.startswith("| lr=0.025"))
    assert "0.700±0.10" in row
    rows = list(csv.DictReader(io.StringIO(to_csv(build_table(load_records([sweep]), "11")))))
    assert float(rows[0]["supernet_acc_std_mean"]) == pytest.approx(0.1)


def _subspace_mean_cell(tmp_path: Path, finals: dict[int, tuple[float, ...]]):
    """Table 5's mean row for NB101 under `disabled`: each seed's final performance in
    sub-spaces 1 to 4 as `finals` gives it."""
    recs = []
    for seed, values in finals.items():
        for sub, final in zip((1, 2, 3, 4), values, strict=True):
            rec = _with(
                record("nb101", seed, 0.025),
                supernet__dynamic_channels="disabled",
                supernet__subspace=sub,
                experiment__name="dynamic_channels_ablation",
                experiment__factors=["supernet.dynamic_channels", "supernet.subspace"],
            )
            rec["metrics"]["final_performance"] = final
            recs.append(rec)
    table = build_table(load_records([write(tmp_path / "s", recs)]), "5", bootstrap=0)
    (block,) = table.blocks
    return block.cells[(("disabled", "mean"), "nb101")]


def test_the_sub_space_mean_is_per_seed_then_over_seeds(tmp_path):
    # four sub-spaces, two seeds: seed 0 gives (0.90, 0.96, 0.90, 0.96), seed 1 gives (0.92,
    # 0.94, 0.92, 0.94); the per-seed means are 0.93 and 0.93, so the std over seeds is 0
    # (over sub-spaces it is not)
    mean = _subspace_mean_cell(tmp_path, {0: (0.90, 0.96) * 2, 1: (0.92, 0.94) * 2})
    assert mean.runs == 2
    assert mean.mean["final_performance"] == pytest.approx(0.93)
    assert mean.std["final_performance"] == pytest.approx(0.0, abs=1e-12)


def test_each_seeds_sub_space_mean_is_a_mean_not_a_median(tmp_path):
    # seed 0 gives (0.90, 0.90, 0.90, 0.98): mean 0.92, median 0.90; seed 1 gives 0.94 in each.
    # Over the seeds: mean 0.93 and std (ddof 0) 0.01 (medians would give 0.92 and 0.02)
    mean = _subspace_mean_cell(tmp_path, {0: (0.90, 0.90, 0.90, 0.98), 1: (0.94,) * 4})
    assert mean.runs == 2
    assert mean.mean["final_performance"] == pytest.approx(0.93)
    assert mean.std["final_performance"] == pytest.approx(0.01)


def test_the_sub_space_mean_over_seeds_is_a_mean_not_a_median(tmp_path):
    # three seeds whose per-seed means (over the four sub-spaces) are 0.90, 0.91 and 0.95:
    # mean 0.92 (the median would be 0.91), std with ddof 0 sqrt((0.0004 + 0.0001 + 0.0009)/3)
    mean = _subspace_mean_cell(tmp_path, {0: (0.90,) * 4, 1: (0.91,) * 4, 2: (0.95,) * 4})
    assert mean.runs == 3
    assert mean.mean["final_performance"] == pytest.approx(0.92)
    assert mean.std["final_performance"] == pytest.approx((0.0014 / 3) ** 0.5)


# ---------------------------------------------------------------------------------------------
# `show`: every job, finished or not; n=1 cells; folders without records


def _sweep_of_every_state(root: Path) -> Path:
    """A sweep folder as a bad night leaves it: sweep.json lists 7 jobs, written as the sweeper
    writes them (relative to where the sweep was launched). 3 completed, 1 failed, 1 killed
    after its checkpoint (no metrics.json), 1 whose folder holds only Hydra's .hydra/, and 1
    that never got a folder."""
    sweep = root / "runs" / "sweeps" / "lr_ablation"
    listed = []
    for seed in range(7):
        name = f"lr=0.1,seed={seed}-hash{seed}"
        folder = sweep / "nb201" / name
        listed.append(
            {
                "overrides": [
                    "search_space=nb201",
                    "protocol.lr=0.1",
                    f"seed={seed}",
                    "+experiment=lr_ablation",
                ],
                "folder": f"runs/sweeps/lr_ablation/nb201/{name}",
                "config_hash": f"hash{seed}",
                "state_at_launch": "new",
                # the last launch was stopped before seed 6 (sbatch refused it, say)
                **({"after": "not run"} if seed == 6 else {}),
                # left to the launch of a sweep beside it, which trains it (nasheur.reuse)
                **({"after": "left to another sweep"} if seed == 5 else {}),
            }
        )
        if seed < 4:
            rec = dict(record("nb201", seed, 0.1), config_hash=f"hash{seed}")
            if seed == 3:
                rec = dict(record("nb201", seed, 0.1, status="failed"), config_hash=f"hash{seed}")
                rec["error"] = "RuntimeError: boom\nthe rest of a long message"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps(rec))
        elif seed == 4:  # killed: a checkpoint, no record
            folder.mkdir(parents=True)
            for name_ in ("checkpoint.pt", "pool.json", "nasheur.log"):
                (folder / name_).write_text("x")
        elif seed == 5:  # composed by Hydra, never started
            (folder / ".hydra").mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"jobs": listed}))
    return sweep


def test_show_lists_the_jobs_that_did_not_complete(tmp_path):
    sweep = _sweep_of_every_state(tmp_path)
    show = results("show", str(sweep))
    assert show.returncode == 0, show.stderr
    out = show.stdout
    assert "7 job(s): 3 completed, 1 failed, 1 without a record, 2 not started" in out
    lines = out.splitlines()
    line = next(x for x in lines if "seed=3-hash3" in x)
    assert "RuntimeError: boom" in line and "the rest" not in out  # the error's first line
    assert "checkpoint.pt" in next(x for x in lines if "seed=4-hash4" in x)
    assert "no job holds the folder: stopped without a record" in out
    five = next(x for x in lines if "seed=5-hash5" in x)
    assert ".hydra/ only" in five and "did not run" not in five
    assert "the last launch left it to another sweep's, to copy it from there" in five
    assert "folder missing; the last launch did not run it" in next(
        x for x in lines if "seed=6-hash6" in x
    )
    assert "seed=0-hash0" not in out  # compact: the completed ones are counted, not listed
    every = results("show", str(sweep), "--all").stdout
    assert "nb201/lr=0.1,seed=0-hash0" in every and "0.700" in every


def test_show_tells_a_running_job_from_a_stopped_one(tmp_path):
    from nasheur.jobguard import hold_folder

    sweep = _sweep_of_every_state(tmp_path)
    stopped = next(sweep.rglob("*seed=4-hash4"))
    failed = next(sweep.rglob("*seed=3-hash3"))  # failed, then run again: running now
    with hold_folder(stopped) as holding, hold_folder(failed):
        holding.note(epoch=7, epochs=50, eta_s=3600)  # as a job does after each epoch
        out = results("show", str(sweep)).stdout
    assert "7 job(s): 3 completed, 2 running, 2 not started" in out
    running = next(x for x in out.splitlines() if "seed=4-hash4" in x)
    assert f"pid {os.getpid()}" in running
    assert "epoch 7/50 done at " in running and "about 1:00:00 of training left" in running
    again = results("show", str(sweep)).stdout  # the lock released: stopped again
    assert "1 failed, 1 without a record" in again
    gone = next(x for x in again.splitlines() if "seed=4-hash4" in x)
    # how far it got, from its lock file; no time left for a job no process runs
    assert "; last heard of: epoch 7/50 done at " in gone and "left" not in gone
    assert "last heard of" not in next(x for x in again.splitlines() if "seed=3-hash3" in x)


def test_show_says_which_not_started_jobs_a_launch_in_progress_has_queued(tmp_path):
    # a SLURM sweep waiting on its pending array tasks: their folders do not exist yet, and
    # sweep.json has no outcome for them; the launch's claims say it submitted them
    from nasheur.reuse import Claims

    sweep = _sweep_of_every_state(tmp_path)
    listed = json.loads((sweep / "sweep.json").read_text())["jobs"]
    for entry in listed:  # seeds 5 and 6: listed by a launch that has not ended
        entry.pop("after", None)
    (sweep / "sweep.json").write_text(json.dumps({"jobs": listed}))
    claims = Claims(sweep.resolve())
    queued, waiting = (sweep.resolve() / "nb201" / f"lr=0.1,seed={s}-hash{s}" for s in (6, 5))
    assert claims.take(queued, "hash6") is None and claims.take(waiting, "hash5") is None
    claims.note_submitted(queued, "hash6", "616_0")
    try:
        lines = results("show", str(sweep)).stdout.splitlines()
    finally:
        claims.release()
    six, five = (next(x for x in lines if f"seed={s}-hash{s}" in x) for s in (6, 5))
    assert (
        f"folder missing; queued: SLURM job 616_0, submitted by the launch in progress (pid {os.getpid()} on "
        in six
    )
    assert f"waiting for its turn in the launch in progress (pid {os.getpid()} on " in five
    # once the launch ended (its claims released), nothing is said of a launch in progress
    again = results("show", str(sweep)).stdout
    assert "launch in progress" not in again and "folder missing" in again


def test_show_says_nothing_of_a_claim_that_a_sibling_sweeps_launch_holds(tmp_path):
    # the claims folder is shared by the sweeps beside each other: a twin's claim, held by
    # another sweep's launch, is not this sweep's job queued (that SLURM job trains the
    # other sweep's folder; this one is copied only when its own sweep launches again)
    from nasheur.reuse import Claims

    sweep = _sweep_of_every_state(tmp_path)
    listed = json.loads((sweep / "sweep.json").read_text())["jobs"]
    for entry in listed:  # its launch ended without writing `after` (killed), say
        entry.pop("after", None)
    (sweep / "sweep.json").write_text(json.dumps({"jobs": listed}))
    sibling = sweep.parent.resolve() / "wd_ablation"
    claims = Claims(sibling)
    twin = sibling / "nb201" / "baseline-hash6"
    assert claims.take(twin, "hash6") is None
    claims.note_submitted(twin, "hash6", "777_3")
    try:
        lines = results("show", str(sweep)).stdout.splitlines()
    finally:
        claims.release()
    six = next(x for x in lines if "seed=6-hash6" in x)
    assert "folder missing" in six and "777_3" not in six and "in progress" not in six, six


def test_show_reads_sweep_json_tolerantly(tmp_path):
    # jobs keyed by folder (launches merged), an absolute folder from another machine, and
    # extra keys: each listed job is found in this sweep folder or counted as not started
    from nasheur.results.collect import NOT_STARTED, find_jobs

    sweep = _sweep_of_every_state(tmp_path)
    listed = json.loads((sweep / "sweep.json").read_text())["jobs"]
    keyed = {f"/cluster/home/me/{j['folder']}": {**j, "launches": 2} for j in listed}
    (sweep / "sweep.json").write_text(json.dumps({"jobs": keyed}))
    jobs, notes = find_jobs([sweep])
    assert not notes and len(jobs) == 7
    assert [j.state for j in jobs].count(NOT_STARTED) == 2
    assert all(j.folder.parent == (sweep / "nb201").resolve() for j in jobs)
    (sweep / "sweep.json").write_text("{not json")
    jobs, notes = find_jobs([sweep])
    assert len(jobs) == 6 and "sweep.json" in notes[0]  # what the folders show, and a note


def test_show_of_a_job_of_a_sweep_is_not_the_one_job_summary(tmp_path):
    # one completed record, but sweep.json lists two more jobs: they are shown, not hidden
    # behind the single job's summary
    sweep = _sweep_of_every_state(tmp_path)
    for folder in sweep.glob("nb201/*"):
        if folder.name != "lr=0.1,seed=0-hash0":
            shutil.rmtree(folder)
    rec = json.loads((sweep / "nb201" / "lr=0.1,seed=0-hash0" / "metrics.json").read_text())
    rec["timing"] = {"wall_seconds": 61.5, "train_images_per_s": 1800.0, "eval_archs_per_s": 5.2}
    (sweep / "nb201" / "lr=0.1,seed=0-hash0" / "metrics.json").write_text(json.dumps(rec))
    show = results("show", str(sweep))
    assert show.returncode == 0, show.stderr
    assert "7 job(s): 1 completed, 6 not started" in show.stdout


def test_show_says_when_a_failed_job_ran_again_since_its_record(tmp_path):
    folder = write(tmp_path / "s", [record("nb201", 0, 0.1, status="failed")]) / "job0"
    (folder / "checkpoint.pt").write_text("x")
    old = (folder / "metrics.json").stat().st_mtime - 60
    os.utime(folder / "metrics.json", (old, old))
    show = results("show", str(tmp_path / "s"))
    assert "run again since this record" in show.stdout


def test_show_says_how_far_a_stopped_job_got_and_where_its_resume_starts(tmp_path):
    # the record's history and checkpoint epoch (run.checkpoint_every_s can leave the
    # checkpoint behind); an older record without `epochs` says nothing of it
    epoch = {"epoch": 1, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5}
    nan_epoch = {**epoch, "train_loss": None, "train_acc": 0.1}

    def stopped(seed: int, status: str, trained: int, **more) -> dict:
        return {**record("nb201", seed, 0.1, status=status), "history": [epoch] * trained, **more}

    recs = [
        stopped(0, "interrupted", 12, epochs=200, checkpoint_epoch=10),
        stopped(1, "failed", 3, epochs=200, checkpoint_epoch=3),
        stopped(2, "interrupted", 2, epochs=200, checkpoint_epoch=0),
        stopped(3, "interrupted", 2),
        # a loss that turned NaN in epoch 1 (written as null): no epoch done, none saved
        {**stopped(4, "failed", 0, epochs=1, checkpoint_epoch=0), "history": [nan_epoch]},
        {
            **stopped(5, "failed", 3, epochs=200, checkpoint_epoch=3),
            "history": [epoch] * 3 + [nan_epoch],
        },
    ]
    lines = results("show", str(write(tmp_path / "s", recs)), "--all").stdout.splitlines()
    said = [next(x for x in lines if f"job{i}" in x) for i in range(6)]
    assert "epoch 12/200 done (checkpoint: epoch 10)" in said[0]
    assert "epoch 3/200 done" in said[1] and "checkpoint" not in said[1]
    assert "epoch 2/200 done (no checkpoint yet)" in said[2]
    assert "epoch" not in said[3]
    assert "diverged in epoch 1/1" in said[4] and "done" not in said[4]
    assert "epoch 3/200 done; diverged in epoch 4/200" in said[5]


def test_show_lists_a_few_of_each_state_unless_asked_for_all(tmp_path):
    recs = [record("nb201", s, 0.1, status="failed") for s in range(25)]
    folder = write(tmp_path / "s", recs)
    out = results("show", str(folder)).stdout
    assert "25 job(s): 25 failed" in out and "and 5 more (--all lists them)" in out
    assert results("show", str(folder), "--all").stdout.count("RuntimeError: boom") == 25


def test_a_single_run_has_no_std_over_seeds(tmp_path):
    # n=1: the std over seeds is undefined, not 0; the pool's std (super-net accuracy) is
    # defined for one run and stays
    recs = [record("nb201", s, 0.025) for s in range(3)] + [record("nb201", 0, 0.1)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    one = table.blocks[0].cells[((0.1,), "nb201")]
    assert one.runs == 1 and one.std["final_performance"] is None
    md = to_markdown(table)
    row = next(line for line in md.splitlines() if line.startswith("| lr=0.1 |"))
    assert "| 93.00 (n=1) |" in row and "0.700±0.10 (n=1)" in row
    three = next(line for line in md.splitlines() if line.startswith("| lr=0.025 |"))
    assert "93.00±0.00 |" in three  # three equal runs: std 0, shown
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    cell = next(r for r in rows if r["row"] == "lr=0.1")
    assert cell["final_performance_std"] == "" and cell["supernet_acc_mean_std"] == ""
    assert float(cell["final_performance_mean"]) == pytest.approx(0.93)
    tex = next(x for x in to_latex(table).splitlines() if x.startswith("lr=0.1 &"))
    assert "93.00 (n=1)" in tex and "0.700$\\pm$0.10" in tex


def test_a_sub_space_mean_of_one_seed_has_no_std(tmp_path):
    recs = [
        _with(
            record("nb101", 0, 0.025),
            supernet__dynamic_channels="disabled",
            supernet__subspace=sub,
            experiment__name="dynamic_channels_ablation",
            experiment__factors=["supernet.dynamic_channels", "supernet.subspace"],
        )
        for sub in (1, 2, 3, 4)
    ]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "5", bootstrap=0)
    mean = table.blocks[0].cells[(("disabled", "mean"), "nb101")]
    assert mean.runs == 1 and mean.std["final_performance"] is None


def test_table_and_show_say_when_a_folder_holds_no_records(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    table = results("table", str(empty), "--table", "11")
    assert table.returncode == 1 and "no metrics.json under" in table.stderr
    assert "## Table" not in table.stdout
    show = results("show", str(empty))
    assert show.returncode == 1 and "no jobs under" in show.stderr
    t3 = results("table", str(empty), "--table", "3")
    assert t3.returncode == 1 and "no metrics.json under" in t3.stderr


def test_table_and_show_say_when_every_run_failed(tmp_path):
    recs = [record("nb201", s, 0.1, status="failed") for s in range(2)]
    recs.append(record("nb201", 2, 0.1, status="interrupted"))
    folder = write(tmp_path / "s", recs)
    out = tmp_path / "tables"
    table = results("table", str(folder), "--table", "11", "--out", str(out))
    assert table.returncode == 1
    assert "no completed run: Table 11's 3 run(s) are 2 failed, 1 interrupted" in table.stderr
    assert "show" in table.stderr and not out.exists()  # no empty table written
    t3 = results("table", str(folder), "--table", "3")
    assert t3.returncode == 1 and "no completed run" in t3.stderr
    show = results("show", str(folder))
    assert show.returncode == 0 and "3 job(s): 2 failed, 1 interrupted" in show.stdout
    assert "no job completed" in show.stdout


def test_table_says_when_a_block_has_only_failed_runs(tmp_path):
    ok = [record("nb201", s, 0.1) for s in range(3)]
    bad = [
        _with(record("nb201", s, 0.1, status="failed"), experiment__name="bn_ablation")
        for s in range(2)
    ]
    table = build_table(load_records([write(tmp_path / "s", ok + bad)]), "11", bootstrap=0)
    assert (table.completed, table.unfinished) == (3, 2)
    md = to_markdown(table)
    assert "Batch norm: no completed run, only 2 failed run(s)" in md


def test_table_says_when_no_record_is_of_its_experiments(tmp_path):
    folder = write(tmp_path / "s", [record("nb201", s, 0.1) for s in range(3)])
    table = results("table", str(folder), "--table", "13")
    assert table.returncode == 1 and "is of Table 13's experiments" in table.stderr


def test_an_out_folder_that_cannot_be_written_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    # a read-only --out, a full disk: one line naming the file, not a traceback
    import errno

    import nasheur.results.__main__ as cli

    def refused(path, text):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(cli, "atomic_write_text", refused)
    folder = write(tmp_path / "s", [record("nb201", s, 0.1) for s in range(3)])
    out = tmp_path / "tables"
    assert cli.main(["table", str(folder), "--table", "11", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"nasheur.results: cannot write into {out}: Permission denied" in err


def test_folders_and_records_starting_with_a_tilde_are_under_home(tmp_path, monkeypatch, capsys):
    # quoted, `--record=~/x` or a make variable: no shell expanded the ~, as for --out
    import nasheur.results.__main__ as cli

    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "runs", [record("nb201", s, 0.1) for s in range(3)])
    assert cli.main(["show", "~/runs"]) == 0
    assert "3 job(s): 3 completed" in capsys.readouterr().out
    assert cli.main(["table", "~/runs", "--table", "11", "--bootstrap", "0"]) == 0
    assert "## Table 11" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    figures = ["figures", "--record=~/runs/job0/metrics.json", "--only", "rank_disorder"]
    assert cli.main([*figures, "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "rank_disorder-nb201-job0.png").is_file()


def test_a_table_that_cannot_be_written_whole_leaves_none_of_its_files(
    tmp_path, monkeypatch, capsys
):
    # a disk that fills up after the .md: the new .md beside the earlier .csv and .tex would
    # pass for one table; a write's own error names no file
    import errno

    import nasheur.results.__main__ as cli
    from nasheur.io import atomic_path

    folder = write(tmp_path / "s", [record("nb201", s, 0.1) for s in range(3)])
    out = tmp_path / "tables"
    table = ["table", str(folder), "--out", str(out), "--bootstrap", "0", "--table"]
    assert cli.main([*table, "11"]) == 0 and cli.main([*table, "3"]) == 0
    written = cli.atomic_write_text

    def full(path, text):
        if Path(path).suffix == ".csv":
            with atomic_path(path):  # as a full disk fails its write: no file named
                raise OSError(errno.ENOSPC, "No space left on device")
        written(path, text)

    monkeypatch.setattr(cli, "atomic_write_text", full)
    capsys.readouterr()
    assert cli.main([*table, "11"]) == 2
    err = capsys.readouterr().err
    assert f"nasheur.results: cannot write into {out}: No space left on device" in err
    assert sorted(p.name for p in out.iterdir()) == ["table-3.csv", "table-3.md", "table-3.tex"]


def test_a_table_with_nothing_to_merge_removes_its_earlier_files(tmp_path):
    # `make table-11` writes to one folder: the table of an earlier sweep must not pass for
    # the one that failed to merge; other tables' files stay
    folder = write(tmp_path / "s", [record("nb201", s, 0.1) for s in range(3)])
    out = tmp_path / "tables"
    assert results("table", str(folder), "--table", "11", "--out", str(out)).returncode == 0
    assert results("table", str(folder), "--table", "3", "--out", str(out)).returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    again = results("table", str(empty), "--table", "11", "--out", str(out))
    assert again.returncode == 1
    assert "(removed the earlier table-11.md, table-11.csv, table-11.tex)" in again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["table-3.csv", "table-3.md", "table-3.tex"]


def test_the_show_command_a_table_suggests_can_be_pasted_for_a_folder_with_a_space(tmp_path):
    empty = tmp_path / "my runs"
    empty.mkdir()
    said = results("table", str(empty), "--table", "11").stderr
    assert f"python -m nasheur.results show '{empty}'" in said, said


def test_show_of_a_copied_sweep_looks_in_the_copy(tmp_path):
    # sweep.json names the folders where the sweep ran (absolute here); in a copy of the sweep
    # folder, a job missing from the copy is not started there, even if the original has it
    from nasheur.results.collect import NOT_STARTED, find_jobs

    sweep = _sweep_of_every_state(tmp_path / "cluster")
    listed = json.loads((sweep / "sweep.json").read_text())["jobs"]
    for j in listed:
        j["folder"] = str(tmp_path / "cluster" / j["folder"])
    (sweep / "sweep.json").write_text(json.dumps({"jobs": listed}))
    copy = tmp_path / "laptop" / "lr_ablation"
    shutil.copytree(sweep, copy)
    shutil.rmtree(copy / "nb201" / "lr=0.1,seed=0-hash0")
    jobs, _ = find_jobs([copy])
    assert all(copy.resolve() in j.folder.parents for j in jobs)
    assert [j.folder.name for j in jobs if j.state == NOT_STARTED] == [
        "lr=0.1,seed=0-hash0",
        "lr=0.1,seed=5-hash5",
        "lr=0.1,seed=6-hash6",
    ]


def test_each_experiment_keeps_its_baseline_runs(tmp_path):
    # the baseline job of every one-factor sweep has the same config (the experiment's name is
    # outside a job's identity): each experiment's sweep ran its own, and each table block
    # needs it, while Table 3 counts the job once
    lr = [
        dict(record("nb201", s, lr), config_hash=f"{lr}-{s}")
        for s in range(3)
        for lr in (0.025, 0.1)
    ]
    sampler = [
        _with(
            dict(
                record("nb201", s, 0.025),
                config_hash=f"{0.025 if name == 'random_nas' else name}-{s}",
            ),
            sampler__name=name,
            experiment__name="sampler_ablation",
            experiment__factors=["sampler.name"],
        )
        for s in range(3)
        for name in ("random_nas", "fairnas")
    ]
    table = build_table(load_records([write(tmp_path / "s", lr + sampler)]), "11", bootstrap=0)
    rows = {b.title: {row: c.runs for (row, _), c in b.cells.items()} for b in table.blocks}
    assert rows["Learning rate"] == {(0.025,): 3, (0.1,): 3}
    assert rows["Sampling"] == {("random_nas",): 3, ("fairnas",): 3}
    assert not any("counted once" in n for n in table.notes)
    assert correlation_table(load_records([tmp_path / "s"]))["nb201"]["runs"] == 9


def test_the_main_setting_is_the_real_sweep_not_a_short_try_of_it(tmp_path):
    # as many completed runs each: the one that trained more images per run is the main one
    def run(s, steps, pool):
        rec = _with(record("nb201", s, 0.025), eval__pool_size=pool, run__max_steps_per_epoch=steps)
        rec["history"] = [{"epoch": 1, "images": 32 * (steps or 70)}]
        return rec

    real = [run(s, None, 200) for s in range(3)]
    debug = [run(s, 5, 20) for s in range(3)]  # sorts first: "20" < "200"
    table = build_table(load_records([write(tmp_path / "s", debug + real)]), "11", bootstrap=0)
    first, second = table.blocks
    assert first.title == "Learning rate"
    assert second.title == "Learning rate [eval.pool_size=20, run.max_steps_per_epoch=5]"
    assert "None" not in "".join(b.title for b in table.blocks)


def test_table_3_is_written_in_every_format(tmp_path):
    recs = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(6)]
    write(tmp_path / "s", recs)
    proc = results("table", str(tmp_path / "s"), "--table", "3", "--out", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t" / "table-3.csv").read_text())))
    assert [(r["space"], r["runs"], r["kendall_tau"]) for r in rows] == [("nb201", "6", "")]
    assert float(rows[0]["sparse_kendall_tau"]) == pytest.approx(1.0)
    tex = (tmp_path / "t" / "table-3.tex").read_text()
    assert "\\begin{tabular}" in tex and " & 1.00 & " in tex


# ---------------------------------------------------------------------------------------------
# cells over runs where a metric is undefined; Table 3's runs; records from elsewhere


def test_a_cell_says_over_how_many_runs_an_undefined_metric_is_averaged(tmp_path):
    # a collapsed super-net (all its accuracies equal) has no rank correlation: the mean of the
    # other two runs is not a mean over the cell's three runs, and the cell says so
    recs = [record("nb201", s, 0.025) for s in range(3)]
    recs[2]["metrics"]["sparse_kendall_tau"] = None
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    cell = table.blocks[0].cells[((0.025,), "nb201")]
    assert cell.runs == 3 and cell.counts["sparse_kendall_tau"] == 2
    row = next(x for x in to_markdown(table).splitlines() if x.startswith("| lr=0.025 |"))
    assert "0.500±0.00 (n=2 of 3)" in row
    assert "| 0.900 |" in row  # P>R, defined in all three runs: no count, plain as the paper


@pytest.mark.parametrize("runs", [1, 3])
def test_a_metric_undefined_in_every_run_of_a_cell_reads_na_not_missing(tmp_path, runs):
    # the paper's Table 11 prints N/A for such a cell (lr 0.15 on NB101); "—" is a setting
    # not run, which a collapsed super-net's cell is not
    recs = [record("nb201", s, 0.025) for s in range(runs)]
    for r in recs:
        r["metrics"]["sparse_kendall_tau"] = None
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    row = next(x for x in to_markdown(table).splitlines() if x.startswith("| lr=0.025 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "—" not in cells[1:5]
    assert ("N/A (n=0 of 3)" if runs == 3 else "N/A") in cells
    assert "N/A undefined in every run of the cell" in to_markdown(table)


def test_a_cell_over_more_runs_than_the_papers_three_says_how_many(tmp_path):
    recs = [record("nb201", s, 0.025) for s in range(4)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    row = next(x for x in to_markdown(table).splitlines() if x.startswith("| lr=0.025 |"))
    assert "| 0.900 (n=4) |" in row
    three = build_table(load_records([write(tmp_path / "t", recs[:3])]), "11", bootstrap=0)
    row = next(x for x in to_markdown(three).splitlines() if x.startswith("| lr=0.025 |"))
    assert "| 0.900 |" in row and "(n=" not in row


def test_table_3_counts_untrained_runs(tmp_path):
    # paper: Table 3 is computed "in the same setting as Figure 6", whose caption drops
    # super-nets below 40% "for super-net accuracy", which Table 3 does not correlate. Six
    # trained runs whose S-KdT falls with the final performance, and three untrained runs
    # placed to change that correlation: they count.
    trained = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(6)]
    untrained = [record("nb201", 10 + s, 0.025, acc=0.2) for s in range(3)]
    for i, r in enumerate(untrained):
        r["metrics"]["sparse_kendall_tau"] = 0.9 - 0.1 * i
        r["metrics"]["final_performance"] = 0.80 + 0.01 * i
    t3 = correlation_table(load_records([write(tmp_path / "s", trained + untrained)]))
    assert t3["nb201"]["runs"] == 9 and t3["nb201"]["untrained"] == 3
    every = trained + untrained
    want = stats.spearmanr(
        [r["metrics"]["sparse_kendall_tau"] for r in every],
        [r["metrics"]["final_performance"] for r in every],
    ).statistic
    assert t3["nb201"]["sparse_kendall_tau"] == pytest.approx(want)
    assert want < 0.5  # the six trained runs alone would give 1.0


def test_a_record_without_a_ground_truth_value_does_not_stop_the_table(tmp_path):
    recs = [record("nb201", s, 0.025) for s in range(3)]
    recs[0]["archs"][0]["gt_acc"] = None  # a record written by another tool
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=20)
    lo, hi = table.blocks[0].cells[((0.025,), "nb201")].ci["sparse_kendall_tau"]
    assert -1 <= lo <= hi <= 1


def test_the_sub_space_mean_row_follows_its_sub_spaces(tmp_path):
    def runs(subspaces):
        return [
            _with(
                record("nb101", seed, 0.025),
                supernet__dynamic_channels=dyn,
                supernet__subspace=sub,
                experiment__name="dynamic_channels_ablation",
                experiment__factors=["supernet.dynamic_channels", "supernet.subspace"],
            )
            for seed in (0, 1)
            for dyn, sub in [
                *(("disabled", k) for k in subspaces),
                ("fixed", None),
                ("shuffle", None),
            ]
        ]

    table = build_table(load_records([write(tmp_path / "s", runs((1, 2, 3, 4)))]), "5", bootstrap=0)
    assert table.blocks[0].rows == [  # the paper's order: fixed, shuffle, then disabled
        ("fixed", None),
        ("shuffle", None),
        *(("disabled", k) for k in (1, 2, 3, 4)),
        ("disabled", "mean"),
    ]
    # sub-space 4 not run yet: a mean of 1-3 would look like the whole space's; none is given
    table = build_table(load_records([write(tmp_path / "t", runs((1, 2, 3)))]), "5", bootstrap=0)
    assert ("disabled", "mean") not in table.blocks[0].rows
    assert any("no mean, no seed completed every sub-space (1, 2, 3, 4)" in n for n in table.notes)


def test_a_cell_validated_on_training_images_is_marked(tmp_path):
    # the embedded fallback holds 25% out: a train portion of 0.9 overlaps the validation share
    recs = [record("nb201", s, 0.025) for s in range(3)]
    recs[1]["data"] = {"val_overlaps_train": True}
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    assert table.blocks[0].cells[((0.025,), "nb201")].overlapping == 1
    row = next(x for x in to_markdown(table).splitlines() if x.startswith("| lr=0.025 |"))
    assert "93.00±0.00‡ |" in row
    (cell,) = csv.DictReader(io.StringIO(to_csv(table)))
    assert cell["val_overlaps_train"] == "1"


def test_table_3_leaves_out_a_debug_try_beside_a_sweep(tmp_path):
    # six runs of the sweep and three of a 1-epoch try of it: the try's numbers (placed to
    # reverse the correlation) are another setting, never mixed into Table 3
    sweep = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(6)]
    tries = [_with(record("nb201", 10 + s, 0.025), protocol__epochs=1) for s in range(3)]
    for i, r in enumerate(tries):
        r["metrics"]["sparse_kendall_tau"] = 0.9 - 0.1 * i
        r["metrics"]["final_performance"] = 0.80 + 0.01 * i
    t3 = correlation_table(load_records([write(tmp_path / "s", sweep + tries)]))
    assert (t3["nb201"]["runs"], t3["nb201"]["other_settings"]) == (6, 3)
    assert t3["nb201"]["sparse_kendall_tau"] == pytest.approx(1.0)
    # the same of an experiment without factors (best): its try is another setting too
    for r in sweep + tries:
        r["config"]["experiment"] = {"name": "best", "table": "14", "factors": []}
    t3 = correlation_table(load_records([write(tmp_path / "b", sweep + tries)]))
    assert (t3["nb201"]["runs"], t3["nb201"]["other_settings"]) == (6, 3)
    assert t3["nb201"]["sparse_kendall_tau"] == pytest.approx(1.0)


def test_table_3_picks_the_main_setting_as_fig_6_does_whatever_failed_runs(tmp_path):
    # three runs of the sweep and three of a 1-epoch try, the try with one failed run more:
    # Table 3 ("in the same setting as Figure 6") correlates the runs Fig. 6 compares
    from nasheur.results.figures import _completed
    from nasheur.results.settings import main_settings

    sweep = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(3)]
    for r in sweep:
        r["history"] = [{"images": 10_000}]
    tries = [_with(record("nb201", 10 + s, 0.025), protocol__epochs=1) for s in range(3)]
    tries.append(_with(record("nb201", 13, 0.025, status="failed"), protocol__epochs=1))
    for i, r in enumerate(tries[:3]):
        r["history"] = [{"images": 10}]
        r["metrics"]["sparse_kendall_tau"] = 0.9 - 0.1 * i
        r["metrics"]["final_performance"] = 0.80 + 0.01 * i
    recs = load_records([write(tmp_path / "s", sweep + tries)])
    fig_6 = main_settings(_completed(recs, per_experiment=False))[0]
    assert {r["seed"] for r in fig_6} == {0, 1, 2}
    t3 = correlation_table(recs)
    assert (t3["nb201"]["runs"], t3["nb201"]["other_settings"]) == (3, 3)
    assert t3["nb201"]["sparse_kendall_tau"] == pytest.approx(1.0)
    # and Table 11 shows the sweep as its main block, the try apart (its failed run no tie-break)
    main, other = build_table(recs, "11", bootstrap=0).blocks
    assert other.settings == "protocol.epochs=1"
    (cell,) = main.cells.values()
    assert (cell.runs, cell.failed) == (3, 0)


def test_runs_of_no_experiment_are_all_kept_for_table_3(tmp_path):
    # plain jobs (and `-m` sweeps without +experiment) record the schema's default experiment,
    # {"name": "multirun", "table": null, "factors": []}: nothing says which of them is a try,
    # so each counts, whatever its setting (three learning rates, three epochs here)
    from nasheur.config import ExperimentConfig
    from nasheur.results.settings import experiment_name, main_settings

    plain = {"name": ExperimentConfig().name, "table": None, "factors": []}
    runs = []
    for i in range(6):
        r = _with(record("nb201", i, 0.01 * (i % 3 + 1), skdt_shift=0.01 * i), protocol__epochs=i)
        r["config"]["experiment"] = dict(plain)
        runs.append(r)
    assert plain["name"] == "multirun" and experiment_name(runs[0]) is None
    assert main_settings(runs) == (runs, 0)
    t3 = correlation_table(load_records([write(tmp_path / "s", runs)]))
    assert (t3["nb201"]["runs"], t3["nb201"]["other_settings"]) == (6, 0)
    # an experiment of that name, with a table, is an experiment
    named = {"config": {"experiment": {"name": "multirun", "table": "11", "factors": []}}}
    assert experiment_name(named) == "multirun"


def test_tables_5_6_and_7_split_the_dynamic_channels_sweep(tmp_path):
    # the sweep's three blocks: strategies, disabled sub-spaces, and Table 7's random subsets
    # as large, each of which also evaluated a pool of its sub-space (Table 6's test N); the
    # sparse Kendall taus are set so that every mean can be worked out by hand. The Table 5
    # runs were written before the random subsets existed (two factors, no such key), and
    # their folders sort first.
    old_factors = ["supernet.dynamic_channels", "supernet.subspace"]
    factors = [*old_factors, "supernet.random_subspace"]
    taus = {  # (dynamic channels, random subset, sub-space) -> tau for seed s (and 2nd pool)
        ("fixed", False, None): lambda s: 0.1,
        **{("disabled", False, k): lambda s, k=k: 0.40 + 0.02 * k + 0.01 * s for k in (1, 2, 3, 4)},
        **{("interpolate", True, k): lambda s, k=k: 0.20 + 0.01 * k for k in (1, 2, 3, 4)},
    }
    recs = []
    for (dyn, random_subset, sub), tau in taus.items():
        for seed in (0, 1, 2):
            config = {
                "supernet__dynamic_channels": dyn,
                "supernet__subspace": sub,
                "experiment__name": "dynamic_channels_ablation",
                "experiment__factors": factors if random_subset else old_factors,
            }
            if random_subset:
                config["supernet__random_subspace"] = True
            r = _with(record("nb101", seed, 0.025), **config)
            r["metrics"]["sparse_kendall_tau"] = tau(seed)
            if random_subset:
                second = json.loads(json.dumps(r["metrics"]))
                second["sparse_kendall_tau"] = 0.30 + 0.01 * sub - 0.02 * seed
                r["extra_pools"] = {"subspace": {"metrics": second, "untrained": False}}
            recs.append(r)
    folder = tmp_path / "s"
    for i, r in enumerate(recs):  # the old runs first, as their folder names sort
        job = folder / f"{0 if r['config']['experiment']['factors'] == old_factors else 1}-{i:03d}"
        job.mkdir(parents=True)
        (job / "metrics.json").write_text(json.dumps(r))
    records = load_records([folder])

    t5 = build_table(records, "5", bootstrap=0)
    (b5,) = t5.blocks
    assert b5.rows == [
        ("fixed", None),
        *(("disabled", k) for k in (1, 2, 3, 4)),
        ("disabled", "mean"),
    ]
    mean = b5.cells[(("disabled", "mean"), "nb101")]
    # per seed s: 0.40 + 0.02 * 2.5 + 0.01 s; over s = 0, 1, 2: 0.46
    assert mean.runs == 3 and mean.mean["sparse_kendall_tau"] == pytest.approx(0.46)
    assert not t5.notes

    t7 = build_table(records, "7", bootstrap=0)
    baseline, disabled = t7.blocks
    assert "random subset" in baseline.title and "disabled" in disabled.title
    assert baseline.rows == [*(("interpolate", k) for k in (1, 2, 3, 4)), ("interpolate", "mean")]
    assert disabled.rows == [*(("disabled", k) for k in (1, 2, 3, 4)), ("disabled", "mean")]
    cell = baseline.cells[(("interpolate", "mean"), "nb101")]
    assert cell.mean["sparse_kendall_tau"] == pytest.approx(0.225)
    assert cell.std["sparse_kendall_tau"] == pytest.approx(0.0, abs=1e-12)
    assert not t7.notes

    t6 = build_table(records, "6", bootstrap=0)
    (b6,) = t6.blocks
    assert [b6.labels[row] for row in b6.rows] == [
        "train Y, test Y (dynamic_channels=interpolate)",
        "train Y, test N (dynamic_channels=interpolate)",
        "train N, test N (dynamic_channels=disabled)",
    ]
    taus_6 = [b6.cells[(row, "nb101")].mean["sparse_kendall_tau"] for row in b6.rows]
    # Y/N, the second pools: per seed 0.325 - 0.02 s, then the mean over seeds 0, 1, 2
    assert taus_6 == pytest.approx([0.225, 0.305, 0.46])
    yn = b6.cells[(b6.rows[1], "nb101")]
    assert yn.std["sparse_kendall_tau"] == pytest.approx(np.std([0.325, 0.305, 0.285]))
    assert "| train Y, test N (dynamic_channels=interpolate) | 0.700±0.10 | 0.305±0.02 |" in (
        to_markdown(t6)
    )
    for t in (t5, t6, t7):
        assert to_csv(t) and to_latex(t)

    # a row in which no seed completed every sub-space: there, empty, and said why
    def drop(r):
        return r["config"]["supernet"].get("random_subspace") and (
            r["config"]["supernet"]["subspace"],
            r["seed"],
        ) in {(1, 0), (1, 1), (2, 2)}

    t6 = build_table([r for r in records if not drop(r)], "6", bootstrap=0)
    (b6,) = t6.blocks
    assert b6.rows[:2] == [("Y", "Y", None), ("Y", "N", None)]
    assert (b6.rows[1], "nb101") not in b6.cells
    assert "| train Y, test N | — |" in to_markdown(t6)
    assert any(
        n.startswith("Dynamic channels in training and in testing (NB101): train Y, test N:")
        for n in t6.notes
    )

    # a run written without its second pool: left out of test N, and the table says so;
    # its seed then lacks a sub-space there, and the mean says which seed it left out
    older = json.loads(json.dumps(records))
    first = next(
        r for r in older if r["config"]["supernet"].get("random_subspace") and r["seed"] == 0
    )
    del first["extra_pools"]
    t6 = build_table(older, "6", bootstrap=0)
    assert any("1 completed run(s) have no 'subspace' pool" in n for n in t6.notes)
    assert any("seed(s) 0 lack a sub-space" in n for n in t6.notes)
    (b6,) = t6.blocks
    assert b6.cells[(b6.rows[1], "nb101")].runs == 2


def test_the_bootstrap_draws_what_a_plain_loop_draws():
    # the intervals of resampling runs then architectures, computed draw by draw with scipy
    # from the same random stream, against the table's vectorised bootstrap
    from nasheur import metrics
    from nasheur.results.tables import RANKING, _bootstrap

    recs = [record("nb201", seed, 0.025) for seed in range(3)]
    pools = [
        (
            np.array([a["supernet_acc"] for a in r["archs"]]),
            np.array([a["gt_acc"] for a in r["archs"]]),
        )
        for r in recs
    ]
    rng = np.random.default_rng(7)
    draws = {m: [] for m in RANKING}
    for _ in range(40):
        values = {m: [] for m in RANKING}
        for i in rng.integers(3, size=3):
            s, g = pools[i]
            idx = rng.integers(len(s), size=len(s))
            values["kendall_tau"].append(metrics.kendall_tau(s[idx], g[idx]))
            values["sparse_kendall_tau"].append(metrics.sparse_kendall_tau(s[idx], g[idx]))
            values["spearman"].append(metrics.spearman(s[idx], g[idx]))
            values["sparse_spearman"].append(metrics.sparse_spearman(s[idx], g[idx]))
        for m in RANKING:
            draws[m].append(np.mean(values[m]))
    got = _bootstrap(recs, 40, np.random.default_rng(7))
    for m in RANKING:
        assert got[m] == pytest.approx(tuple(np.percentile(draws[m], [2.5, 97.5])), abs=1e-12)


def test_a_collapsed_run_leaves_the_interval_of_the_others_as_it_was():
    # a run whose accuracies are all equal has no correlation in any resample: the interval
    # is that of the runs where the metric is defined (drawing it among the runs would keep
    # only the draws that miss it, a narrower interval than two seeds allow)
    from nasheur.results.tables import RANKING, _bootstrap

    good = [record("nb201", seed, 0.025) for seed in range(2)]
    collapsed = record("nb201", 2, 0.025)
    for a in collapsed["archs"]:
        a["supernet_acc"] = 0.1
    alone = _bootstrap(good, 200, np.random.default_rng(3))
    with_it = _bootstrap([*good, collapsed], 200, np.random.default_rng(3))
    for m in RANKING:
        assert with_it[m] == alone[m]


def test_a_run_without_its_pool_leaves_the_metrics_it_reports_without_an_interval():
    # the cell's mean counts such a run (a record written elsewhere, no `archs`): an interval
    # over the other runs alone would not be that mean's; a metric it does not report keeps
    # the interval of the runs that do
    from nasheur.results.tables import RANKING, _bootstrap

    good = [record("nb201", seed, 0.025) for seed in range(2)]
    bare = record("nb201", 2, 0.025)
    del bare["archs"]
    bare["metrics"]["spearman"] = None
    got = _bootstrap([*good, bare], 100, np.random.default_rng(3))
    alone = _bootstrap(good, 100, np.random.default_rng(3))
    assert got["spearman"] == alone["spearman"] is not None
    assert all(got[m] is None for m in RANKING if m != "spearman")


def test_runs_of_two_concordant_architectures_have_the_interval_of_perfect_agreement():
    # a resample of a two-architecture pool either draws both (every correlation is 1, the
    # pool agreeing) or one twice (constant: no correlation), so every draw that counts is
    # 1: the interval is (1, 1), and no draw with an undefined run may enter it
    from nasheur.results.tables import RANKING, _bootstrap

    recs = [record("nb201", seed, 0.025) for seed in range(3)]
    for r in recs:
        r["archs"] = [
            {"key": "a", "supernet_acc": 0.5, "gt_acc": 0.8},
            {"key": "b", "supernet_acc": 0.6, "gt_acc": 0.9},
        ]
    got = _bootstrap(recs, 200, np.random.default_rng(0))
    assert got == dict.fromkeys(RANKING, (1.0, 1.0))


def test_a_run_whose_ground_truth_fills_one_bin_is_left_out_of_the_sparse_intervals_only():
    # at its own bin width (0.5) a run's GT accuracies (0.8 to 0.95) share one bin: its sparse
    # correlations are undefined, its plain ones not. The sparse intervals are then those of
    # the other run alone (one run drawn per resample, not three of which two are dropped,
    # which would narrow them by about 1/sqrt(3)); other random streams, so up to noise
    from nasheur.results.tables import _bootstrap

    good = record("nb201", 0, 0.025)
    one_bin = [record("nb201", seed, 0.025) for seed in (1, 2)]
    for r in one_bin:
        r["config"]["metrics"]["skdt_threshold"] = 0.5
    with_them = _bootstrap([good, *one_bin], 1000, np.random.default_rng(0))
    alone = _bootstrap([good], 1000, np.random.default_rng(1))
    for m in ("sparse_kendall_tau", "sparse_spearman"):
        (lo, hi), (lo1, hi1) = with_them[m], alone[m]
        assert 0.85 < (hi - lo) / (hi1 - lo1) < 1.15, (m, with_them[m], alone[m])
        assert lo == pytest.approx(lo1, abs=0.03) and hi == pytest.approx(hi1, abs=0.03)
    assert with_them["kendall_tau"] != alone["kendall_tau"]  # three runs there


def test_a_failed_run_beside_a_cell_leaves_its_interval_as_it_was(tmp_path):
    # the cell's generator comes from its completed runs: a failed try of a job beside them
    # (left out of the cell's values) does not move the interval either
    done = [record("nb201", s, 0.025) for s in range(3)]
    failed = record("nb201", 3, 0.025, status="failed")
    alone = build_table(load_records([write(tmp_path / "a", done)]), "11", bootstrap=50)
    beside = build_table(load_records([write(tmp_path / "b", [*done, failed])]), "11", bootstrap=50)
    key = ((0.025,), "nb201")
    assert beside.blocks[0].cells[key].failed == 1
    assert beside.blocks[0].cells[key].ci == alone.blocks[0].cells[key].ci


def test_the_generator_of_a_cell_does_not_depend_on_the_order_of_its_runs():
    from nasheur.results.tables import cell_rng

    runs = [{**record("nb201", s, 0.025), "config_hash": f"job{s}"} for s in range(3)]
    first = cell_rng(0, runs).random(4)
    assert np.array_equal(first, cell_rng(0, runs[::-1]).random(4))
    assert not np.array_equal(first, cell_rng(0, runs[:2]).random(4))


def test_a_cells_interval_does_not_change_with_other_runs(tmp_path):
    base = [record("nb201", s, 0.025) for s in range(3)]
    other = [record("nb201", s, 0.1) for s in range(3)]
    alone = build_table(load_records([write(tmp_path / "a", base)]), "11", bootstrap=50)
    more = build_table(load_records([write(tmp_path / "b", base + other)]), "11", bootstrap=50)
    key = ((0.025,), "nb201")
    assert alone.blocks[0].cells[key].ci == more.blocks[0].cells[key].ci
    reseeded = build_table(load_records([tmp_path / "a"]), "11", bootstrap=50, seed=1)
    assert reseeded.blocks[0].cells[key].ci != alone.blocks[0].cells[key].ci


def test_every_csv_row_has_every_column(tmp_path):
    recs = [record("nb201", s, 0.025) for s in range(3)] + [record("nb101", 0, 0.1)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    header, *rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert any(r[4] == "0" for r in rows)  # a missing cell: no runs
    assert {len(r) for r in rows} == {len(header)}


def test_another_sweeps_job_of_the_same_config_is_not_this_sweeps(tmp_path):
    # every experiment's baseline job has the same config hash and runs in its own sweep's
    # folder: lr_ablation's seed=6 never ran even though wd_ablation has a job of its hash
    from nasheur.results.collect import NOT_STARTED, find_jobs

    sweep = _sweep_of_every_state(tmp_path)
    other = sweep.parent / "wd_ablation" / "nb201" / "wd=0.0005,seed=6-hash6"
    other.mkdir(parents=True)
    (other / "metrics.json").write_text(
        json.dumps(dict(record("nb201", 6, 0.1), config_hash="hash6"))
    )
    jobs, _ = find_jobs([sweep.parent])
    assert len(jobs) == 8
    assert any(j.state == NOT_STARTED and j.folder.name.endswith("seed=6-hash6") for j in jobs)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda r: r["archs"].__setitem__(3, [1, 2]), "archs[3] is a list, not an object"),
        (
            lambda r: r["archs"][0].__setitem__("gt_acc", "x"),
            "archs[0].gt_acc is 'x', not a number or null",
        ),
        (
            lambda r: r["metrics"].__setitem__("kendall_tau", "0.5x"),
            "metrics.kendall_tau is '0.5x'",
        ),
        (lambda r: r["metrics"].__setitem__("kendall_tau", float("nan")), "is nan, not a number"),
        (lambda r: r.__setitem__("metrics", None), "metrics is null, not an object"),
        (lambda r: r["config"].__setitem__("experiment", "lr"), "config.experiment is a str"),
        (
            lambda r: r["config"]["protocol"].__setitem__("lr", [0.1]),
            "config.protocol.lr is a list, not the value of a factor",
        ),
        (
            lambda r: r["config"]["metrics"].__setitem__("skdt_threshold", -1),
            "config.metrics.skdt_threshold is -1",
        ),
        (lambda r: r.__setitem__("extra_pools", {"subspace": 3}), "extra_pools.subspace is an int"),
        # a percentage where a fraction belongs would merge into the means as a number
        (
            lambda r: r["metrics"].__setitem__("final_performance", 93.1),
            "metrics.final_performance is 93.1, outside [0, 1]",
        ),
        (
            lambda r: r["metrics"].__setitem__("sparse_kendall_tau", -1.5),
            "metrics.sparse_kendall_tau is -1.5, outside [-1, 1]",
        ),
        (
            lambda r: r["archs"][2].__setitem__("supernet_acc", 87.5),
            "archs[2].supernet_acc is 87.5, not a fraction in [0, 1]",
        ),
        (lambda r: r.pop("config"), "config is missing (not a nasheur job's metrics.json?)"),
        (lambda r: r.pop("status"), "status is None, not one of completed, failed, interrupted"),
        # what show, the settings and the sweeper read besides the pools
        (lambda r: r.__setitem__("timing", [1]), "timing is [1], not an object"),
        (lambda r: r.__setitem__("history", 5), "history is 5, not a list"),
        (
            lambda r: r.__setitem__("history", [{"images": "x"}]),
            "history[0] is {'images': 'x'}, not an object with a number of images",
        ),
        (lambda r: r.__setitem__("config_hash", [1]), "config_hash is [1], not a text"),
        (
            lambda r: r.__setitem__("data", {"val_overlaps_train": "false"}),
            "data.val_overlaps_train is 'false', not true or false",
        ),
        (
            lambda r: r["config"]["search_space"].__setitem__("name", [1]),
            "config.search_space.name is [1], not a text",
        ),
        (
            lambda r: r["config"]["experiment"].__setitem__("name", [1]),
            "config.experiment.name is [1], not a text",
        ),
        # a completed run of no known space has no column: it would vanish from the table
        (
            lambda r: r["config"].pop("search_space"),
            "config.search_space.name is missing, not one of nb101, nb201",
        ),
        (
            lambda r: r["config"]["search_space"].__setitem__("name", "nb999"),
            "config.search_space.name is 'nb999', not one of nb101, nb201",
        ),
        (
            lambda r: r.__setitem__("skdt_threshold_recomputed", "x"),
            "skdt_threshold_recomputed is 'x', not a number",
        ),
        (
            lambda r: r.__setitem__("ground_truth", {"fingerprint": {"path": "a\0b"}}),
            "ground_truth.fingerprint.path holds a NUL character",
        ),
        # hand edits that would put a run in a row of its own, or in the default's row
        (
            lambda r: r["config"]["protocol"].__setitem__("lr", "fast"),
            "config.protocol.lr is 'fast', not a value of that key",
        ),
        (
            lambda r: r["config"].pop("protocol"),
            "config.experiment.factors names protocol.lr, which config does not hold",
        ),
        (
            lambda r: r["config"]["experiment"].__setitem__("factors", ["protocol.bn_afine"]),
            "config.experiment.factors names protocol.bn_afine, which config does not hold",
        ),
        # what `show` prints of a run: its seed (--all), the space it searched (one job)
        (lambda r: r.__setitem__("seed", [1]), "seed is [1], not a whole number"),
        (lambda r: r.__setitem__("eval", ["bn"]), "eval is ['bn'], not an object"),
        (
            lambda r: r.__setitem__("eval", {"searched": {"space": "x", "architectures": "9"}}),
            "eval.searched.architectures is '9', not a whole number",
        ),
    ],
)
def test_a_malformed_record_is_named_with_its_key_not_a_traceback(tmp_path, edit, problem):
    recs = [record("nb201", s, 0.025) for s in range(3)]
    edit(recs[1])
    folder = write(tmp_path / "s", recs)
    loaded = load_records([folder])
    assert loaded[1]["status"] == "broken" and problem in loaded[1]["error"]
    assert str(folder / "job1" / "metrics.json") in loaded[1]["error"]
    table = build_table(loaded, "11", bootstrap=10)
    assert table.broken == 1 and table.blocks[0].cells[((0.025,), "nb201")].runs == 2
    show = results("show", str(folder), "--all")
    assert show.returncode == 0 and problem in show.stdout, show.stderr


@pytest.mark.parametrize(
    ("factor", "value", "fits"),
    [
        ("protocol.bn_track", "maybe", False),
        ("protocol.bn_track", 1, False),
        ("protocol.bn_track", True, True),
        ("protocol.epochs", 1.5, False),
        ("protocol.epochs", True, False),
        ("protocol.epochs", 100, True),
        ("protocol.lr", 1, True),
        ("sampler.name", "fairnass", False),
        ("sampler.name", "fairnas", True),
        ("supernet.subspace", None, True),
        ("supernet.subspace", 2, True),
        ("supernet.subspace", "2", False),
        ("fidelity.train_portion", 0.5, True),
    ],
)
def test_a_factors_value_must_be_one_its_key_takes(factor, value, fits):
    from nasheur.results.collect import record_problem

    rec = record("nb201", 0, 0.025)
    node = rec["config"]
    *parents, last = factor.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    rec["config"]["experiment"]["factors"] = [factor]
    problem = record_problem(rec)
    assert (problem is None) == fits, problem


def test_show_all_of_a_record_without_a_seed_says_so(tmp_path):
    folder = write(tmp_path / "s", [dict(record("nb201", 0, 0.1), seed=None)])
    show = results("show", str(folder), "--all")
    assert show.returncode == 0, show.stderr
    assert re.search(r"nb201 +\? +0\.700", show.stdout), show.stdout


def test_show_of_an_older_record_says_n_a_for_what_it_lacks(tmp_path):
    rec = dict(record("nb201", 0, 0.025), timing={"wall_seconds": 12.0})
    show = results("show", str(write(tmp_path / "s", [rec])))
    assert show.returncode == 0, show.stderr
    assert "evaluation          n/a" in show.stdout and "12.0 s" in show.stdout


def test_table_4_has_the_papers_four_groups_each_with_its_reference(tmp_path):
    # the sweep's blocks: batch 256/128/64, then channels, cells and portion at batch 256;
    # the reference (256, 16 channels, 5 cells, 0.9) is one job, shown in each group
    base = {"batch_size": 128, "channels": 16, "layers": 5, "train_portion": 0.9}
    settings = [(256, 16, 5, 0.9), (128, 16, 5, 0.9), (64, 16, 5, 0.9)]
    settings += [(256, 8, 5, 0.9), (256, 4, 5, 0.9), (256, 16, 3, 0.9), (256, 16, 1, 0.9)]
    settings += [(256, 16, 5, 0.5), (256, 16, 5, 0.25)]
    recs = []
    for i, (batch, channels, layers, portion) in enumerate(settings):
        r = _with(
            record("nb201", 0, 0.025),
            fidelity__batch_size=batch,
            fidelity__channels=channels,
            fidelity__layers=layers,
            fidelity__train_portion=portion,
            fidelity__baseline=base,
            experiment={
                "name": "low_fidelity_budget",
                "table": "4",
                "factors": [f"fidelity.{k}" for k in base],
            },
        )
        recs.append(dict(r, config_hash=f"h{i}"))
    table = build_table(load_records([write(tmp_path / "s", recs)]), "4", bootstrap=0)
    groups = {b.title.rpartition(": ")[2]: [b.labels[row] for row in b.rows] for b in table.blocks}
    assert groups == {
        "batch size": [
            "batch_size=base*2 (256)",
            "batch_size=base (128)",
            "batch_size=base/2 (64)",
        ],
        "initial channels": ["channels=base (16)", "channels=base/2 (8)", "channels=base/4 (4)"],
        "repeated cells": ["layers=base (5)", "layers=base-2 (3)", "layers=base-4 (1)"],
        # from the reference down, as the paper's Table 4 (0.75, 0.5, 0.25)
        "train portion": ["train_portion=0.9", "train_portion=0.5", "train_portion=0.25"],
    }
    assert table.spaces == ["nb201"]  # only the spaces the table's experiment ran


@pytest.mark.parametrize(
    ("experiment", "table", "order"),
    [
        ("final_search", "10", ["random_nas", "fairnas"]),
        ("sampler_ablation", "11", ["random_a", "random_nas", "fairnas"]),
    ],
)
def test_rows_name_the_sampler_in_the_papers_order(tmp_path, experiment, table, order):
    recs = [
        _with(
            record("nb201", s, 0.025),
            sampler={"name": name},
            experiment={"name": experiment, "table": table, "factors": ["sampler.name"]},
        )
        for s in range(3)
        for name in sorted(order)  # not the paper's order
    ]
    recs = [dict(r, config_hash=f"h{i}") for i, r in enumerate(recs)]
    built = build_table(load_records([write(tmp_path / "s", recs)]), table, bootstrap=0)
    (block,) = [b for b in built.blocks if b.experiment == experiment]
    assert [block.labels[row] for row in block.rows] == [f"sampler={n}" for n in order]


def test_an_out_that_is_not_a_folder_is_refused_before_merging(sweep, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for out, said in (
        (afile, f"{afile} is not a folder"),
        (afile / "sub", f"{afile / 'sub'}: {afile} is a file, not a folder"),
        ("", "expects a folder, got an empty path"),
    ):
        table = results("table", str(sweep), "--table", "11", "--out", str(out))
        assert table.returncode == 2 and f"argument --out: {said}" in table.stderr
        assert table.stdout == "" and "Traceback" not in table.stderr  # nothing merged
    figs = results("figures", str(sweep), "--out", str(afile))
    assert figs.returncode == 2 and f"argument --out: {afile} is not a folder" in figs.stderr
    assert afile.read_text() == "" and "Traceback" not in figs.stderr


def test_a_path_that_is_not_a_job_is_refused_like_a_missing_one(sweep, tmp_path):
    readme = str(REPO / "README.md")
    show = results("show", readme)
    assert show.returncode == 2 and show.stdout == ""
    assert f"nasheur.results: {readme} is neither a folder nor a metrics.json" in show.stderr
    empty = results("table", "", "--table", "11")
    assert empty.returncode == 2 and "an empty path is neither a folder" in empty.stderr
    missing = tmp_path / "nonexistent"
    for given, said in ((missing, "no such folder or file"), (readme, "is neither a folder")):
        figs = results("figures", str(sweep), "--out", str(tmp_path / "f"), "--record", str(given))
        assert figs.returncode == 2 and f"--record {given}" in figs.stderr and said in figs.stderr
        assert not (tmp_path / "f").exists()  # refused before drawing anything
    one = results("show", str(sweep / "job0" / "metrics.json"))  # a record is a job
    assert one.returncode == 0 and "1 job(s): 1 completed" in one.stdout, one.stderr


def test_a_negative_bootstrap_or_seed_is_an_argument_error(sweep):
    for option in ("--seed", "--bootstrap"):
        table = results("table", str(sweep), "--table", "11", option, "-1")
        assert table.returncode == 2 and f"argument {option}: must be >= 0" in table.stderr
        assert "Traceback" not in table.stderr
    # 1 resample made an "interval" of one value, which could miss the cell's own mean
    for count in ("1", "39"):
        table = results("table", str(sweep), "--table", "11", "--bootstrap", count)
        assert table.returncode == 2 and "must be 0 (no interval) or at least 40" in table.stderr


def test_figures_of_given_jobs_alone_need_no_folders(sweep, tmp_path):
    # the README's form: `figures --record JOB --out DIR`; --record takes the words after it
    out = tmp_path / "f"
    figs = results("figures", "--out", str(out), "--record", str(sweep / "job0"))
    assert figs.returncode == 0, figs.stderr
    drawn = sorted(p.name for p in out.glob("*.png"))
    assert drawn and all(name.endswith("-job0.png") for name in drawn)  # its figures only
    none = results("figures", "--out", str(out))
    assert none.returncode == 2 and "give job or sweep folders, or jobs with --record" in (
        none.stderr
    )


def _composed(experiment: str, space: str, *overrides: str) -> dict:
    """The resolved config a job of `experiment` on `space` records, with `overrides`."""
    from hydra import compose, initialize_config_module

    from nasheur.config import plain, register_configs, register_resolvers, to_config

    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = compose(
            "config", overrides=[f"+experiment={experiment}", f"search_space={space}", *overrides]
        )
    return plain(to_config(cfg))


def _nb201_runs(experiment: str, factor: str, values: tuple[str, ...], *extra: str) -> list[dict]:
    """Records of NB201 runs of `experiment` for seeds 0 and 1 and each of `factor`'s
    `values`, each composed with `extra` overrides."""
    recs = []
    for seed in range(2):
        for value in values:
            r = record("nb201", seed, 0.025)
            r["config"] = _composed(
                experiment, "nb201", f"{factor}={value}", f"seed={seed}", *extra
            )
            recs.append(r)
    return recs


@pytest.mark.parametrize("cut", [True, False])
def test_a_table_says_when_all_runs_of_an_experiment_are_off_its_settings(tmp_path, cut):
    # a whole sweep at 1 epoch is the block's main setting: the note says it is not the
    # experiment's own (NB201 trains 1,000 epochs, Table 14)
    extra = ["protocol.epochs=1", "run.max_steps_per_epoch=5"] if cut else []
    recs = _nb201_runs("bn_ablation", "protocol.bn_track", ("true", "false"), *extra)
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    notes = [n for n in table.notes if "not at the experiment's own settings" in n]
    if not cut:
        assert notes == []
        return
    assert notes == [
        "Batch norm: NAS-Bench-201 runs not at the experiment's own settings: "
        "protocol.epochs=1 (default 1000), run.max_steps_per_epoch=5 (default null)"
    ]


def _experiments_and_spaces() -> list:
    import yaml

    out = []
    for path in sorted((REPO / "conf" / "experiment").glob("*.yaml")):
        spaces = yaml.safe_load(path.read_text())["hydra"]["sweeper"].get("spaces") or ["nb201"]
        out += [
            (path.stem, s) for s in [*spaces, "embedded"] if s != "embedded" or "nb201" in spaces
        ]
    # those whose blocks set keys beyond their factors, and the first of each, in the fast
    # suite; the rest (a minute on 2 cores) in the slow one
    fast = {"best", "final_search", "ops_on_ablation"}
    seen: set[str] = set()
    params = []
    for experiment, space in out:
        quick = experiment in fast or experiment not in seen
        seen.add(experiment)
        params.append(pytest.param(experiment, space, marks=() if quick else pytest.mark.slow))
    return params


def _sweep_configs(args: list[str]) -> list[dict]:
    """The resolved config of each job of the sweep of `args`, as the sweeper composes it."""
    from omegaconf import OmegaConf

    from nasheur.config import plain, to_config
    from tests.test_sweeper import sweeper_for

    sweeper, task = sweeper_for(args)
    configs = []
    for job in sweeper.plan(task):
        cfg = OmegaConf.to_container(
            sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, job)
        )
        cfg.pop("hydra")
        configs.append(plain(to_config(OmegaConf.create(cfg))))
    return configs


@pytest.mark.parametrize(("experiment", "space"), _experiments_and_spaces())
def test_a_sweep_as_the_sweeper_makes_it_is_at_its_experiments_settings(
    experiment, space, tmp_path, monkeypatch
):
    # every job of every experiment, composed as a sweep composes it: no note (the blocks'
    # own keys, e.g. best's sampler or final_search's pool size, are the experiment's)
    from nasheur.results.defaults import off_defaults

    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path))
    configs = _sweep_configs([f"+experiment={experiment}", f"search_space={space}", "seed=0"])
    assert configs
    records = [{"status": "completed", "config": c} for c in configs]
    factors = configs[0]["experiment"]["factors"]
    assert off_defaults(records, experiment, factors) == {}
    # and one key off the experiment's own value is said
    for c in configs:
        c["protocol"]["momentum"] = 0.5
    said = off_defaults(records, experiment, factors)[space]
    assert said == ["protocol.momentum=0.5 (default 0.9)"]


def test_a_key_the_experiments_blocks_set_is_said_where_the_runs_replaced_its_value(
    tmp_path, monkeypatch
):
    # final_search evaluates 100 NB201 architectures (its block's eval.pool_size); a search
    # at 10 is another result, which the note says (the sampler, its factor, is not compared)
    from nasheur.results.defaults import off_defaults

    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path))
    args = ["+experiment=final_search", "search_space=nb201", "seed=0", "eval.pool_size=10"]
    configs = _sweep_configs(args)
    assert {c["eval"]["pool_size"] for c in configs} == {10}
    records = [{"status": "completed", "config": c} for c in configs]
    said = off_defaults(records, "final_search", ["sampler.name"])
    assert said == {"nb201": ["eval.pool_size=10 (the experiment's 100)"]}
    for c in configs:  # the block's value, written as another number type, is that value
        c["eval"]["pool_size"] = 100.0
    assert off_defaults(records, "final_search", ["sampler.name"]) == {}


def test_output_cut_short_by_its_reader_is_no_traceback():
    """`python -m nasheur.results show runs | head`: exit 141 (as on SIGPIPE), nothing said."""
    import subprocess
    import sys

    program = (
        "import sys; from nasheur.io import run_piped; "
        "sys.exit(run_piped(lambda: [print('x' * 99) for _ in range(100_000)] and 0))"
    )
    done = subprocess.run(
        ["bash", "-c", f'{sys.executable} -c "{program}" | head -1; exit ${{PIPESTATUS[0]}}'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 141 and done.stdout == "x" * 99 + "\n"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_a_table_at_another_bin_width_computes_the_sparse_metrics_again(tmp_path):
    # the authors' scripts binned GT at 0.01: the table at that width from the same records,
    # against scipy's tau-b and rho on floor(g / 0.01) computed here
    from nasheur.results.tables import at_threshold

    recs = [record("nb201", s, 0.025) for s in range(3)]
    sweep = write(tmp_path / "s", recs)
    taus, rhos = [], []
    for r in recs:
        s = np.array([a["supernet_acc"] for a in r["archs"]])
        bins = np.floor(np.array([a["gt_acc"] for a in r["archs"]]) / 0.01 + 1e-9)
        taus.append(stats.kendalltau(s, bins).statistic)
        rhos.append(stats.spearmanr(s, bins).statistic)
    out = tmp_path / "t"
    args = ["table", str(sweep), "--table", "11", "--bootstrap", "0", "--out", str(out)]
    proc = results(*args, "--skdt-threshold", "0.01")
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in csv.DictReader((out / "table-11.csv").open()) if r["space"] == "nb201"]
    assert float(row["sparse_kendall_tau_mean"]) == pytest.approx(np.mean(taus), abs=1e-12)
    assert float(row["sparse_spearman_mean"]) == pytest.approx(np.mean(rhos), abs=1e-12)
    assert float(row["kendall_tau_mean"]) == 0.5  # the others are the records' own
    assert "not at the experiment's own settings" not in proc.stdout  # the config is unchanged
    assert "GT bins 0.01 wide (--skdt-threshold)" in (out / "table-11.md").read_text()
    # a second pool is computed again too; a run that did not complete is left as it is
    rec = dict(recs[0], extra_pools={"subspace": {"archs": recs[1]["archs"], "metrics": {}}})
    again = at_threshold(rec, 0.01)
    assert again["extra_pools"]["subspace"]["metrics"]["sparse_kendall_tau"] == pytest.approx(
        taus[1], abs=1e-12
    )
    assert rec["metrics"]["sparse_kendall_tau"] == 0.5  # the record read stays as it was
    failed = record("nb201", 0, 0.025, status="failed")
    assert at_threshold(failed, 0.01) is failed
    bad = results("table", str(sweep), "--table", "11", "--skdt-threshold", "1")
    assert bad.returncode == 2 and "must be a fraction in (0, 1)" in bad.stderr


def test_a_table_at_another_bin_width_says_which_runs_it_cannot_compute_again(tmp_path):
    # a run recorded without its pool's accuracies has no sparse correlation at the new
    # width: the table says so, rather than passing it for a collapsed super-net (N/A)
    recs = [record("nb201", s, 0.025) for s in range(3)]
    del recs[0]["archs"]
    sweep = write(tmp_path / "s", recs)
    proc = results(
        "table", str(sweep), "--table", "11", "--bootstrap", "0", "--skdt-threshold", "0.01"
    )
    assert proc.returncode == 0, proc.stderr
    assert "(n=2 of 3)" in proc.stdout
    said = "1 pool(s) in the folders record fewer than two architectures' accuracies"
    assert said in proc.stdout
    plain = results("table", str(sweep), "--table", "11", "--bootstrap", "0")
    assert "architectures' accuracies" not in plain.stdout  # the records' own values: all 3


def test_one_baseline_held_by_two_experiments_has_one_interval(tmp_path):
    # the same three jobs (one config hash each), copied into lr_ablation's and wd_ablation's
    # sweeps in another order: the same cell values and the same bootstrap interval
    runs = []
    for seed in range(3):
        r = _with(record("nb201", seed, 0.025), protocol__weight_decay=0.003)
        r["config_hash"] = f"job{seed}"
        runs.append(r)
    wd = [json.loads(json.dumps(r)) for r in reversed(runs)]
    for r in wd:
        r["config"]["experiment"] = {
            "name": "wd_ablation",
            "table": "11",
            "factors": ["protocol.weight_decay"],
        }
    write(tmp_path / "lr", runs)
    write(tmp_path / "wd", wd)
    table = build_table(load_records([tmp_path]), "11", bootstrap=50, seed=0)
    cells = [c for b in table.blocks for c in b.cells.values()]
    assert len(cells) == 2 and cells[0].ci == cells[1].ci and cells[0].mean == cells[1].mean
    assert cells[0].ci["sparse_kendall_tau"] is not None


def test_the_csv_counts_failed_and_interrupted_runs_apart(tmp_path):
    runs = [record("nb201", s, 0.025) for s in range(3)]
    runs += [record("nb201", 3, 0.025, status="failed")]
    runs += [record("nb201", 4, 0.025, status="interrupted")]
    table = build_table(load_records([write(tmp_path / "s", runs)]), "11", bootstrap=0)
    (row,) = [r for r in csv.DictReader(io.StringIO(to_csv(table))) if r["space"] == "nb201"]
    assert (row["runs"], row["failed"], row["interrupted"]) == ("3", "1", "1")


def test_the_legend_names_intervals_only_where_there_are_some_and_latex_keeps_it(tmp_path):
    sweep = write(tmp_path / "s", [record("nb201", s, 0.025) for s in range(3)])
    with_ci = build_table(load_records([sweep]), "11", bootstrap=20)
    without = build_table(load_records([sweep]), "11", bootstrap=0)
    assert "[95% bootstrap interval" in to_markdown(with_ci)
    assert "[95% bootstrap interval" not in to_markdown(without)
    tex = to_latex(with_ci).splitlines()
    end = tex.index(r"\end{tabular}")
    comments = tex[end + 1 :]
    assert comments and all(line.startswith("% ") for line in comments)
    assert (
        comments[0].startswith("% super-net accuracy: mean ± std") and "† untrained" in tex[end + 1]
    )
    assert any("no runs of +experiment=bn_ablation" in line for line in comments)  # the notes


def test_a_table_of_a_partial_sweep_says_which_jobs_it_lacks(tmp_path):
    sweep = _sweep_of_every_state(tmp_path)  # lr_ablation: 2 not started, 1 without a record
    proc = results("table", str(sweep.parent), "--table", "11", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert (
        "- 3 job(s) of these sweeps have no metrics.json yet (1 without a record, 2 not "
        "started): their runs are not in the table" in proc.stdout
    )
    # another table's sweeps are not this table's business
    other = results("table", str(sweep.parent), "--table", "13", "--bootstrap", "0")
    assert "have no metrics.json yet" not in other.stdout + other.stderr
    # a job running now has no record yet either
    from nasheur.jobguard import hold_folder

    with hold_folder(next(sweep.rglob("*seed=4-hash4"))):
        held = results("table", str(sweep.parent), "--table", "11", "--bootstrap", "0")
    assert "- 3 job(s) of these sweeps have no metrics.json yet (1 running, 2 not started)" in (
        held.stdout
    )


def test_a_partial_sweep_in_a_folder_of_any_name_still_says_which_jobs_it_lacks(tmp_path):
    # hydra.sweep.dir=<anything>: the jobs sweep.json lists are the experiment's by their
    # +experiment override, not by the folder's name
    sweep = _sweep_of_every_state(tmp_path).rename(tmp_path / "mysweep")
    proc = results("table", str(sweep), "--table", "11", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert "- 3 job(s) of these sweeps have no metrics.json yet" in proc.stdout
    other = results("table", str(sweep), "--table", "13", "--bootstrap", "0")
    assert "have no metrics.json yet" not in other.stdout + other.stderr


def test_a_table_says_that_a_sweep_json_cannot_be_read(tmp_path):
    sweep = _sweep_of_every_state(tmp_path)
    (sweep / "sweep.json").write_text('{"jobs": [')
    proc = results("table", str(sweep), "--table", "11", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert f"- {sweep / 'sweep.json'}: unreadable (JSONDecodeError" in proc.stdout
    assert "the jobs it lists that never started are not counted" in proc.stdout


def test_table_3_and_the_figures_say_what_they_leave_out(tmp_path):
    pytest.importorskip("matplotlib")
    recs = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(4)]
    recs += [record("nb101", 0, 0.025), record("nb201", 9, 0.025, status="failed")]
    folder = write(tmp_path / "s", recs)
    (folder / "job1" / "metrics.json").write_text("{")
    proc = results("table", str(folder), "--table", "3", "--out", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stderr
    said = [
        "1 metrics.json file(s) could not be read",
        "1 failed run(s) left out",
        "NAS-Bench-101: 1 run(s), fewer than the 3 a correlation needs; left out",
    ]
    tex = (tmp_path / "t" / "table-3.tex").read_text()
    for note in said:
        assert f"- {note}" in proc.stdout and f"% {note}" in tex
    figs = results("figures", str(folder), "--out", str(tmp_path / "f"))
    assert "note: 1 metrics.json file(s) could not be read" in figs.stderr
    assert "note: 1 failed run(s) left out" in figs.stderr
    record_given = results(
        "figures", "--out", str(tmp_path / "f"), "--record", str(folder / "job1")
    )
    assert "no completed job's metrics.json there; " in record_given.stderr
    assert "unreadable (JSONDecodeError" in record_given.stderr


def test_table_12_says_which_layers_row_the_other_blocks_run_at(tmp_path):
    # the embedded space: a default super-net of 1 cell per stage, a baseline of 3
    def run(seed: int, experiment: str, factor: str, **config: object) -> dict:
        r = _with(record("embedded", seed, 0.05), fidelity__baseline__layers=3, **config)
        r["config"]["experiment"] = {"name": experiment, "table": "12", "factors": [factor]}
        return r

    runs = [
        run(
            s,
            "portion_ablation",
            "fidelity.train_portion",
            fidelity__layers=1,
            fidelity__train_portion=0.9,
        )
        for s in (0, 1)
    ]
    runs += [
        run(s, "layers_ablation", "fidelity.layers", fidelity__layers=n)
        for s in (0, 1)
        for n in (1, 3)
    ]
    table = build_table(load_records([write(tmp_path / "s", runs)]), "12", bootstrap=0)
    said = [n for n in table.notes if "the other blocks run its default super-net" in n]
    assert said == [
        "Embedded (NB201 cells, procedural): the other blocks run its default super-net of "
        "fidelity.layers=1, the layers row base-2 (1); the layers rows are levels of "
        "fidelity.baseline.layers=3"
    ]
    # at the baseline's depth, nothing to say
    for r in runs:
        r["config"]["fidelity"]["baseline"]["layers"] = 1
    table = build_table(load_records([write(tmp_path / "t", runs)]), "12", bootstrap=0)
    assert not [n for n in table.notes if "the other blocks run" in n]


def test_table_8_by_the_captions_points_to_table_9(tmp_path):
    proc = results("table", str(tmp_path), "--table", "8")
    assert proc.returncode == 2 and "call Table 9: use --table 9" in proc.stderr
    proc = results("table", str(tmp_path), "--table", "2")
    assert (
        proc.returncode == 2 and "choose from 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14" in proc.stderr
    )


def test_jobs_and_values_are_listed_by_the_numbers_in_their_names():
    from nasheur.results.settings import natural_key

    folders = ["epochs=1000,seed=0-a", "epochs=200,seed=10-b", "epochs=200,seed=2-c"]
    assert sorted(folders, key=natural_key) == [folders[2], folders[1], folders[0]]
    assert sorted(["0.1", "1e-4", "0.025", "0.005"], key=natural_key) == [
        "1e-4",
        "0.005",
        "0.025",
        "0.1",
    ]


def test_a_record_that_is_not_utf8_text_is_broken_not_a_traceback(tmp_path):
    folder = write(tmp_path / "s", [record("nb201", s, 0.025) for s in range(2)])
    (folder / "job1" / "metrics.json").write_bytes(b"\xff\xfe{}")
    loaded = load_records([folder])
    assert loaded[1]["status"] == "broken" and "UnicodeDecodeError" in loaded[1]["error"]
    show = results("show", str(folder), "--all")
    assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr


def test_untrained_is_the_accuracy_below_0_4_whatever_the_records_flag_says(tmp_path):
    # README: † marks a super-net accuracy below 0.4; the flag a record carries is derived
    # from it, and a hand-edited or older record may lack it or say otherwise
    recs = [record("nb201", s, 0.025, acc=0.2) for s in range(2)]
    recs += [record("nb201", 2, 0.1, acc=0.8)]
    recs[0].pop("untrained")
    recs[1]["untrained"] = False
    recs[2]["untrained"] = True
    loaded = load_records([write(tmp_path / "s", recs)])
    assert [r["untrained"] for r in loaded] == [True, True, False]
    table = build_table(loaded, "11", bootstrap=0)
    cells = table.blocks[0].cells
    assert cells[((0.025,), "nb201")].untrained == 2 and cells[((0.1,), "nb201")].untrained == 0


def test_table_4s_batch_size_jobs_and_table_12s_are_one_job_in_table_3(tmp_path, monkeypatch):
    # `compensate_epochs=true` prolongs nothing at a reduced batch (fidelity.compensation is 1):
    # Table 4's batch-size job trains what batch_size_ablation's of the same batch and seed
    # trains. Their folder hashes differ (the flag is in it); Table 3 counts the job once.
    # A compensated job (half the channels, twice the epochs) keeps the flag.
    from nasheur.config import config_hash, inert_settings

    monkeypatch.delenv("NASHEUR_GT_NB201", raising=False)
    table = tmp_path / "gt.json"

    def job(experiment: str, *overrides: str) -> dict:
        r = record("nb201", 0, 0.025)
        r["config"] = _composed(experiment, "nb201", "seed=0", *overrides)
        r["config_hash"] = config_hash(r["config"], ground_truth=str(table))
        r["ground_truth"] = {"path": str(table)}  # the file the job read
        return r

    budget = job("low_fidelity_budget", "fidelity.batch_size=128")
    ablation = job("batch_size_ablation", "fidelity.batch_size=128")
    halved = job("low_fidelity_budget", "fidelity.batch_size=256", "fidelity.channels=8")
    assert budget["config"]["fidelity"]["compensate_epochs"] is True
    assert inert_settings(budget["config"]) == {"fidelity.compensate_epochs": False}
    assert inert_settings(ablation["config"]) == inert_settings(halved["config"]) == {}
    smaller = job("batch_size_ablation", "fidelity.batch_size=64")
    jobs = [budget, ablation, halved, smaller]
    assert len({r["config_hash"] for r in jobs}) == 4
    folder = write(tmp_path / "s", jobs)
    assert correlation_table(load_records([folder]))["nb201"]["runs"] == 3
    four = build_table(load_records([folder]), "4", bootstrap=0)  # its own copy
    assert sum(c.runs for b in four.blocks for c in b.cells.values()) == 2
    # a record whose hash its config does not give (another version's, or another file's
    # than the one it names) is counted as written
    budget["config_hash"] = "0123456789ab"
    other = write(tmp_path / "t", jobs)
    assert correlation_table(load_records([other]))["nb201"]["runs"] == 4
    # the ground truth named by the environment, and a copy that did not complete (no
    # record of the file read): every record but Table 4's keeps its stored hash, so the
    # interrupted copy of a job that completed elsewhere is still that job
    monkeypatch.setenv("NASHEUR_GT_NB201", str(table))
    lr = job("lr_ablation", "protocol.lr=0.05")
    lr["config_hash"] = config_hash(lr["config"])
    stopped = dict(lr, status="interrupted")
    del stopped["ground_truth"]
    monkeypatch.delenv("NASHEUR_GT_NB201")  # the tables run elsewhere
    from nasheur.results.settings import distinct_jobs

    assert len(distinct_jobs([lr, stopped])[0]) == 1
    # Table 4's batch-size job under the environment's file is batch_size_ablation's too
    monkeypatch.setenv("NASHEUR_GT_NB201", str(table))
    env_budget, env_ablation = (
        job(e, "fidelity.batch_size=128") for e in ("low_fidelity_budget", "batch_size_ablation")
    )
    for r in (env_budget, env_ablation):
        r["config_hash"] = config_hash(r["config"])
    assert len(distinct_jobs([env_budget, env_ablation])[0]) == 1


def test_a_file_nested_too_deeply_is_unreadable_not_a_traceback(tmp_path):
    # a damaged metrics.json or sweep.json that the JSON decoder cannot descend: a record
    # that cannot be read, a sweep.json noted; a listed folder with a NUL is no folder
    recs = write(tmp_path / "s", [record("nb201", s, 0.025) for s in range(2)])
    (recs / "job1" / "metrics.json").write_text("[" * 200_000)
    (recs / "sweep.json").write_text(json.dumps({"jobs": [{"folder": "a\u0000b"}]}))
    loaded = load_records([recs])
    assert loaded[1]["status"] == "broken" and "nested too deeply" in loaded[1]["error"]
    show = results("show", str(recs), "--all")
    assert show.returncode == 0 and "nested too deeply" in show.stdout, show.stderr
    assert "Traceback" not in show.stderr
    (recs / "sweep.json").write_text("[" * 200_000)
    show = results("show", str(recs), "--all")
    assert show.returncode == 0 and "sweep.json: unreadable" in show.stdout + show.stderr


@pytest.mark.parametrize("path", [5, ["x"], "a\0b"])
def test_a_damaged_fingerprint_counts_as_a_changed_ground_truth(path):
    # the sweeper asks this of every completed record before launching: a damaged one sends
    # the job to run, where its record's problem is named, instead of stopping the sweep
    from nasheur.groundtruth.convert import source_changed

    assert source_changed({"path": path, "stamp": "1-2", "sha256": "0" * 64}) is True


def test_a_cell_is_the_mean_and_the_population_std_over_its_seeds(tmp_path):
    # three seeds: final performance 0.90, 0.93, 0.99; S-KdT 0.2, 0.5, 0.8; P>R 0.5, 0.7, 0.9;
    # super-net accuracy 0.6, 0.7, 0.8 with pool stds 0.1, 0.2, 0.3. By hand: means 0.94,
    # 0.5, 0.7, 0.7, 0.2; population stds (ddof=0, README) sqrt((0.04² + 0.01² + 0.05²) / 3)
    # = sqrt(0.0014) and sqrt((0.3² + 0 + 0.3²) / 3) = sqrt(0.06) (ddof=1: sqrt(0.0021), 0.3)
    recs = [record("nb201", s, 0.025) for s in range(3)]
    for r, final, tau, p, acc, pool in zip(
        recs,
        (0.90, 0.93, 0.99),
        (0.2, 0.5, 0.8),
        (0.5, 0.7, 0.9),
        (0.6, 0.7, 0.8),
        (0.1, 0.2, 0.3),
        strict=True,
    ):
        r["metrics"].update(
            final_performance=final,
            sparse_kendall_tau=tau,
            p_beat_random=p,
            supernet_acc_mean=acc,
            supernet_acc_std=pool,
        )
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    cell = table.blocks[0].cells[((0.025,), "nb201")]
    assert cell.mean["final_performance"] == pytest.approx(0.94)
    assert cell.std["final_performance"] == pytest.approx(0.0014**0.5)
    assert cell.std["sparse_kendall_tau"] == pytest.approx(0.06**0.5)
    row = next(x for x in to_markdown(table).splitlines() if x.startswith("| lr=0.025 |"))
    # the NB201 columns: acc ± the pools' mean std, S-KdT ± std, P>R plain, final % ± std %
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["0.700±0.20", "0.500±0.24", "0.700", "94.00±3.74"]
    (csv_row,) = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert float(csv_row["final_performance_std"]) == pytest.approx(0.0014**0.5)
    assert float(csv_row["supernet_acc_mean_std"]) == pytest.approx((0.02 / 3) ** 0.5)
    assert float(csv_row["supernet_acc_std_mean"]) == pytest.approx(0.2)


def test_table_3_leaves_out_a_space_of_two_runs(tmp_path):
    # README: "A space with fewer than 3 such runs is left out with a note" (two runs always
    # rank-correlate perfectly); three runs are correlated
    from nasheur.results.tables import correlation_notes

    two = load_records([write(tmp_path / "two", [record("nb201", s, 0.025) for s in range(2)])])
    assert correlation_table(two) == {}
    assert "NAS-Bench-201: 2 run(s), fewer than the 3 a correlation needs; left out" in (
        correlation_notes(two)
    )
    recs = [record("nb201", s, 0.025, skdt_shift=0.01 * s) for s in range(3)]
    three = load_records([write(tmp_path / "three", recs)])
    assert correlation_table(three)["nb201"]["runs"] == 3 and not correlation_notes(three)


def test_yes_no_rows_are_spelt_as_the_command_line_spells_them(tmp_path):
    # `protocol.bn_track=true` on the command line, so `bn_track=true` in the row (not Python's
    # `True`), in every format
    recs = [
        _with(
            record("nb201", 0, 0.025),
            protocol__bn_track=track,
            protocol__bn_affine=True,
            experiment__name="bn_ablation",
            experiment__factors=["protocol.bn_track", "protocol.bn_affine"],
        )
        for track in (False, True)
    ]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    md = to_markdown(table)
    assert "| bn_track=false, bn_affine=true |" in md
    assert "| bn_track=true, bn_affine=true |" in md and "True" not in md
    assert [r["row"] for r in csv.DictReader(io.StringIO(to_csv(table)))] == [
        "bn_track=false, bn_affine=true",
        "bn_track=true, bn_affine=true",
    ]


def test_the_main_setting_counts_the_images_of_every_epoch(tmp_path):
    # as many completed runs each, epochs of equal size: a one-epoch try trained 100 images per
    # run, the sweep of 3 epochs 300 (README: "the most training images per run"), so the
    # sweep is the main setting though "1" sorts before "3"
    def run(s, epochs):
        rec = _with(record("nb201", s, 0.025), protocol__epochs=epochs)
        rec["history"] = [{"epoch": e, "images": 100} for e in range(1, epochs + 1)]
        return rec

    recs = [run(s, 1) for s in range(3)] + [run(s, 3) for s in range(3)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    assert [b.title for b in table.blocks] == ["Learning rate", "Learning rate [protocol.epochs=1]"]


@pytest.mark.parametrize(("width", "readable"), [(0, False), (1, False), (0.01, True)])
def test_a_records_bin_width_must_lie_strictly_between_0_and_1(tmp_path, width, readable):
    # metrics.skdt_threshold is a fraction below 1 (README) and a bin of width 0 holds
    # nothing: such a record is unreadable, named by its key
    rec = record("nb201", 0, 0.025)
    rec["config"]["metrics"]["skdt_threshold"] = width
    (loaded,) = load_records([write(tmp_path / "s", [rec])])
    if readable:
        assert loaded["status"] == "completed"
    else:
        assert loaded["status"] == "broken"
        assert (
            f"config.metrics.skdt_threshold is {width}, not a number in (0, 1)" in (loaded["error"])
        )


@pytest.mark.parametrize(
    "metric", ["kendall_tau", "sparse_kendall_tau", "spearman", "sparse_spearman"]
)
def test_a_negative_rank_correlation_is_a_result_not_a_damaged_record(tmp_path, metric):
    # rank correlations lie in [-1, 1] (README): a super-net that ranks backwards is a result,
    # averaged like any other
    recs = [record("nb201", s, 0.025) for s in range(3)]
    recs[1]["metrics"][metric] = -0.4
    loaded = load_records([write(tmp_path / "s", recs)])
    assert [r["status"] for r in loaded] == ["completed"] * 3
    cell = build_table(loaded, "11", bootstrap=0).blocks[0].cells[((0.025,), "nb201")]
    want = {"kendall_tau": 0.5, "sparse_kendall_tau": 0.5}.get(metric, 0.6)
    assert cell.mean[metric] == pytest.approx((2 * want - 0.4) / 3)


def test_the_summary_says_when_the_super_net_is_untrained(tmp_path):
    # README: below 40% mean super-net accuracy the run counts as untrained; the summary says
    # so beside the accuracy (mean ± pool std, in percent)
    from nasheur.results.summary import summary_table

    for acc, said in ((0.2, "20.00% ± 10.00%  (untrained)"), (0.7, "70.00% ± 10.00%")):
        rec = record("nb201", 0, 0.025, acc=acc)
        line = next(x for x in summary_table(rec, tmp_path).splitlines() if "super-net" in x)
        assert line.split("super-net accuracy", 1)[1].strip() == said


def test_the_summary_names_the_part_of_the_space_that_p_r_counts_in(tmp_path):
    # P>R's N is the space searched (README, eval.searched): said where the job searched a
    # part of its space, not where it searched all of it
    from nasheur.results.summary import summary_table

    def p_line(searched: dict) -> str:
        rec = record("nb101", 0, 0.025)
        rec["eval"] = {"searched": searched}
        return next(x for x in summary_table(rec, tmp_path).splitlines() if "P>R" in x)

    part = p_line({"space": "NB101SubSpace(subspace=4)", "architectures": 10467})
    assert part.endswith("0.9000  (among the 10,467 of NB101SubSpace(subspace=4))")
    assert p_line({"space": "nb101", "architectures": 423624}).endswith("0.9000")


def test_the_summary_says_where_an_evaluate_only_job_was_trained(tmp_path):
    # a job that evaluated its twin's super-net records the twin's training speed: the summary
    # names the folder it was trained in beside it
    from nasheur.results.summary import summary_table

    def training_line(rec: dict) -> str:
        return next(x for x in summary_table(rec, tmp_path).splitlines() if "training" in x)

    rec = record("nb201", 0, 0.025)
    rec["timing"] = {"train_images_per_s": 360.0}
    assert training_line(rec).endswith(" 360 images/s")
    rec["trained_in"] = "/runs/sweeps/bn_ablation/a"
    assert training_line(rec).endswith("360 images/s  (in /runs/sweeps/bn_ablation/a)")


def _gt_run(seed: int, shift: float, read: str, named: str | None, status: str = "completed"):
    """An NB201 lr=0.025 run whose config leaves ground_truth.path null: `named`, the file
    $NASHEUR_GT_NB201 named (None: unset), is part of its hash; `read`, the file it read."""
    from nasheur.config import config_hash

    r = record("nb201", seed, 0.025, skdt_shift=shift, status=status)
    r["config"] = _composed("lr_ablation", "nb201", "protocol.lr=0.025", f"seed={seed}")
    r["config_hash"] = config_hash(r["config"], ground_truth=named)
    if status == "completed":
        r["ground_truth"] = {"path": read}
    return r


def test_runs_against_another_ground_truth_file_of_the_environment_are_shown_apart(
    tmp_path, monkeypatch
):
    # $NASHEUR_GT_NB201 named the file: not in the config but in the job's identity (its
    # hash); two files are two settings, never one cell (README "Ground truth"). A failed
    # job, whose record names no file, goes with the file its hash was made with.
    monkeypatch.delenv("NASHEUR_GT_NB201", raising=False)
    a, b = "/data/gtA.csv", "/data/gtB.csv"
    recs = [_gt_run(seed, 0.0, a, a) for seed in range(3)]
    recs += [_gt_run(seed, 0.3, b, b) for seed in range(3)]
    recs.append(_gt_run(3, 0.0, "", a, status="failed"))
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    main, other = table.blocks
    assert other.settings == f"ground_truth.path={b}"
    (cell,) = main.cells.values()
    assert (cell.runs, cell.failed) == (3, 1)
    assert cell.mean["final_performance"] == pytest.approx(0.93)
    (cell,) = other.cells.values()
    assert (cell.runs, cell.failed) == (3, 0)
    assert cell.mean["final_performance"] == pytest.approx(0.63)


def test_a_shipped_ground_truth_read_from_two_installs_is_one_setting(tmp_path, monkeypatch):
    # no file named by the environment: the table the space ships with is read from wherever
    # nasheur is installed (a laptop's clone, a cluster's), which is not part of the hash
    monkeypatch.delenv("NASHEUR_GT_NB201", raising=False)
    recs = [_gt_run(s, 0.0, f"/install{s % 2}/gt.csv", None) for s in range(4)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    (block,) = table.blocks
    (cell,) = block.cells.values()
    assert cell.runs == 4


def test_runs_evaluated_against_other_contents_of_one_file_are_named_in_a_note(tmp_path):
    # the file was replaced and one job was evaluated again (or its evaluation failed):
    # one setting, so one cell, but a note says the cell mixes two versions of the file
    recs = [record("nb201", seed, 0.025) for seed in range(3)]
    for r, sha in zip(recs, ("a" * 64, "b" * 64, "b" * 64), strict=True):
        r["ground_truth"] = {"fingerprint": {"path": "/data/gt.csv", "sha256": sha}}
    folder = write(tmp_path / "s", recs)
    notes = build_table(load_records([folder]), "11", bootstrap=0).notes
    (line,) = [n for n in notes if "versions of" in n]
    assert "2 versions of /data/gt.csv" in line
    assert "sha256 aaaaaaaaaaaa: 1 run(s), sha256 bbbbbbbbbbbb: 2 run(s)" in line
    from nasheur.results.tables import correlation_notes

    (said,) = [n for n in correlation_notes(load_records([folder])) if "versions of" in n]
    assert line.endswith(said)  # Table 3 says it too (a table's note names its block)
    recs[0]["ground_truth"]["fingerprint"]["sha256"] = "b" * 64
    notes = build_table(load_records([write(tmp_path / "t", recs)]), "11", bootstrap=0).notes
    assert not [n for n in notes if "versions of" in n]


def test_a_table_without_a_completed_run_still_says_which_jobs_have_not_ended(tmp_path):
    sweep = _sweep_of_every_state(tmp_path)  # lr_ablation: 2 not started, 1 without a record
    for path in sweep.rglob("metrics.json"):
        rec = json.loads(path.read_text())
        if rec.get("status") == "completed":
            path.write_text(json.dumps({**rec, "status": "failed", "error": "E: x"}))
    for table in ("11", "3"):
        proc = results("table", str(sweep.parent), "--table", table, "--bootstrap", "0")
        assert proc.returncode == 1 and "no completed run" in proc.stderr
        assert (
            "3 job(s) of these sweeps have no metrics.json yet (1 without a record, 2 not "
            "started)" in proc.stderr
        )


def test_failed_runs_do_not_pick_the_main_setting_between_equal_completed_ones(
    tmp_path, monkeypatch
):
    # two ground-truth files, 3 completed runs each and the same training: the tables' main
    # block must be the setting Table 3 and Fig. 6 correlate (chosen from completed runs
    # alone), not the one with a failed run more
    from nasheur.results.settings import main_settings
    from nasheur.results.tables import _correlated_runs

    monkeypatch.delenv("NASHEUR_GT_NB201", raising=False)
    a, b = "/data/gtA.csv", "/data/gtB.csv"
    recs = [_gt_run(s, 0.0, a, a) for s in range(3)] + [_gt_run(s, 0.3, b, b) for s in range(3)]
    recs.append(_gt_run(3, 0.3, "", b, status="failed"))
    recs = load_records([write(tmp_path / "s", recs)])
    done = [r for r in recs if r.get("status") == "completed"]
    chosen = {r["ground_truth"]["path"] for r in main_settings(done)[0]}
    ((_, (_, correlated)),) = _correlated_runs(recs).items()
    assert {r["ground_truth"]["path"] for r in correlated} == chosen
    _, other = build_table(recs, "11", bootstrap=0).blocks
    assert other.settings == f"ground_truth.path={b if chosen == {a} else a}"


def test_a_relative_ground_truth_path_is_the_file_its_job_read(tmp_path, monkeypatch):
    # ground_truth.path=gt.csv from two folders names two files (two hashes): two settings
    from nasheur.config import config_hash

    recs = []
    for folder, shift in (("/clusterA/work", 0.0), ("/home/u/nas", 0.3)):
        monkeypatch.chdir("/")
        for seed in range(2):
            r = record("nb201", seed, 0.025, skdt_shift=shift)
            r["config"] = _composed(
                "lr_ablation",
                "nb201",
                "protocol.lr=0.025",
                f"seed={seed}",
                "ground_truth.path=gt.csv",
            )
            gt = r["config"]["ground_truth"]
            r["config_hash"] = config_hash(
                {**r["config"], "ground_truth": {**gt, "path": f"{folder}/gt.csv"}}
            )
            r["ground_truth"] = {"path": f"{folder}/gt.csv"}
            recs.append(r)
    main, other = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0).blocks
    assert other.settings == "ground_truth.path=/home/u/nas/gt.csv"
    assert [c.runs for c in main.cells.values()] == [2] == [c.runs for c in other.cells.values()]


def test_older_records_of_a_shipped_table_stay_in_one_setting_with_current_ones(tmp_path):
    # a record whose hash this version does not reproduce (an earlier hash rule) names the
    # embedded space's shipped table from another install: never a setting of its own
    from nasheur.config import config_hash

    recs = []
    for seed, install in (
        (0, None),
        (1, None),
        (2, "/old/site-packages"),
        (3, "/old/site-packages"),
    ):
        r = record("embedded", seed, 0.025)
        r["config"] = _composed("lr_ablation", "embedded", "protocol.lr=0.025", f"seed={seed}")
        r["config_hash"] = (
            config_hash(r["config"], ground_truth=None) if install is None else f"0123456789a{seed}"
        )
        where = install or "/work/nasheur/src"
        r["ground_truth"] = {"path": f"{where}/nasheur/groundtruth/embedded/embedded-gt.csv"}
        recs.append(r)
    (block,) = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0).blocks
    assert [c.runs for c in block.cells.values()] == [4]


def test_a_table_whose_sweeps_have_no_record_yet_still_counts_their_jobs(tmp_path):
    # only another table's records have ended: the table's own sweep is still running
    sweep = _sweep_of_every_state(tmp_path)
    for path in sweep.rglob("metrics.json"):
        path.unlink()
    other = record("nb201", 0, 0.1)
    other["config"]["experiment"] = {"name": "ofa_ablation", "table": "13", "factors": []}
    write(tmp_path / "runs" / "sweeps" / "ofa_ablation", [other])
    proc = results("table", str(tmp_path / "runs" / "sweeps"), "--table", "11", "--bootstrap", "0")
    assert proc.returncode == 1 and "is of Table 11's experiments" in proc.stderr
    assert "7 job(s) of these sweeps have no metrics.json yet (1 without a record, 6 not " in (
        proc.stderr
    )


def test_a_missing_runs_path_names_where_nasheur_runs_put_the_runs(tmp_path, monkeypatch, capsys):
    # the README's `results show runs/embedded` with $NASHEUR_RUNS set: the runs are elsewhere
    from nasheur.results.__main__ import main

    moved = tmp_path / "elsewhere"
    (moved / "embedded").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASHEUR_RUNS", str(moved))
    assert main(["show", "runs/embedded"]) == 2
    said = capsys.readouterr().err
    assert "no such folder: runs/embedded" in said
    assert f"$NASHEUR_RUNS={moved}" in said and f"did you mean {moved / 'embedded'}?" in said
    assert main(["table", "runs/sweeps", "--table", "11", "--out", str(tmp_path / "t")]) == 2
    said = capsys.readouterr().err
    assert f"$NASHEUR_RUNS={moved}" in said and "did you mean" not in said  # none there either
    monkeypatch.delenv("NASHEUR_RUNS")  # runs/ is where they go: the plain refusal
    assert main(["show", "runs/embedded"]) == 2
    assert capsys.readouterr().err.strip() == "nasheur.results: no such folder: runs/embedded"


@pytest.mark.parametrize("named", ["absolute", "link"])
def test_a_missing_runs_path_gives_no_hint_where_nasheur_runs_is_runs_itself(
    tmp_path, monkeypatch, capsys, named
):
    # $NASHEUR_RUNS naming ./runs by its full path (site.env's NASHEUR_RUNS=$PWD/runs), or the
    # folder that ./runs links to: the runs are under runs/, and the hint would contradict it
    from nasheur.results.__main__ import main

    (tmp_path / "runs").mkdir()
    root = tmp_path / "runs"
    if named == "link":
        root = tmp_path / "scratch"
        root.mkdir()
        (tmp_path / "runs").rmdir()
        (tmp_path / "runs").symlink_to(root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASHEUR_RUNS", str(root))
    assert main(["show", "runs/embedded"]) == 2
    assert capsys.readouterr().err.strip() == "nasheur.results: no such folder: runs/embedded"


@pytest.mark.parametrize(
    ("experiment", "table", "factor", "values", "pools", "apart"),
    [
        # a sweep at the experiment's pool of 200 beside a try with a pool of 20, as many runs
        # of each and as long: the try is the one shown apart, not the sweep at the default
        (
            "bn_ablation",
            "11",
            "protocol.bn_track",
            ("true", "false"),
            ("200", "20"),
            "Batch norm [eval.pool_size=20]: 4 run(s) whose settings differ from the main "
            "sweep's beyond the factors and the seed, shown apart",
        ),
        # Table 10's NB201 block sets a pool of 100 (the baseline's is 200): the sweep at that
        # pool is at the experiment's own settings, a try with a pool of 10 is not, though
        # "10" sorts before "100"
        (
            "final_search",
            "10",
            "sampler",
            ("random_nas", "fairnas"),
            ("100", "10"),
            "Final search [eval.pool_size=10]: 4 run(s) whose settings differ from the main "
            "sweep's beyond the factors and the seed, shown apart",
        ),
    ],
)
def test_among_settings_of_equal_runs_the_main_one_is_the_experiments_own(
    tmp_path, experiment, table, factor, values, pools, apart
):
    recs = [
        r
        for pool in pools
        for r in _nb201_runs(experiment, factor, values, f"eval.pool_size={pool}")
    ]
    built = build_table(load_records([write(tmp_path / "s", recs)]), table, bootstrap=0)
    assert [n for n in built.notes if "shown apart" in n] == [apart]
    assert not [n for n in built.notes if "not at the experiment's own settings" in n]


def test_table_14_gives_each_spaces_layers_with_its_unit(tmp_path):
    # the paper's Table 14 gives NB101 9 layers, NB201 5 and DARTS-NDS 12: NB101's config
    # counts cells per stack (3), which the note must not pass for the paper's 9
    depth = {"nb101": 3, "nb201": 5, "darts_nds": 12}
    recs = [
        _with(
            record(space, s, 0.025),
            fidelity__layers=layers,
            experiment={"name": "best", "table": "14", "factors": []},
        )
        for space, layers in depth.items()
        for s in range(3)
    ]
    notes = build_table(load_records([write(tmp_path / "b", recs)]), "14", bootstrap=0).notes
    said = {m[1]: n for n in notes if (m := re.match(r"Best settings: (.+?) settings: ", n))}
    assert "layers 3 per stack, 9 cells," in said["NAS-Bench-101"]
    assert "layers 5 per stage, 15 cells," in said["NAS-Bench-201"]
    assert "layers 12 cells," in said["DARTS-NDS"]


def test_a_job_running_again_is_not_counted_twice_under_a_table(tmp_path):
    # a failed (or interrupted) job relaunched keeps its record while it runs: the table
    # counts that record as a failed run left out, so the jobs "without a metrics.json yet"
    # must not count it once more (it has one), but say that it runs again
    from nasheur.jobguard import hold_folder

    sweep = _sweep_of_every_state(tmp_path)  # seed 3: failed, with its record
    with hold_folder(next(sweep.rglob("*seed=3-hash3"))):
        held = results("table", str(sweep.parent), "--table", "11", "--bootstrap", "0")
    assert held.returncode == 0, held.stderr
    assert "1 failed run(s) left out" in held.stdout, held.stdout
    assert "- 3 job(s) of these sweeps have no metrics.json yet (1 without a record, 2 not " in (
        held.stdout
    )
    assert "1 job(s) of these sweeps with a failed or interrupted record run again now" in (
        held.stdout
    )
