"""The ablation sweeper in this process, with a stand-in launcher: what it plans, what it
launches and leaves alone, its sweep.json, its summary and its errors (no job trains here;
tests/test_sweep.py and tests/test_slurm.py run real sweeps)."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.nasheur_ablation import ablation_sweeper
from hydra_plugins.nasheur_ablation.ablation_sweeper import (
    AblationSweeper,
    expand,
    merge_manifest,
)
from nasheur.fidelity import level_of, resolve_level
from nasheur.jobguard import CHECKPOINT, hold_folder
from tests.conftest import PYTHON, REPO, TINY_JOB, write_nb201_gt


class StandIn:
    """A launcher that runs nothing: each job's outcome comes from `outcome(overrides)`
    (``completed`` writes a completed metrics.json in the job's folder; ``failed`` a failed
    one and a failed JobReturn; an exception is raised out of launch)."""

    def __init__(self, sweeper: AblationSweeper, outcome=lambda overrides: "completed"):
        self.sweeper = sweeper
        self.outcome = outcome
        self.launched: list[list[str]] = []

    def launch(self, job_overrides, initial_job_idx):
        from nasheur.config import config_hash, plain, to_config

        returns = []
        for overrides in job_overrides:
            self.launched.append(list(overrides))
            what = self.outcome(list(overrides))
            if isinstance(what, BaseException):
                raise what
            loader = self.sweeper.hydra_context.config_loader
            cfg = loader.load_sweep_config(self.sweeper.config, list(overrides))
            folder = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            job = OmegaConf.to_container(cfg, resolve=False)
            job.pop("hydra")
            resolved = plain(to_config(OmegaConf.create(job)))
            folder.mkdir(parents=True, exist_ok=True)
            record = {"status": what, "config_hash": config_hash(resolved), "config": resolved}
            if what == "completed":
                record["metrics"] = {"sparse_kendall_tau": 0.5}
            if what == "failed":
                record["error"] = "RuntimeError: boom"
            (folder / "metrics.json").write_text(json.dumps(record))
            status = JobStatus.COMPLETED if what == "completed" else JobStatus.FAILED
            value = 0.5 if what == "completed" else RuntimeError("boom")
            returns.append(JobReturn(overrides=overrides, status=status, _return_value=value))
        return returns


def sweeper_for(overrides: list[str], outcome=lambda o: "completed", stand_in: bool = True):
    """An AblationSweeper set up as `python -m nasheur <overrides> -m` sets it up, with a
    stand-in launcher (unless `stand_in` is false: the configured one), and the command
    line's task overrides."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import HydraContext, RunMode

    from nasheur.config import register_configs, register_resolvers

    register_configs()
    register_resolvers()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://nasheur.conf"))
    cfg = loader.load_configuration(
        config_name="config", overrides=list(overrides), run_mode=RunMode.MULTIRUN
    )
    sw = cfg.hydra.sweeper
    sweeper = AblationSweeper(
        list(sw.spaces),
        None if sw.seeds is None else list(sw.seeds),
        OmegaConf.to_container(sw.blocks),
        sw.max_batch_size,
        sw.reuse,
        sw.check_data,
        sw.dry_run,
    )
    sweeper.setup(
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(cfg)),
        task_function=lambda c: None,
        config=cfg,
    )
    if stand_in:
        sweeper.launcher = StandIn(sweeper, outcome)
    return sweeper, OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)


def dry_run(overrides: list[str], capsys) -> str:
    """What a dry run of the sweep `overrides` prints (what was printed before is dropped)."""
    capsys.readouterr()
    sweeper, task = sweeper_for([*overrides, "hydra.sweeper.dry_run=true"])
    sweeper.sweep(task)
    return capsys.readouterr().out


@pytest.fixture
def args(tmp_path, monkeypatch) -> list[str]:
    """bn_ablation on NB201, one seed, with a small GT table: 4 jobs."""
    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path / "runs"))
    gt = write_nb201_gt(tmp_path / "gt.csv")
    return ["+experiment=bn_ablation", *TINY_JOB, "seed=0", f"ground_truth.path={gt}"]


def sweep_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "sweeps" / "bn_ablation"


def listed(tmp_path: Path) -> list[dict]:
    return json.loads((sweep_dir(tmp_path) / "sweep.json").read_text())["jobs"]


def keys(job: list[str]) -> list[str]:
    return [o.split("=", 1)[0] for o in job]


# ---------------------------------------------------------------------------------------------
# a factor pinned on the command line


def test_a_pinned_factor_restricts_the_experiments_values(args):
    sweeper, task = sweeper_for([*args, "protocol.bn_track=true"])
    jobs = sweeper.plan(task)
    assert len(jobs) == 2  # bn_track=true x bn_affine=false,true
    for job in jobs:
        assert keys(job).count("protocol.bn_track") == 1, job  # one value, not false and True
        assert "protocol.bn_track=true" in job
    assert sorted(o for job in jobs for o in job if o.startswith("protocol.bn_affine=")) == [
        "protocol.bn_affine=false",
        "protocol.bn_affine=true",
    ]
    # a list restricts to those values; the jobs are the full sweep's own, named alike
    sweeper, task = sweeper_for([*args, "protocol.bn_affine=true,false"])
    both = sweeper.plan(task)
    assert len(both) == 4 and all(keys(j).count("protocol.bn_affine") == 1 for j in both)
    full, task = sweeper_for(args)
    assert sorted(map(sorted, both)) == sorted(map(sorted, full.plan(task)))


def test_a_pinned_factor_takes_levels_and_groups(args):
    sweeper, task = sweeper_for(
        [
            *[a for a in args if a != "+experiment=bn_ablation"],
            "+experiment=layers_ablation",
            "fidelity.baseline.layers=3",
            "fidelity.layers=2",
        ]
    )
    (job,) = sweeper.plan(task)  # base-1 of 3, alone
    assert [o for o in job if o.startswith("fidelity.layers")] == ["fidelity.layers=2"]
    sweeper, task = sweeper_for(
        [
            *[a for a in args if a != "+experiment=bn_ablation"],
            "+experiment=sampler_ablation",
            "sampler=fairnas",
        ]
    )
    (job,) = sweeper.plan(task)
    assert [o for o in job if o.startswith("sampler")] == ["sampler=fairnas"]


def test_a_space_a_pinned_value_leaves_without_jobs_is_named(args, caplog):
    experiment = _other_experiment(args, "final_search")
    sweeper, task = sweeper_for([*experiment, "search_space=nb201,nb101", "eval.pool_size=100"])
    with caplog.at_level(logging.INFO):
        jobs = sweeper.plan(task)
    assert {j[0] for j in jobs} == {"search_space=nb201"}
    assert "search_space nb101: no job has the command line's eval.pool_size=100" in caplog.text


@pytest.mark.parametrize("affine", [False, True])
def test_a_sweep_of_wsbn_where_it_changes_nothing_says_so_before_launching(
    args, affine, caplog, capsys
):
    # WSBN with ops on nodes, BN without affine parameters and batch statistics at evaluation
    # (DARTS-NDS's paper BN, here on NB201): the wsbn=true runs would repeat wsbn=false's
    experiment = _other_experiment(args, "wsbn_ablation")
    affine_is = f"protocol.bn_affine={str(affine).lower()}"
    dry = "hydra.sweeper.dry_run=true"
    sweeper, task = sweeper_for([*experiment, "search_space=nb201", affine_is, dry])
    with caplog.at_level(logging.INFO):
        sweeper.sweep(task)
    capsys.readouterr()
    said = "search_space=nb201: supernet.wsbn=true changes nothing there (protocol.bn_affine="
    assert (said in caplog.text) is not affine


def test_a_key_inside_a_swept_group_is_refused(args):
    # sampler.name=fairnas would sit beside each block's sampler=..., which sets the name
    # again: three jobs of one folder, silently one
    sweeper, task = sweeper_for(
        [*_other_experiment(args, "sampler_ablation"), "sampler.name=fairnas"]
    )
    with pytest.raises(ablation_sweeper.SweepError, match=r"sampler.name: .*sampler=fairnas"):
        sweeper.plan(task)


def test_a_value_goes_back_to_hydra_as_it_came():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nasheur.sweep.plan import format_value

    values = [None, True, False, 3, 0.25, "fairnas"]
    parsed = OverridesParser.create().parse_overrides([f"k={format_value(v)}" for v in values])
    assert [o.value() for o in parsed] == values


def test_levels_resolve_exactly_against_each_spaces_baseline():
    blocks = [
        {"fidelity.train_portion": ["base/2", "base"]},  # a fraction halves: 0.375, not 0
        {"fidelity.layers": ["base+1", "base-2"]},
        {"fidelity.channels": ["base/4", "base*2"]},
    ]
    baselines = {"nb201": {"train_portion": 0.75, "layers": 5, "channels": 36}}
    jobs = expand(["nb201"], [0], blocks, baselines)
    values = sorted(o for job in jobs for o in job if o.startswith("fidelity."))
    assert values == [
        "fidelity.channels=72",
        "fidelity.channels=9",
        "fidelity.layers=3",
        "fidelity.layers=6",
        "fidelity.train_portion=0.375",
        "fidelity.train_portion=0.75",
    ]
    # a width that does not divide names no experiment: refused, not rounded to 4
    # SweepError as the module holds it now: Hydra's plugin scan runs the module again
    with pytest.raises(
        ablation_sweeper.SweepError, match=r"fidelity.channels=base/8: base/8 of 36"
    ):
        expand(["nb201"], [0], [{"fidelity.channels": ["base/8"]}], baselines)


@pytest.mark.parametrize(
    ("text", "base", "how"),
    [
        ("base", 5, "-"),
        ("base-2", 5, "-"),
        ("base+1", 5, "-"),
        ("base/4", 128, "/"),
        ("base*2", 128, "/"),
        ("base/16", 128, "/"),  # two digits
        ("base/36", 36, "/"),  # down to 1
    ],
)
def test_a_tables_level_is_the_level_the_sweep_ran(text, base, how):
    # tables label rows with the level that the sweep resolved (one notation, both ways)
    assert level_of(resolve_level(text, base), base, how) == text


def test_the_log_says_whether_a_pinned_value_restricts_or_replaces_in_the_spaces_swept(
    args, caplog
):
    # final_search lists pool 100 for NB201 alone: swept on NB101 it replaces NB101's values
    # (the pool's default), and the log must not list NB201's 100 as if it restricted them
    experiment = _other_experiment(args, "final_search")
    sweeper, task = sweeper_for([*experiment, "search_space=nb101", "eval.pool_size=100"])
    with caplog.at_level(logging.INFO):
        jobs = sweeper.plan(task)
    assert jobs and all("eval.pool_size=100" in j for j in jobs)
    assert (
        "eval.pool_size: the command line names 100, which replace the experiment's values "
        "(none in search_space nb101)"
    ) in caplog.text
    caplog.clear()
    sweeper, task = sweeper_for([*args, "protocol.bn_track=true"])
    with caplog.at_level(logging.INFO):
        sweeper.plan(task)
    assert (
        "protocol.bn_track: the command line names true, which restrict the experiment's "
        "values (false, true in search_space nb201)"
    ) in caplog.text


def test_a_pinned_value_the_experiment_lists_runs_only_where_it_lists_it(args):
    # epochs 1200 is listed for NB201 alone (its longer block): not run on NB101 too
    base = [a for a in args if a != "+experiment=bn_ablation"]
    plan = [*base, "+experiment=epochs_ablation", "search_space=nb101,nb201"]
    sweeper, task = sweeper_for([*plan, "protocol.epochs=1200"])
    (job,) = sweeper.plan(task)
    assert "search_space=nb201" in job and "protocol.epochs=1200" in job
    # a value the experiment does not list runs in every space, as a replacement
    sweeper, task = sweeper_for([*plan, "protocol.epochs=50"])
    assert sorted(j[0] for j in sweeper.plan(task)) == ["search_space=nb101", "search_space=nb201"]
    # a sub-space: the blocks that sweep it, not the strategies without sub-spaces
    sweeper, task = sweeper_for(
        [
            *base,
            "+experiment=dynamic_channels_ablation",
            "search_space=nb101",
            "supernet.subspace=2",
        ]
    )
    jobs = sweeper.plan(task)
    assert len(jobs) == 2 and all("supernet.subspace=2" in j for j in jobs)
    assert {o for j in jobs for o in j if o.startswith("supernet.dynamic_channels")} == {
        "supernet.dynamic_channels=disabled"  # and the random subset's, at the default
    }
    assert sum("supernet.random_subspace=true" in j for j in jobs) == 1


def test_a_sweep_with_no_job_is_refused_and_leaves_no_folder(args, tmp_path, capsys):
    # two values the experiment lists, in different blocks: no row has both; an empty range of
    # seeds is no seed (not the experiment's three)
    base = [a for a in args if a != "+experiment=bn_ablation"]
    for extra, said in (
        (
            [
                "+experiment=low_fidelity_budget",
                "fidelity.channels=choice(base/2)",
                "fidelity.layers=2",
            ],
            "no job of the sweep has the command line's fidelity.channels=base/2, "
            "fidelity.layers=2: ",
        ),
        (["+experiment=bn_ablation", "seed=range(0,0)"], "seed=range(0,0): names no value"),
        (["+experiment=bn_ablation", "protocol.lr=range(0,0)"], "protocol.lr=range(0,0): names"),
    ):
        for dry in ([], ["hydra.sweeper.dry_run=true"]):
            sweeper, task = sweeper_for([*base, *extra, *dry])
            with pytest.raises(SystemExit) as stop:
                sweeper.sweep(task)
            err = capsys.readouterr().err
            assert stop.value.code == 2, err
            assert err.startswith(f"nasheur: config error: {said}"), err
            assert err.rstrip().endswith("nothing was launched") and sweeper.launcher.launched == []
            assert not (tmp_path / "runs").exists()


def test_a_key_no_block_sweeps_still_applies_to_every_job(args):
    sweeper, task = sweeper_for([*args, "protocol.lr=0.05,0.1"])
    jobs = sweeper.plan(task)
    assert len(jobs) == 8 and all(keys(j).count("protocol.lr") == 1 for j in jobs)


def test_quoted_values_on_the_command_line_are_planned_as_hydra_reads_them(args):
    # Hydra's grammar quotes any value ('fairnas', 'base/2'): the sweeper takes the values,
    # not their quotes (nor an object of the parser's, which no job could compose)
    base = [a for a in args if a not in ("+experiment=bn_ablation", "search_space=nb201")]
    sweeper, task = sweeper_for(
        [
            *base,
            "+experiment=sampler_ablation",
            "search_space='nb201'",
            "sampler='fairnas',random_a",
        ]
    )
    jobs = sweeper.plan(task)
    assert sorted(j[1] for j in jobs) == ["sampler=fairnas", "sampler=random_a"]
    assert all(j[0] == "search_space=nb201" for j in jobs)
    # a level in quotes, on a key the experiment sweeps and on one it does not
    sweeper, task = sweeper_for(
        [
            *base,
            "+experiment=channels_ablation",
            "search_space=nb201",
            "fidelity.channels='base/2','base'",
        ]
    )
    assert sorted(
        o for j in sweeper.plan(task) for o in j if o.startswith("fidelity.channels")
    ) == [
        "fidelity.channels=2",
        "fidelity.channels=4",
    ]
    sweeper, task = sweeper_for(
        [*args, "protocol.bn_track=true", "fidelity.channels='base/2',base"]
    )
    assert sorted(
        o for j in sweeper.plan(task) for o in j if o.startswith("fidelity.channels")
    ) == [
        "fidelity.channels=2",
        "fidelity.channels=2",
        "fidelity.channels=4",
        "fidelity.channels=4",
    ]


# ---------------------------------------------------------------------------------------------
# the end of a sweep, its errors


def test_the_summary_names_each_table_an_experiment_fills(tmp_path):
    from omegaconf import OmegaConf

    from nasheur.sweep.outcomes import summary

    config = OmegaConf.create(
        {"experiment": {"name": "dynamic_channels_ablation", "table": "5,6,7"}}
    )
    lines = summary(config, tmp_path, [], [])
    assert [x.rpartition(" --table ")[2] for x in lines if "--table" in x] == ["5", "6", "7"]


def test_a_sweep_that_succeeds_ends_with_a_summary(args, tmp_path, capsys):
    sweeper, task = sweeper_for(args)
    sweeper.sweep(task)
    out = capsys.readouterr().out
    where = sweep_dir(tmp_path)
    assert "sweep bn_ablation: 4 jobs: 4 completed" in out
    assert f"python -m nasheur.results show {where}" in out
    assert f"python -m nasheur.results table {where} --table 11" in out
    sweeper, task = sweeper_for(args)  # again: nothing to run, the same summary
    sweeper.sweep(task)
    assert sweeper.launcher.launched == []
    assert "4 jobs: 4 completed (4 before this launch)" in capsys.readouterr().out


def test_a_sweep_with_stdout_closed_ends_as_usual(args, monkeypatch):
    # `... -m >&-` (a batch script that closes stdout): Python's sys.stdout is None, print
    # writes nothing, and the summary's flush must not fail the sweep that completed
    sweeper, task = sweeper_for(args)
    monkeypatch.setattr(sys, "stdout", None)
    sweeper.sweep(task)
    assert len(sweeper.launcher.launched) == 4  # its 4 jobs, launched and completed


def test_sweep_errors_are_one_clean_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("NASHEUR_GT_NB201", str(write_nb201_gt(tmp_path / "gt.csv")))
    sweeper, task = sweeper_for(["+experiment=bn_ablation"])
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("nasheur: config error: no ground truth for search_space nb101")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "or restrict the sweep to the others (search_space=nb201)" in err
    assert "no such file" not in err
    # the other's file named but not there: said at once, not after the sweep is restricted
    monkeypatch.setenv("NASHEUR_GT_NB201", str(tmp_path / "missing.csv"))
    sweeper, task = sweeper_for(["+experiment=bn_ablation"])
    with pytest.raises(SystemExit):
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert f"; and no such file: NASHEUR_GT_NB201={tmp_path / 'missing.csv'};" in err
    # an experiment of one space: no other space to restrict it to
    monkeypatch.delenv("NASHEUR_GT_NB101", raising=False)
    sweeper, task = sweeper_for(["+experiment=dynamic_channels_ablation"])
    with pytest.raises(SystemExit):
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert "no ground truth for search_space nb101: set NASHEUR_GT_NB101" in err
    assert "restrict" not in err


def test_the_failure_of_a_sweeps_only_job_is_worded_for_one(args, capsys):
    sweeper, task = sweeper_for(
        [*args, "protocol.bn_track=true", "protocol.bn_affine=true"], lambda o: "failed"
    )
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    assert stop.value.code == 1
    captured = capsys.readouterr()
    assert "1 job: 1 failed" in captured.out and "RuntimeError: boom" in captured.out
    assert "nasheur: 1 of 1 launched job failed" in captured.err
    assert "others" not in captured.err and "retry it" in captured.err


def test_failures_among_others_say_what_the_others_did(args, capsys):
    sweeper, task = sweeper_for(
        args, lambda o: "failed" if "protocol.bn_track=true" in o else "completed"
    )
    with pytest.raises(SystemExit):
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert "2 of 4 launched jobs failed (metrics.json says why; the others completed)" in err
    # a retry as things stand may fail alike (a damaged checkpoint, a NaN loss)
    assert "Run the same command again to retry them once the cause is fixed" in err


def test_a_launcher_that_gives_up_on_a_cancelled_job_is_reported_cleanly(args, capsys):
    from submitit.core.utils import UncompletedJobError

    cancelled = UncompletedJobError(
        "Job 4242_1 (task: 0) with path /x/4242_1_0_result.pkl\n"
        "has not produced any output (state: CANCELLED by 0)\nError stream produced:\n..."
    )
    sweeper, task = sweeper_for(
        args, lambda o: cancelled if "protocol.bn_track=true" in o else "completed"
    )
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "job 4242_1 ended without a result (state: CANCELLED by 0)" in err
    assert "may still be running in SLURM" in err and "Run the same command again" in err
    assert "Error stream" not in err and "Traceback" not in err


def _sbatch_refuses(overrides: list[str]) -> BaseException:
    """sbatch's own error (a bad GRES in site.env), as submitit raises it from the failed
    command: no job reached SLURM."""
    import subprocess

    from submitit.core.utils import FailedJobError

    try:
        raise subprocess.CalledProcessError(1, ["sbatch", "job.sh"])
    except subprocess.CalledProcessError as err:
        refused = FailedJobError("sbatch: error: Invalid generic resource (gres) specification")
        refused.__cause__ = err
        return refused


def test_a_refused_submission_says_that_nothing_was_submitted(args, capsys):
    # no job reached SLURM, so none "may still be running"
    sweeper, task = sweeper_for(args, _sbatch_refuses)
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    assert stop.value.code == 1
    captured = capsys.readouterr()
    assert "4 not run; the scheduler refused the jobs (sbatch: error: Invalid generic" in (
        captured.out
    )
    assert "they were not submitted" in captured.err
    assert "may still be running" not in captured.err + captured.out


def test_each_submitit_job_ended_without_a_result_becomes_a_failed_result():
    # hydra-submitit-launcher waits for its jobs in turn (`[j.results()[0] for j in jobs]`):
    # the first cancelled one must not end the wait for the others
    import submitit
    from submitit.core.utils import UncompletedJobError

    from nasheur.jobguard import NoResult
    from nasheur.sweep.launchers import each_job_settled

    class Job:
        def __init__(self, n):
            self.n = n

        def results(self):
            if self.n == 1:
                raise UncompletedJobError("Job 7_1 (task: 0) with path p\n(state: CANCELLED)")
            return [JobReturn(status=JobStatus.COMPLETED, _return_value=self.n)]

    class Executor:
        def _internal_process_submissions(self, submissions):
            return [Job(n) for n in range(len(submissions))]

    original = submitit.AutoExecutor.map_array
    with each_job_settled():
        jobs = submitit.AutoExecutor.map_array(Executor(), print, [["a=0"], ["a=1"], ["a=2"]])
        results = [j.results()[0] for j in jobs]
    assert submitit.AutoExecutor.map_array is original  # put back
    completed, failed = JobStatus.COMPLETED, JobStatus.FAILED
    assert [r.status for r in results] == [completed, failed, completed]
    assert isinstance(results[1]._return_value, NoResult) and results[1].overrides == ["a=1"]
    assert "job 7_1 ended without a result (state: CANCELLED)" in str(results[1]._return_value)


@pytest.mark.parametrize("cluster", ["slurm", "local"])
@pytest.mark.parametrize("per_task", [1, 2])
def test_each_job_slurm_took_is_handed_on_with_its_slurm_job(cluster, per_task):
    # a claim names the SLURM job of its job (nasheur.reuse): a packed task's jobs share one
    import submitit

    from hydra_plugins.nasheur_ablation.packed_launcher import _packing
    from nasheur.sweep.launchers import each_job_settled

    class Job:
        def __init__(self, n):
            self.job_id = f"9_{n}"

    class Executor:
        def __init__(self):
            self.cluster = cluster

        def _internal_process_submissions(self, submissions):
            return [Job(n) for n in range(len(submissions))]

    got: list = []
    overrides = [[f"a={i}"] for i in range(3)]
    # (overrides, job_dir_key, job_num, job_id, singleton_state), as the launcher builds them
    job_args = [(o, "hydra.sweep.dir", i, f"job_id_for_{i}", {}) for i, o in enumerate(overrides)]
    packing = _packing(per_task) if per_task > 1 else contextlib.nullcontext()
    with each_job_settled(lambda o, job: got.append((list(o), job))), packing:  # in this order
        submitit.AutoExecutor.map_array(Executor(), print, *zip(*job_args, strict=True))
    if cluster != "slurm":
        assert got == []  # a local executor's ids are no SLURM jobs
    elif per_task == 1:
        assert got == [(["a=0"], "9_0"), (["a=1"], "9_1"), (["a=2"], "9_2")]
    else:
        assert got == [(["a=0"], "9_0"), (["a=1"], "9_0"), (["a=2"], "9_1")]


# ---------------------------------------------------------------------------------------------
# a job that another experiment's sweep completed


def _other_experiment(args: list[str], name: str) -> list[str]:
    return [f"+experiment={name}" if a == "+experiment=bn_ablation" else a for a in args]


def test_a_job_another_sweep_completed_is_copied_not_trained(args, tmp_path, capsys):
    # lr_ablation holds the NB201 baseline (lr 0.025, BN track F affine T): bn_ablation's too
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    bn, task = sweeper_for(args)
    bn.sweep(task)
    assert len(bn.launcher.launched) == 3  # of 4: the baseline was copied
    assert not any(
        "protocol.bn_track=false" in j and "protocol.bn_affine=true" in j
        for j in bn.launcher.launched
    )
    (entry,) = [j for j in listed(tmp_path) if "reused_from" in j]
    copy = json.loads((Path(entry["folder"]) / "metrics.json").read_text())
    source = Path(copy["reused_from"])
    assert source.parent.parent == tmp_path / "runs" / "sweeps" / "lr_ablation"
    assert copy["status"] == "completed" and copy["config_hash"] == entry["config_hash"]
    # the copy is this experiment's (its table reads it), the source stays lr_ablation's
    assert copy["config"]["experiment"]["name"] == "bn_ablation"
    original = json.loads((source / "metrics.json").read_text())
    assert "reused_from" not in original
    assert original["config"]["experiment"]["name"] == "lr_ablation"
    out = capsys.readouterr().out
    assert "4 completed (1 copied from other sweeps, where they completed)" in out
    from nasheur.results.__main__ import main as results

    assert results(["show", str(sweep_dir(tmp_path))]) == 0
    shown = capsys.readouterr().out
    assert "4 job(s): 4 completed (1 of them copied from other sweeps" in shown
    # relaunched: the copy is an ordinary completed job of this sweep
    again, task = sweeper_for(args)
    again.sweep(task)
    assert again.launcher.launched == []


def test_a_sweep_folder_of_another_experiment_is_refused(args, tmp_path, capsys):
    # lr_ablation's baseline is bn_ablation's (one config hash): in bn_ablation's folder it
    # would be bn's completed job, its record bn's, and lr_ablation's table would lack it
    bn, task = sweeper_for(args)
    bn.sweep(task)
    before = listed(tmp_path)
    capsys.readouterr()
    into = f"hydra.sweep.dir={sweep_dir(tmp_path)}"
    for extra in (["hydra.sweeper.dry_run=true"], []):
        lr, task = sweeper_for([*_other_experiment(args, "lr_ablation"), into, *extra])
        with pytest.raises(SystemExit) as stop:
            lr.sweep(task)
        assert stop.value.code == 2 and lr.launcher.launched == []
        err = capsys.readouterr().err
        assert f"hydra.sweep.dir={sweep_dir(tmp_path)} holds the sweep of bn_ablation" in err
        assert "sweep lr_ablation into another hydra.sweep.dir" in err
        assert "nothing was launched" in err
    assert listed(tmp_path) == before
    # the same experiment into its own folder, also beside an entry that names no overrides
    # (rebuilt from a folder without Hydra's record), and a command line's own sweep into
    # another's
    merge_manifest(sweep_dir(tmp_path), [{"folder": str(tmp_path / "x"), "overrides": []}])
    again, task = sweeper_for(args)
    again.sweep(task)
    plain = [a for a in args if a != "+experiment=bn_ablation"]
    own, task = sweeper_for([*plain, into])
    with pytest.raises(SystemExit):
        own.sweep(task)
    assert "holds the sweep of bn_ablation" in capsys.readouterr().err


def test_a_job_whose_super_net_another_sweep_trained_only_evaluates_it(
    args, tmp_path, capsys, caplog
):
    # lr_ablation's baseline with a pool of 8 instead of 12: the same training, another
    # evaluation (as Table 10's NB201 jobs, pool 100, are of best's and the baselines')
    import os

    from nasheur.reuse import TRAINED_IN

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"the final checkpoint")
    other = [*args, "eval.pool_size=8"]
    out = dry_run(other, capsys)
    assert f"evaluate (its super-net, trained in {source})" in out
    assert "3 to run, 1 to evaluate" in out
    bn, task = sweeper_for(other)
    with caplog.at_level(logging.INFO):
        bn.sweep(task)
    assert len(bn.launcher.launched) == 4  # launched all the same: it evaluates
    (entry,) = [j for j in listed(tmp_path) if "trained_in" in j]
    folder = Path(entry["folder"])
    assert entry["trained_in"] == str(source) and "bn_affine=true" in folder.name
    assert "lr=" not in folder.name and "reused_from" not in entry
    assert os.path.samefile(folder / "checkpoint.pt", source / "checkpoint.pt")
    note = json.loads((folder / TRAINED_IN).read_text())
    record = json.loads((source / "metrics.json").read_text())
    assert note["source"] == str(source.resolve())
    assert note["config_hash"] == record["config_hash"] != entry["config_hash"]
    assert "4 to run (1 only to evaluate: its super-net trained already)" in (caplog.text)
    # a job this sweep started before (here: completed) is not touched again
    again, task = sweeper_for(other)
    again.sweep(task)
    assert again.launcher.launched == []


def test_another_evaluation_of_a_finished_sweep_evaluates_its_super_nets(args, tmp_path):
    # the same experiment with eval.bn=recalibrate: new jobs in the same sweep folder, whose
    # twins are that folder's own jobs
    bn, task = sweeper_for(args)
    bn.sweep(task)
    for record in sweep_dir(tmp_path).rglob("metrics.json"):
        (record.parent / "checkpoint.pt").write_bytes(b"x")
    again, task = sweeper_for([*args, "eval.bn=recalibrate"])
    again.sweep(task)
    assert len(again.launcher.launched) == 4
    entries = [j for j in listed(tmp_path) if j.get("state_at_launch") == "new"]
    twins = {Path(j["folder"]).name: Path(j.get("trained_in", "")).name for j in entries}
    assert len(twins) == 8 and sum(bool(t) for t in twins.values()) == 4
    for job, twin in twins.items():  # each the twin of its own BN setting
        if twin:
            assert job.rpartition("-")[0] == twin.rpartition("-")[0] and job != twin


def test_a_job_whose_super_net_another_sweep_trains_now_is_said_and_trained(
    args, tmp_path, capsys, caplog
):
    # not waited for (only completed twins give their super-net), but said: launched after
    # that job completed, the sweep would only evaluate it
    from nasheur.config import training_hash

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    config = json.loads((source / "metrics.json").read_text())["config"]
    (source / "metrics.json").unlink()
    other = [*args, "eval.pool_size=8"]
    with hold_folder(source) as holding:
        holding.note(epoch=7, epochs=50, eta_s=3600)
        assert f"its super-net trains now in {source}" not in dry_run(other, capsys)
        holding.record(training=training_hash(config))  # as a job that trains records
        said = f"its super-net trains now in {source} (pid {os.getpid()}"
        out = dry_run(other, capsys)
        assert said in out and "epoch 7/50 done" in out and "4 to run" in out
        bn, task = sweeper_for(other)
        with caplog.at_level(logging.WARNING):
            bn.sweep(task)
    assert len(bn.launcher.launched) == 4 and said in caplog.text
    assert not [j for j in listed(tmp_path) if "trained_in" in j]


def test_a_twin_whose_ground_truth_changed_still_gives_its_super_net(args, tmp_path):
    # its results are stale (it is not copied), its training is not: nor is its ground-truth
    # file hashed again for that
    from nasheur.groundtruth import convert

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"x")
    record = json.loads((source / "metrics.json").read_text())
    stale = {"path": str(tmp_path / "gt.csv"), "stamp": "0-0", "sha256": "0" * 64}
    record["ground_truth"] = {"fingerprint": stale}
    (source / "metrics.json").write_text(json.dumps(record))
    assert convert.source_changed(stale)
    hashed = []
    real = convert.source_sha256
    convert.source_sha256 = lambda path: hashed.append(path) or real(path)
    try:
        bn, task = sweeper_for([*args, "eval.pool_size=8"])
        bn.sweep(task)
    finally:
        convert.source_sha256 = real
    (entry,) = [j for j in listed(tmp_path) if "trained_in" in j]
    assert entry["trained_in"] == str(source) and hashed == []


def test_no_super_net_is_taken_from_a_job_of_another_training(args, tmp_path):
    # only a twin of the same training with its checkpoint gives its super-net, and only
    # where reuse is on
    def evaluating(experiment: str) -> list[str]:
        manifest = tmp_path / "runs" / "sweeps" / experiment / "sweep.json"
        return sorted(
            Path(j["folder"]).name
            for j in json.loads(manifest.read_text())["jobs"]
            if "trained_in" in j
        )

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    wsbn, task = sweeper_for([*_other_experiment(args, "wsbn_ablation"), "eval.pool_size=8"])
    wsbn.sweep(task)
    assert evaluating("wsbn_ablation") == []  # the baseline's twin has no checkpoint.pt
    (_lr_baseline(tmp_path) / "checkpoint.pt").write_bytes(b"x")
    ofa, task = sweeper_for([*_other_experiment(args, "ofa_ablation"), "eval.pool_size=8"])
    ofa.sweep(task)
    assert len(ofa.launcher.launched) == 2
    (baseline,) = evaluating("ofa_ablation")  # the OFA kernel trains another super-net
    assert "ofa_kernel=false" in baseline
    off, task = sweeper_for(
        [
            *_other_experiment(args, "path_dropout_ablation"),
            "eval.pool_size=8",
            "hydra.sweeper.reuse=false",
        ]
    )
    off.sweep(task)
    assert evaluating("path_dropout_ablation") == []


def test_no_copy_when_reuse_is_off(args, tmp_path):
    # (a held twin is waited for, then copied: test_a_job_running_for_a_sweep_that_stopped_…)
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    off, task = sweeper_for([*_other_experiment(args, "ofa_ablation"), "hydra.sweeper.reuse=false"])
    off.sweep(task)
    assert len(off.launcher.launched) == 2  # OFA off (the baseline) and on: both trained


def test_a_single_run_takes_what_the_sweeps_completed(args, tmp_path, caplog):
    # `python -m nasheur` without -m: a sweep's completed job of its config is copied, else a
    # sweep's completed super-net of its training is evaluated; nothing else is taken
    import os

    from nasheur.config import config_hash, training_hash
    from nasheur.jobguard import METRICS
    from nasheur.reuse import TRAINED_IN, reuse_in_single_run

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    config = json.loads((source / METRICS).read_text())["config"]
    sweeps, runs = tmp_path / "runs" / "sweeps", tmp_path / "runs" / "nb201"
    own = runs / f"single-{config_hash(config)}"
    assert reuse_in_single_run(own, config, sweeps) == source
    copied = json.loads((own / METRICS).read_text())
    assert copied["reused_from"] == str(source.resolve())
    assert copied["config_hash"] == config_hash(config)
    # another pool: the same training, which needs the twin's final checkpoint
    other = {**config, "eval": {**config["eval"], "pool_size": 8}}
    assert config_hash(other) != config_hash(config)
    evaluates = runs / f"single-{config_hash(other)}"
    assert reuse_in_single_run(evaluates, other, sweeps) is None
    assert not evaluates.exists()
    (source / CHECKPOINT).write_bytes(b"the final checkpoint")
    assert reuse_in_single_run(evaluates, other, sweeps) == source
    assert os.path.samefile(evaluates / CHECKPOINT, source / CHECKPOINT)
    assert json.loads((evaluates / TRAINED_IN).read_text())["source"] == str(source.resolve())
    assert not (evaluates / METRICS).exists()  # the run evaluates it, and records that
    # a folder that holds a job already keeps it: its checkpoint is resumed
    assert reuse_in_single_run(evaluates, other, sweeps) is None
    mine = runs / "mine"
    mine.mkdir()
    (mine / CHECKPOINT).write_bytes(b"its own")
    assert reuse_in_single_run(mine, config, sweeps) is None
    assert (mine / CHECKPOINT).read_bytes() == b"its own"
    # a training that no sweep completed has no twin
    lr = {**config, "protocol": {**config["protocol"], "lr": 0.0125}}
    assert reuse_in_single_run(runs / "lr", lr, sweeps) is None
    # a sweep's job of its config that runs now: said, and trained here too
    (source / METRICS).unlink()
    with hold_folder(source), caplog.at_level(logging.WARNING):
        assert reuse_in_single_run(runs / "again", config, sweeps) is None
    assert f"this job runs now in a sweep, in {source.parent.parent}" in caplog.text
    assert not (runs / "again").exists()
    # and one of its training (recorded by a job of this version)
    with hold_folder(source) as holding, caplog.at_level(logging.WARNING):
        holding.record(training=training_hash(config))
        assert reuse_in_single_run(runs / "other", other, sweeps) is None
    assert f"its super-net trains now in {source} (pid {os.getpid()}" in caplog.text


def test_a_single_run_that_cannot_read_the_sweeps_runs_as_it_is(tmp_path, monkeypatch, caplog):
    from nasheur import reuse

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "sweeps" / "theirs"))

    monkeypatch.setattr(reuse, "sweep_twins", unreadable)
    config = {"search_space": {"name": "nb201"}, "experiment": {}}
    with caplog.at_level(logging.WARNING):
        assert reuse.reuse_in_single_run(tmp_path / "job", config, tmp_path / "sweeps") is None
    assert f"could not look for this job in {tmp_path / 'sweeps'}" in caplog.text
    assert "Permission denied" in caplog.text and not (tmp_path / "job").exists()


def _lr_baseline(tmp_path) -> Path:
    (source,) = [
        p.parent
        for p in (tmp_path / "runs" / "sweeps" / "lr_ablation").rglob("metrics.json")
        if "lr=0.025" in p.parent.name
    ]
    return source


def test_a_copy_leaves_its_source_alone_and_a_deleted_copy_is_trained(args, tmp_path):
    import os
    import shutil

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    for name in ("pool.json", "checkpoint.pt"):
        (source / name).write_bytes(b"x")
        os.chmod(source / name, 0o440)  # another user's files, say: read, never written
    bn, task = sweeper_for(args)
    bn.sweep(task)
    (copy,) = [
        p.parent
        for p in sweep_dir(tmp_path).rglob("metrics.json")
        if "reused_from" in p.read_text()
    ]
    for name in ("pool.json", "checkpoint.pt"):
        assert (copy / name).read_bytes() == b"x"
        assert (source / name).stat().st_mode & 0o777 == 0o440  # not chmod-ed through a link
    assert not list(copy.glob(".*.tmp"))
    # deleted to run it again: this sweep listed it, so it is trained, not copied back
    shutil.rmtree(copy)
    again, task = sweeper_for(args)
    again.sweep(task)
    assert len(again.launcher.launched) == 1
    assert "reused_from" not in (copy / "metrics.json").read_text()


@pytest.mark.parametrize(
    "first_launch",
    [_sbatch_refuses, lambda overrides: KeyboardInterrupt()],
    ids=["sbatch", "ctrl-c"],
)
def test_a_job_listed_but_never_run_is_copied_later(args, tmp_path, first_launch):
    # the first launch of bn_ablation listed its 4 jobs and ran none of them
    refused, task = sweeper_for(args, first_launch)
    with pytest.raises(SystemExit):
        refused.sweep(task)
    assert [j["after"] for j in listed(tmp_path)] == ["not run"] * 4
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    bn, task = sweeper_for(args)
    bn.sweep(task)
    assert len(bn.launcher.launched) == 3  # the baseline lr_ablation completed was copied
    assert sum("reused_from" in j for j in listed(tmp_path)) == 1


def _with(source: Path, **changes) -> None:
    record = json.loads((source / "metrics.json").read_text())
    (source / "metrics.json").write_text(json.dumps({**record, **changes}))


@pytest.mark.parametrize(
    ("spoil", "launched"),
    [
        (lambda source: (source.parent.parent / "sweep.json").unlink(), 4),  # no sweep's job
        (lambda source: _with(source, metrics=None), 4),  # a record tables cannot read
        # no fingerprint to compare, as in records older than fingerprints: a source
        (lambda source: _with(source, ground_truth="x"), 3),
    ],
    ids=["not listed by a sweep", "metrics null", "ground_truth not an object"],
)
def test_only_a_readable_job_of_a_sweep_is_copied(args, tmp_path, spoil, launched):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    spoil(_lr_baseline(tmp_path))
    bn, task = sweeper_for(args)
    bn.sweep(task)  # no traceback, whatever the other sweep's folder holds
    assert len(bn.launcher.launched) == launched


def _claimed_by_lr(tmp_path):
    """lr_ablation's launch as bn_ablation finds it when both run side by side: it holds the
    claim on the baseline they share and has not completed it yet (its record put aside).
    Returns the claims, the baseline's folder and its config hash."""
    from nasheur.reuse import Claims

    source = _lr_baseline(tmp_path)
    record = json.loads((source / "metrics.json").read_text())
    (source / "metrics.json").rename(source / "metrics.json.aside")
    claims = Claims(tmp_path / "runs" / "sweeps" / "lr_ablation")
    assert claims.take(source, record["config_hash"]) is None  # lr_ablation holds it now
    return claims, source, record["config_hash"]


def _end_lr_once(bn, release, source, shared, *, completes: bool, seen: list):
    """A thread that ends lr_ablation's launch once bn_ablation launched its other 3 jobs and
    let its own claims go (the holders of every claim but the `shared` one's are then None;
    `seen` gets the shared claim's holder and those others as they were): the baseline's
    record back if it `completes`, then `release()`."""
    import threading
    import time

    from nasheur.jobguard import lock_holder

    def others() -> set[str]:
        return {str(lock_holder(p)) for p in shared.parent.glob("*.lock") if p != shared}

    def end() -> None:
        deadline = time.monotonic() + 120
        while len(bn.launcher.launched) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        while others() != {"None"} and time.monotonic() < deadline:
            time.sleep(0.02)  # bn_ablation lets its claims go before it waits on another's
        seen.extend([lock_holder(shared), others()])
        if completes:
            (source / "metrics.json.aside").rename(source / "metrics.json")
        release()

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


def test_a_job_a_sweep_beside_trains_is_left_to_it_then_copied(args, tmp_path, capsys):
    # make sweep-11: lr_ablation and bn_ablation launched at once share the NB201 baseline;
    # the one that claims it first trains it, the other waits for it and copies it
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    claims, source, chash = _claimed_by_lr(tmp_path)
    bn, task = sweeper_for(args)
    seen: list = []
    shared = claims.path(source, chash)
    thread = _end_lr_once(bn, claims.release, source, shared, completes=True, seen=seen)
    bn.sweep(task)
    thread.join(10)
    assert len(bn.launcher.launched) == 3  # of 4: the baseline was left to lr_ablation
    assert seen[0]["sweep"] == str((tmp_path / "runs" / "sweeps" / "lr_ablation").resolve())
    assert seen[1] == {"None"}  # bn_ablation's own claims were released before its wait
    (entry,) = [j for j in listed(tmp_path) if "reused_from" in j]
    assert entry["config_hash"] == chash and entry["after"] == "completed"
    copy = json.loads((Path(entry["folder"]) / "metrics.json").read_text())
    assert copy["reused_from"] == str(source.resolve())
    assert copy["config"]["experiment"]["name"] == "bn_ablation"
    out = capsys.readouterr().out
    assert "4 completed (1 copied from other sweeps, where they completed)" in out


def test_a_job_left_to_a_sweep_that_did_not_complete_it_runs_with_the_same_command(
    args, tmp_path, capsys
):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    claims, source, chash = _claimed_by_lr(tmp_path)
    bn, task = sweeper_for(args)
    shared = claims.path(source, chash)
    thread = _end_lr_once(bn, claims.release, source, shared, completes=False, seen=[])
    with pytest.raises(SystemExit) as ended:
        bn.sweep(task)
    thread.join(10)
    assert ended.value.code == 1 and len(bn.launcher.launched) == 3
    said = capsys.readouterr()
    assert said.err == (
        "nasheur: 1 job left to other sweeps did not complete there; the same command trains "
        "it here\n"
    )
    assert "left to another sweep, which ended without completing it" in said.out
    (entry,) = [j for j in listed(tmp_path) if j["config_hash"] == chash]
    assert (entry["state_at_launch"], entry["after"]) == ("new", "not run")
    again, task = sweeper_for(args)
    again.sweep(task)  # the same command: trained here, the others skipped as completed
    assert len(again.launcher.launched) == 1
    assert "protocol.bn_track=false" in again.launcher.launched[0]


def test_a_dry_run_says_which_sweep_trains_a_job_it_would_leave(args, tmp_path, capsys):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    claims, _source, _chash = _claimed_by_lr(tmp_path)
    capsys.readouterr()
    try:
        dry, task = sweeper_for([*args, "hydra.sweeper.dry_run=true"])
        dry.sweep(task)
    finally:
        claims.release()
    out = capsys.readouterr().out
    lr_dir = tmp_path / "runs" / "sweeps" / "lr_ablation"
    assert f"leave (the sweep in {lr_dir} trains it (pid {os.getpid()}" in out
    assert "copied once it completed" in out and "3 to run, 1 to leave" in out


def test_without_reuse_a_sweep_trains_a_job_another_sweep_trains_too(args, tmp_path):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    claims, _source, _chash = _claimed_by_lr(tmp_path)
    try:
        bn, task = sweeper_for([*args, "hydra.sweeper.reuse=false"])
        bn.sweep(task)  # no wait: claims are off with reuse
    finally:
        claims.release()
    assert len(bn.launcher.launched) == 4


def test_a_job_running_for_a_sweep_that_stopped_waiting_is_waited_for(args, tmp_path, monkeypatch):
    # lr_ablation's launch is gone (Ctrl-C on the login node) but its baseline job runs on
    # in SLURM: no claim, the job's folder held; bn_ablation leaves it to that job and waits
    from nasheur.jobguard import hold_folder
    from nasheur.sweep import twins

    monkeypatch.setattr(twins, "RUNNING_TWIN_POLL_S", 0.05)
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    source = _lr_baseline(tmp_path)
    (source / "metrics.json").rename(source / "metrics.json.aside")
    running = hold_folder(source)
    running.__enter__()
    bn, task = sweeper_for(args)
    seen: list = []
    shared = tmp_path / "runs" / "sweeps" / ".nasheur-claims" / "none.lock"  # no claim: none
    thread = _end_lr_once(
        bn, lambda: running.__exit__(None, None, None), source, shared, completes=True, seen=seen
    )
    bn.sweep(task)
    thread.join(10)
    assert len(bn.launcher.launched) == 3
    assert sum("reused_from" in j for j in listed(tmp_path)) == 1


def queue_says(queued: Path, line: str) -> None:
    """What the fake squeue lists from now on, written whole: a squeue that read the file
    while write_text had emptied it would list nothing, as for an ended job."""
    from nasheur.io import atomic_write_text

    atomic_write_text(queued, line + "\n")


def fake_squeue(tmp_path, monkeypatch, job: str = "552_4") -> Path:
    """An ``squeue`` first on PATH that lists SLURM job `job` as the returned file says
    (``PENDING|Priority``: squeue's ``%T|%r``; it adds this process's user as ``%u`` between
    them, or the user that a file ``user`` beside it names) while the file exists, then as
    ended (``Invalid job id``, as SLURM says of a job it forgot); it logs each call's
    arguments in ``squeue.log``."""
    from nasheur.reuse import current_user

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    queued = tmp_path / "queued"
    queue_says(queued, "PENDING|Priority")
    user = tmp_path / "user"
    script = bin_dir / "squeue"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path}/squeue.log"\n'
        f'case " $* " in *" {job} "*) ;; *) echo "unexpected job" >&2; exit 3 ;; esac\n'
        f'u="{current_user()}"; if [ -f "{user}" ]; then u=$(cat "{user}"); fi\n'
        f'if [ -f "{queued}" ]; then sed "s/|/|$u|/" "{queued}"; exit 0; fi\n'
        'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return queued


def _queued_for_lr(tmp_path, job: str = "552_4"):
    """lr_ablation's launch as a later sweep finds it after Ctrl-C on the login node, its
    baseline still queued in SLURM: the claim free, its file naming the SLURM job that launch
    submitted, the job's record not there yet (put aside). Returns the claim's path and the
    baseline's folder."""
    from nasheur.reuse import Claims

    source = _lr_baseline(tmp_path)
    record = json.loads((source / "metrics.json").read_text())
    (source / "metrics.json").rename(source / "metrics.json.aside")
    lr_dir = tmp_path / "runs" / "sweeps" / "lr_ablation"
    claims = Claims(lr_dir)
    assert claims.take(source, record["config_hash"]) is None
    claims.note_submitted(source, record["config_hash"], job)
    claims.release()  # the launch stopped waiting: its job stays queued
    return claims.path(source, record["config_hash"]), source


def test_a_job_queued_for_a_sweep_that_stopped_waiting_is_left_to_it_then_copied(
    args, tmp_path, monkeypatch, capsys
):
    # the job twice in SLURM was the gap: a queued job holds no folder and its launch's
    # claim is gone, so only the claim file's record of the SLURM job says it will run
    import threading
    import time

    from nasheur.jobguard import recorded_details
    from nasheur.sweep import twins

    monkeypatch.setattr(twins, "RUNNING_TWIN_POLL_S", 0.05)
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    queued = fake_squeue(tmp_path, monkeypatch)
    claim, source = _queued_for_lr(tmp_path)
    before = recorded_details(claim)
    lr_dir = (tmp_path / "runs" / "sweeps" / "lr_ablation").resolve()
    assert before["sweep"] == str(lr_dir) and before["slurm_submitted"] == "552_4"

    out = dry_run(args, capsys)
    assert f"leave (the sweep in {lr_dir} trains it (SLURM job 552_4, pending)" in out
    assert "3 to run, 1 to leave" in out

    bn, task = sweeper_for(args)
    seen: list = []

    def end() -> None:  # SLURM runs the job and it completes, once bn_ablation waits for it
        deadline = time.monotonic() + 120
        while len(bn.launcher.launched) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(recorded_details(claim))  # put back as bn_ablation found it
        (source / "metrics.json.aside").rename(source / "metrics.json")
        queued.unlink()

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    bn.sweep(task)
    thread.join(10)
    assert len(bn.launcher.launched) == 3  # of 4: the baseline was left to the queued job
    assert seen == [before]
    (entry,) = [j for j in listed(tmp_path) if "reused_from" in j]
    assert entry["after"] == "completed" and entry["reused_from"] == str(source)
    out = capsys.readouterr().out
    assert "4 completed (1 copied from other sweeps, where they completed)" in out
    calls = (tmp_path / "squeue.log").read_text().splitlines()
    assert calls[-1] == "--noheader --array --jobs 552_4 --format %T|%u|%r"


def test_a_held_twin_is_said_with_what_to_do_then_waited_for(
    args, tmp_path, monkeypatch, caplog, capsys
):
    # a queued twin that SLURM holds never starts by itself: the waiting sweep says so, and
    # how to go on, once per state or reason it sees
    import threading
    import time

    from nasheur.sweep import twins

    monkeypatch.setattr(twins, "RUNNING_TWIN_POLL_S", 0.05)
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    queued = fake_squeue(tmp_path, monkeypatch)
    queue_says(queued, "PENDING|JobHeldUser")
    _, source = _queued_for_lr(tmp_path)
    advice = (
        "(SLURM job 552_4, pending: held by its user: `scontrol release 552_4` lets it run; "
        "it will not start by itself (after `scancel 552_4` the same command trains the job "
        "here))"
    )
    assert advice in dry_run(args, capsys)
    queue_says(queued, "PENDING|Priority")

    def said(text: str) -> list[logging.LogRecord]:
        return [r for r in list(caplog.records) if text in r.getMessage()]

    def hold_release_then_end() -> None:  # held while the sweep waits, released, run, done
        deadline = time.monotonic() + 120
        while not said("552_4, pending)") and time.monotonic() < deadline:
            time.sleep(0.02)
        queue_says(queued, "PENDING|JobHeldUser")
        while not said("scontrol release 552_4") and time.monotonic() < deadline:
            time.sleep(0.02)
        queue_says(queued, "RUNNING|None")
        while not said("552_4, running") and time.monotonic() < deadline:
            time.sleep(0.02)
        (source / "metrics.json.aside").rename(source / "metrics.json")
        queued.unlink()

    thread = threading.Thread(target=hold_release_then_end, daemon=True)
    thread.start()
    bn, task = sweeper_for(args)
    with caplog.at_level(logging.INFO, logger=twins.__name__):
        bn.sweep(task)
    thread.join(10)
    # the line that lists what the sweep waits for, not said again while nothing changes
    assert len(said("552_4, pending)")) == 1
    (held,) = said("scontrol release 552_4")  # once, though seen at every poll
    assert held.levelno == logging.WARNING and advice in held.getMessage()
    (running,) = said("552_4, running")
    assert running.levelno == logging.INFO and "scancel" not in running.getMessage()
    assert len(bn.launcher.launched) == 3  # the baseline was copied, not trained twice
    assert "4 completed (1 copied from other sweeps, where they completed)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("squeue", ["ended", "absent", "no controller"])
def test_a_job_whose_queued_twin_squeue_does_not_list_is_trained_here(
    args, tmp_path, monkeypatch, caplog, squeue
):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    queued = fake_squeue(tmp_path, monkeypatch)
    _queued_for_lr(tmp_path)
    queued.unlink()  # ended: SLURM no longer knows the job
    script = tmp_path / "bin" / "squeue"
    if squeue == "absent":
        script.unlink()
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no squeue anywhere
    elif squeue == "no controller":
        script.write_text(
            "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n"
            "exit 1\n"
        )
    bn, task = sweeper_for(args)
    with caplog.at_level(logging.WARNING):
        bn.sweep(task)
    assert len(bn.launcher.launched) == 4
    warned = [r.getMessage() for r in caplog.records if "squeue" in r.getMessage()]
    if squeue == "ended":
        assert warned == []  # a job SLURM forgot is no error
    else:
        assert len(warned) == 1 and "552_4" in warned[0]
        assert ("Unable to contact" in warned[0]) == (squeue == "no controller")


def test_a_claim_whose_slurm_job_number_another_user_has_now_is_stale(
    args, tmp_path, monkeypatch, caplog
):
    # SLURM numbers jobs anew after MaxJobId (and from 1 on a controller set up again): the
    # job a claim names may have ended long ago, its number now another user's pending job
    from nasheur.jobguard import recorded_details
    from nasheur.reuse import current_user

    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    fake_squeue(tmp_path, monkeypatch)
    (tmp_path / "user").write_text("someone-else\n")
    claim, source = _queued_for_lr(tmp_path)
    assert recorded_details(claim)["user"] == current_user()
    bn, task = sweeper_for(args)
    with caplog.at_level(logging.WARNING):
        bn.sweep(task)
    assert len(bn.launcher.launched) == 4  # the baseline too: nobody else trains it
    (said,) = [r.getMessage() for r in caplog.records if "552_4" in r.getMessage()]
    assert f"is now someone-else's job, not {current_user()}'s" in said
    baseline = sweep_dir(tmp_path) / "nb201" / "bn_track=false,bn_affine=true"  # the twin
    assert said.startswith(str(baseline)) and f": the sweep in {source.parent.parent} " in said
    assert said.endswith("this one is trained here")


def test_a_second_launch_of_the_same_sweep_is_not_left_to_the_first(args, tmp_path):
    # its claims are this sweep's own: each job's folder lock settles who trains it
    from nasheur.reuse import Claims

    bn, task = sweeper_for(args)
    plan = bn._check(bn.plan(task))
    first = Claims(sweep_dir(tmp_path))  # the first launch, still checking its inputs
    assert all(first.take(job.folder, job.config_hash) is None for job in plan)
    import threading

    late = threading.Timer(60, first.release)  # a sweep that waited on itself fails, not hangs
    late.start()
    try:
        bn.sweep(task)
    finally:
        late.cancel()
        first.release()
    assert len(bn.launcher.launched) == 4
    assert all(j["after"] == "completed" for j in listed(tmp_path))


def test_a_job_a_launch_left_to_another_counts_as_never_started(tmp_path):
    # a sweep stopped while it waited (Ctrl-C) copies the job at its next launch
    from nasheur.reuse import LEFT, listed_jobs

    sweep = tmp_path / "sweeps" / "bn_ablation"
    sweep.mkdir(parents=True)
    entries = [
        {"folder": str(sweep / "nb201" / f"j{i}-h{i}"), "state_at_launch": state, "after": after}
        for i, (state, after) in enumerate(
            [("new", LEFT), ("new", "not run"), ("new", "completed"), ("failed", LEFT)]
        )
    ]
    merge_manifest(sweep, entries)
    assert listed_jobs(sweep, started_only=True) == {"nb201/j2-h2", "nb201/j3-h3"}


# ---------------------------------------------------------------------------------------------
# jobs running elsewhere; sweep.json


def test_a_job_whose_folder_a_running_job_holds_is_not_launched_again(args, tmp_path, capsys):
    first, task = sweeper_for(args)
    first.sweep(task)
    folders = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))
    for f in folders[:2]:  # two jobs of this sweep are running again (their metrics.json gone)
        (f / "metrics.json").unlink()
    capsys.readouterr()
    with hold_folder(folders[0]), hold_folder(folders[1]):
        again, task = sweeper_for(args)
        again.sweep(task)
        manifest = {Path(j["folder"]).name: j["state_at_launch"] for j in listed(tmp_path)}
    assert again.launcher.launched == []  # left to the jobs that hold them
    assert [manifest[f.name] for f in folders] == ["running", "running", "completed", "completed"]
    out = capsys.readouterr().out
    assert "4 jobs: 2 completed (2 before this launch), 2 running elsewhere" in out
    assert "pid " in out  # who holds them


def test_the_summary_says_how_a_job_left_to_another_launch_ended(args, tmp_path, capsys):
    # a job running elsewhere at launch, scancel-ed while this launch runs another: the
    # summary reads its record at the end, not the state it had at launch
    first, task = sweeper_for(args)
    first.sweep(task)
    folders = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))
    record = json.loads((folders[0] / "metrics.json").read_text())
    for f in folders[:2]:
        (f / "metrics.json").unlink()
    capsys.readouterr()
    with contextlib.ExitStack() as held:
        held.enter_context(hold_folder(folders[0]))

        def meanwhile(overrides):  # the other launch's job ends, interrupted
            held.close()
            (folders[0] / "metrics.json").write_text(
                json.dumps({**record, "status": "interrupted"})
            )
            return "completed"

        again, task = sweeper_for(args, outcome=meanwhile)
        again.sweep(task)  # its own job completed: no error
    assert len(again.launcher.launched) == 1  # folders[1], whose record was gone
    out = capsys.readouterr().out
    assert "4 jobs: 3 completed (2 before this launch), 1 interrupted" in out
    assert "interrupted: " in out and "ran elsewhere, ended during this launch" in out
    # sweep.json says so too, not the "running elsewhere" of the launch
    after = {Path(j["folder"]).name: j.get("after") for j in listed(tmp_path)}
    assert [after[f.name] for f in folders[:2]] == ["interrupted", "completed"]


def test_a_job_left_to_another_launch_that_fails_is_listed_with_its_error(args, tmp_path, capsys):
    # the other launch reports the failure in its exit status; this one lists it with its error
    first, task = sweeper_for(args)
    first.sweep(task)
    folders = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))
    record = json.loads((folders[0] / "metrics.json").read_text())
    (folders[0] / "metrics.json").unlink()
    capsys.readouterr()
    with contextlib.ExitStack() as held:
        held.enter_context(hold_folder(folders[0]))

        def meanwhile(overrides):
            held.close()
            failed = {**record, "status": "failed", "error": "RuntimeError: CUDA out of memory"}
            (folders[0] / "metrics.json").write_text(json.dumps(failed))
            return "completed"

        (folders[1] / "metrics.json").unlink()
        again, task = sweeper_for(args, outcome=meanwhile)
        again.sweep(task)  # its own job completed: no error
    out = capsys.readouterr().out
    assert "4 jobs: 3 completed (2 before this launch), 1 failed" in out
    assert "ran elsewhere, ended during this launch: RuntimeError: CUDA out of memory" in out


def test_a_job_left_to_another_launch_names_the_copy_that_holds_it_at_the_end(
    args, tmp_path, capsys
):
    # held at launch by one copy, by another (a resubmission) when the summary is written
    first, task = sweeper_for(args)
    first.sweep(task)
    folders = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))
    (folders[0] / "metrics.json").unlink()
    capsys.readouterr()
    with contextlib.ExitStack() as held:
        held.enter_context(hold_folder(folders[0]))
        lock = folders[0] / "job.lock"

        def meanwhile(overrides):  # the first copy ends; another, with other details, starts
            held.close()
            held.enter_context(hold_folder(folders[0]))
            record = json.loads(lock.read_text())
            lock.write_text(json.dumps({**record, "pid": 999999, "host": "node42"}))
            return "completed"

        (folders[1] / "metrics.json").unlink()  # so that this launch runs one job
        again, task = sweeper_for(args, outcome=meanwhile)
        again.sweep(task)
        out = capsys.readouterr().out
    assert "1 running elsewhere" in out
    assert "running elsewhere: " in out and "pid 999999 on node42" in out


def test_a_stopped_sweep_reports_a_running_job_as_running_not_by_its_old_record(
    args, tmp_path, capsys
):
    # resubmitted jobs whose folders hold an interrupted record from before: stopped while
    # they run (they hold their folders), they are not reported as interrupted
    first, task = sweeper_for(args)
    first.sweep(task)
    folders = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))
    for f in folders:
        record = json.loads((f / "metrics.json").read_text())
        (f / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    capsys.readouterr()
    with contextlib.ExitStack() as held:

        def stop(overrides):  # the jobs start in SLURM; then Ctrl-C
            for f in folders:
                held.enter_context(hold_folder(f))
            return KeyboardInterrupt()

        again, task = sweeper_for(args, outcome=stop)
        with pytest.raises(SystemExit):
            again.sweep(task)
        err = capsys.readouterr().err
    assert "4 jobs: 4 not finished; stopped by Ctrl-C" in err, err
    assert "interrupted:" not in err and "not finished: " in err and "running, pid " in err


def test_the_launch_line_counts_the_jobs_it_resumes_as_the_dry_run_does(
    args, tmp_path, caplog, capsys
):
    first, task = sweeper_for(args)
    first.sweep(task)
    folder = sorted(p.parent for p in sweep_dir(tmp_path).rglob("metrics.json"))[0]
    record = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (folder / CHECKPOINT).write_bytes(b"where it stopped")  # (the stub job writes none)
    assert "(1 to resume, 3 to skip)" in dry_run(args, capsys)
    again, task = sweeper_for(args)
    with caplog.at_level(logging.INFO):
        again.sweep(task)
    assert "3 already completed, 1 to run (1 to resume from its checkpoint)" in caplog.text
    # stopped before its first checkpoint, it starts over, as the dry run's line says
    record = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (folder / CHECKPOINT).unlink(missing_ok=True)
    assert "resume (from the start: it stopped before its first checkpoint)" in dry_run(
        args, capsys
    )
    caplog.clear()
    again, task = sweeper_for(args)
    with caplog.at_level(logging.INFO):
        again.sweep(task)
    said = "1 to run (1 interrupted before its first checkpoint, to run from the start)"
    assert said in caplog.text and "to resume from" not in caplog.text


def test_sweep_json_merges_the_launches_into_one_sweep_folder(args, tmp_path):
    for seed in (0, 1):
        sweeper, task = sweeper_for([*args, f"seed={seed}"])
        sweeper.sweep(task)
    jobs = listed(tmp_path)
    assert len(jobs) == 8 and len({j["folder"] for j in jobs}) == 8
    assert {o for j in jobs for o in j["overrides"] if o.startswith("seed=")} == {
        "seed=0",
        "seed=1",
    }
    sweeper, task = sweeper_for([*args, "seed=0"])  # again: seed 0's entries, updated in place
    sweeper.sweep(task)
    again = listed(tmp_path)
    assert [j["folder"] for j in again] == [j["folder"] for j in jobs]
    assert sorted(j["state_at_launch"] for j in again) == ["completed"] * 4 + ["new"] * 4


def test_a_damaged_sweep_json_is_kept_and_its_list_rebuilt_from_the_folders(args, tmp_path, caplog):
    sweeper, task = sweeper_for([*args, "seed=0"])
    sweeper.sweep(task)
    first = listed(tmp_path)
    one = Path(first[0]["folder"])
    (one / ".hydra").mkdir()
    (one / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(first[0]["overrides"]))
    manifest = sweep_dir(tmp_path) / "sweep.json"
    damaged = manifest.read_bytes()[:100]
    manifest.write_bytes(damaged)
    sweeper, task = sweeper_for([*args, "seed=1"])
    sweeper.sweep(task)
    (kept,) = sweep_dir(tmp_path).glob("sweep.json.damaged-*")
    assert kept.read_bytes() == damaged and "kept as sweep.json.damaged-" in caplog.text
    jobs = {j["folder"]: j for j in listed(tmp_path)}
    assert len(jobs) == 8  # seed 0's four from their folders, seed 1's from this launch
    for j in first:
        again = jobs[j["folder"]]
        assert again["config_hash"] == j["config_hash"] and again["state_at_launch"] == "completed"
    assert jobs[first[0]["folder"]]["overrides"] == first[0]["overrides"]


def _merge_many(sweep: str, first: int, barrier) -> None:
    barrier.wait()
    for i in range(first, first + 10):
        merge_manifest(Path(sweep), [{"folder": f"runs/nb201/job{i}", "state_at_launch": "new"}])


def test_sweep_json_keeps_every_entry_of_launches_side_by_side(tmp_path):
    # spawn: a fork of this multi-threaded process may deadlock (Python 3.12+ warns of it)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_merge_many, args=(str(tmp_path), 10 * k, barrier)) for k in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    jobs = json.loads((tmp_path / "sweep.json").read_text())["jobs"]
    assert sorted(j["folder"] for j in jobs) == sorted(f"runs/nb201/job{i}" for i in range(40))


def test_a_key_given_twice_is_listed_once_with_its_last_value(args):
    sweeper, task = sweeper_for([*args, "protocol.epochs=1", "protocol.epochs=2"])
    jobs = sweeper.plan(task)
    assert all(
        [o for o in j if o.startswith("protocol.epochs")] == ["protocol.epochs=2"] for j in jobs
    )


@pytest.mark.parametrize("group", ["supernet", "fidelity", "sampler"])
def test_a_removed_group_is_refused_before_anything_is_launched(args, group, capsys):
    # `~supernet` would leave every job the schema's bare defaults, no space's paper setting
    sweeper, task = sweeper_for([*args, f"~{group}"])
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert f"config error: ~{group}: the {group} group cannot be removed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("hydra.sweeper.spaces=[nb201,nb210]", "hydra.sweeper.spaces: unknown search space nb210"),
        (
            "hydra.sweeper.blocks=[{protocol.lr:[0.1],_spaces:[darts]}]",
            "hydra.sweeper.blocks[0]._spaces: unknown search space darts (known: ",
        ),
        (
            "hydra.sweeper.blocks=[{protocol.lr:[0.1],_spaces:nb201}]",
            "hydra.sweeper.blocks[0]._spaces='nb201': expected a list",
        ),
        # an empty list names no space either: the block would silently run nothing
        (
            "hydra.sweeper.blocks=[{protocol.lr:[0.1],_spaces:[]}]",
            "hydra.sweeper.blocks[0]._spaces=[]: a block for no search space would run nothing",
        ),
    ],
)
def test_an_experiment_naming_an_unknown_space_is_refused(args, override, said, capsys):
    # a misspelt space would leave its block out of the sweep without a word
    sweeper, task = sweeper_for([*args, override])
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("where", ["nowhere", "incomplete", "present", "not checked"])
def test_a_sweep_on_cifar10_looks_for_it_before_launching(args, tmp_path, where, capsys):
    # every job would fail in its first seconds, on the cluster as here
    root = tmp_path / "data"
    if where != "nowhere":
        batches = root / "cifar-10-batches-py"
        batches.mkdir(parents=True)
        for i in range(1, 6 if where != "incomplete" else 5):
            (batches / f"data_batch_{i}").write_bytes(b"")  # found, not read
    extra = ["hydra.sweeper.check_data=false"] if where == "not checked" else []
    ours = [a for a in args if not a.startswith("dataset")]  # the generated set's keys
    sweeper, task = sweeper_for([*ours, "dataset=cifar10", f"dataset.root={root}", *extra])
    if where in ("present", "not checked"):
        sweeper.sweep(task)
        assert len(sweeper.launcher.launched) == 4
        return
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert "config error: no CIFAR-10 for the jobs to run; nothing was launched" in err
    assert f"dataset.root={root}: " in err and "hydra.sweeper.check_data=false" in err
    said = "missing " if where == "incomplete" else "CIFAR-10 not found"
    assert said in err and "dataset=synthetic" in err  # the job's own advice, in full
    assert not sweep_dir(tmp_path).exists()  # nothing left of a first launch refused


def test_completed_jobs_need_no_data_and_a_root_it_may_not_read_is_said(args, tmp_path, capsys):
    ours = [a for a in args if not a.startswith("dataset")]
    root = tmp_path / "data" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(b"")
    first, task = sweeper_for([*ours, "dataset=cifar10", f"dataset.root={root.parent}"])
    first.sweep(task)
    assert len(first.launcher.launched) == 4
    for f in root.iterdir():  # the data moved away: the completed sweep is still read
        f.unlink()
    again, task = sweeper_for([*ours, "dataset=cifar10", f"dataset.root={root.parent}"])
    again.sweep(task)
    assert again.launcher.launched == [] and "4 completed" in capsys.readouterr().out
    # a root whose name the file system refuses: said in the sweep's one message
    bad = tmp_path / ("x" * 300)
    other, task = sweeper_for([*ours, "dataset=cifar10", f"dataset.root={bad}", "seed=1"])
    with pytest.raises(SystemExit) as refused:
        other.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "Traceback" not in err and "File name too long" in err


def test_a_pool_larger_than_the_ground_truth_is_refused_before_launching(args, tmp_path, capsys):
    # each job would fail in its first seconds, on SLURM after its wait in the queue
    sweeper, task = sweeper_for([*args, "eval.pool_size=61"])  # the table holds 60
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert "4 of the 4 jobs to run would fail on their input; nothing was launched" in err
    assert "eval.pool_size=61 exceeds the 60 architectures" in err and "(4 jobs, e.g." in err
    assert not sweep_dir(tmp_path).exists()
    # the same with check_data=false: left to the jobs
    sweeper, task = sweeper_for([*args, "eval.pool_size=61", "hydra.sweeper.check_data=false"])
    sweeper.sweep(task)
    assert len(sweeper.launcher.launched) == 4


def test_check_data_false_still_needs_the_ground_truth_file_where_the_sweep_runs(
    args, tmp_path, capsys
):
    # check_data=false leaves CIFAR-10, the table's rows and the pool size to the jobs, not the
    # file itself: each job's config check reads its format, and its path is the job's identity
    ours = [a for a in args if not a.startswith("ground_truth.path=")]
    missing = tmp_path / "node-local" / "gt.csv"
    sweeper, task = sweeper_for(
        [*ours, f"ground_truth.path={missing}", "hydra.sweeper.check_data=false"]
    )
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert f"ground_truth.path={missing}: no such file or folder" in err


def test_a_bad_ground_truth_row_is_refused_once_for_all_jobs(args, tmp_path, capsys, monkeypatch):
    import nasheur.job

    gt = tmp_path / "gt.csv"
    rows = gt.read_text().splitlines()
    rows[5] = rows[5].split(",")[0] + ",abc"
    gt.write_text("\n".join(rows) + "\n")
    reads = []
    real = nasheur.job.read_ground_truth
    monkeypatch.setattr(nasheur.job, "read_ground_truth", lambda *a: reads.append(a) or real(*a))
    sweeper, task = sweeper_for(args)
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert f"{gt}:6" in err and "'abc'" in err
    assert len(reads) == 1  # one file, read once for the 4 jobs
    # a dry run says so too, and launches nothing
    dry, task = sweeper_for([*args, "hydra.sweeper.dry_run=true"])
    dry.sweep(task)
    out = capsys.readouterr().out
    assert "jobs to run that would fail on their input:" in out and f"{gt}:6" in out
    assert dry.launcher.launched == []


def test_a_dry_run_leaves_a_benchmark_files_conversion_to_the_launch(args, tmp_path, capsys):
    # a dry run writes nothing, a cache table included; a launch converts the file once
    from tests.test_groundtruth_loaders import nb201_dict, write_pbz2

    bench = write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", nb201_dict())  # 4 cells
    ours = [
        *(a for a in args if not a.startswith("ground_truth.path=")),
        f"ground_truth.path={bench}",
    ]
    cache = tmp_path / ".nasheur-gt-cache"
    assert "would fail on their input" not in dry_run(ours, capsys) and not cache.exists()
    launch, task = sweeper_for(ours)
    with pytest.raises(SystemExit):
        launch.sweep(task)
    assert "eval.pool_size=12 exceeds the 4 architectures" in capsys.readouterr().err
    assert launch.launcher.launched == [] and len(list(cache.iterdir())) == 1
    dry, task = sweeper_for([*ours, "hydra.sweeper.dry_run=true"])  # now it reads the cache
    dry.sweep(task)
    assert "eval.pool_size=12 exceeds the 4 architectures" in capsys.readouterr().out


def test_completed_jobs_need_no_ground_truth(args, tmp_path, capsys):
    first, task = sweeper_for(args)
    first.sweep(task)
    assert len(first.launcher.launched) == 4
    gt = tmp_path / "gt.csv"  # damaged after the jobs completed: only a new job reads it
    rows = gt.read_text().splitlines()
    gt.write_text("\n".join([*rows[:5], rows[5].split(",")[0] + ",abc", *rows[6:]]) + "\n")
    again, task = sweeper_for(args)
    again.sweep(task)
    assert again.launcher.launched == [] and "4 completed" in capsys.readouterr().out
    more, task = sweeper_for([*args, "seed=1"])
    with pytest.raises(SystemExit):
        more.sweep(task)
    assert more.launcher.launched == []


def test_a_device_the_jobs_here_cannot_use_is_refused_before_launching(args, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    sweeper, task = sweeper_for([*args, "device=cuda"])
    with pytest.raises(SystemExit) as refused:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and sweeper.launcher.launched == []
    assert "device=cuda but torch sees no CUDA device" in err


def test_a_swept_baseline_is_refused_not_resolved_against_another(args):
    # the relative levels (base/2, base-1) resolve against one baseline per space: two
    # baselines in one sweep would give both the rows of one of them
    from hydra_plugins.nasheur_ablation.ablation_sweeper import SweepError

    sweeper, task = sweeper_for([*args, "fidelity.baseline.channels=32,64"])
    with pytest.raises(
        SweepError, match=r"fidelity\.baseline\.channels: a sweep takes one baseline"
    ):
        sweeper.plan(task)
    sweeper, task = sweeper_for([*args, "fidelity.baseline.channels=32"])
    assert sweeper.plan(task)  # one value: the baseline of every job


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("NASHEUR_SLURM_CPUS", "four", "NASHEUR_SLURM_CPUS='four' is not a whole number (or null)"),
        ("NASHEUR_SLURM_MPS", "maybe", "NASHEUR_SLURM_MPS='maybe' is not true or false"),
        # the three that submitit always writes take no null: the line does not offer it
        ("NASHEUR_SLURM_TIME_MIN", "1h", "NASHEUR_SLURM_TIME_MIN='1h' is not a whole number"),
        (
            "NASHEUR_SLURM_MAX_NUM_TIMEOUT",
            "abc",
            "NASHEUR_SLURM_MAX_NUM_TIMEOUT='abc' is not a whole number",
        ),
    ],
)
def test_a_bad_site_variable_is_one_line_naming_it(args, monkeypatch, capsys, name, value, said):
    monkeypatch.setenv(name, value)
    for profile in ("", "/site/cluster.env"):  # and where it may come from
        monkeypatch.setenv("NASHEUR_SITE_ENV", profile)
        with pytest.raises(SystemExit) as stop:
            sweeper_for([*args, "hydra/launcher=slurm"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "Traceback" not in err
        where = profile or "launch/site.env"
        assert err.strip() == (
            f"nasheur: config error: {said} (set in the environment or in the site profile, "
            f"{where})"
        )


def _no_experiment(args: list[str]) -> list[str]:
    return [a for a in args if a != "+experiment=bn_ablation"]


@pytest.mark.parametrize(
    ("experiments", "said"),
    [
        ("bn_ablation,lr_ablation", "a sweep runs one experiment; sweep them one at a time"),
        ("choice(bn_ablation)", "an experiment is not swept: write +experiment=bn_ablation"),
    ],
)
def test_a_swept_experiment_is_refused_before_anything_is_written(
    args, tmp_path, capsys, experiments, said
):
    # Hydra composes the sweeper without a swept experiment: each job would run its baseline
    # alone, in its experiment's folder, while the summary pointed at sweeps/multirun
    sweeper, task = sweeper_for([*_no_experiment(args), f"+experiment={experiments}"])
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("nasheur: config error: +experiment") and said in err
    assert sweeper.launcher.launched == [] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "said"),
    [
        # every job of the experiment takes DARTS-NDS's protocol: one line for all four
        (
            "protocol=darts_nds",
            "4 of 4 jobs have a bad config; nothing was launched:\n  protocol=darts_nds holds "
            "the defaults of search_space=darts_nds, but this job searches search_space=nb201",
        ),
        # a swept option: the jobs of the space's own option would run, the others not
        (
            "supernet=nb201,nb101",
            "4 of 8 jobs have a bad config; nothing was launched:\n  supernet=nb101 holds the "
            "defaults of search_space=nb101, but this job searches search_space=nb201",
        ),
    ],
)
def test_another_spaces_group_option_is_refused_before_launch(args, capsys, override, said):
    # its record would sit among NB201's runs with another space's settings
    sweeper, task = sweeper_for([*args, override])
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and sweeper.launcher.launched == []
    assert said in err


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("~seed", "~seed: every job needs a seed; it cannot be deleted"),
        ("experiment.name=???", "hydra.sweep.dir: MissingMandatoryValue"),  # the folder's name
        (
            "fidelity.baseline.channels=choice(abc)",
            "override fidelity.baseline.channels=abc; Value",
        ),
        ("+supernet.wbsn=true", "supernet.wbsn: Key 'wbsn' not in 'SupernetConfig'"),
        ("~sampler", "~sampler: the sampler group cannot be removed"),
    ],
)
def test_omegaconfs_errors_of_a_jobs_config_are_config_errors(
    args, tmp_path, capsys, override, said
):
    sweeper, task = sweeper_for([*_no_experiment(args), override])
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.startswith("nasheur: config error: ") and said in err
    assert "nothing was launched" in err or "cannot be deleted" in err
    assert sweeper.launcher.launched == [] and not (tmp_path / "runs").exists()


def test_a_slurm_sweep_without_slurm_is_one_line_and_records_nothing(
    args, tmp_path, monkeypatch, capsys
):
    # CI has a one-node SLURM: hide its commands
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    sweeper, task = sweeper_for([*args, "hydra/launcher=slurm"], stand_in=False)
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(
        "nasheur: config error: hydra/launcher=slurm: SLURM is not available here "
        "(sbatch, srun not on PATH)"
    )
    assert not (sweep_dir(tmp_path) / "sweep.json").exists()
    assert not (sweep_dir(tmp_path) / "multirun.yaml").exists()


@pytest.mark.parametrize("minutes, refused", [("1", True), ("2", True), ("3", False)])
def test_a_time_limit_within_the_requeue_signal_is_refused(
    args, tmp_path, monkeypatch, capsys, minutes, refused
):
    # USR2 comes 120 s before the limit: a 1- or 2-minute limit would stop each run at once
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name in ("sbatch", "srun"):  # never run: the check comes first
        (bin_ / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    monkeypatch.setenv("NASHEUR_SLURM_TIME_MIN", minutes)
    sweeper, task = sweeper_for([*args, "hydra/launcher=slurm"], stand_in=False)
    if not refused:
        sweeper._check_scheduler()
        return
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"hydra.launcher.timeout_min={minutes} (NASHEUR_SLURM_TIME_MIN)" in err
    assert "120 s" in err and not (sweep_dir(tmp_path) / "sweep.json").exists()


@pytest.mark.parametrize(
    "env, key, value, said",
    [
        ("NASHEUR_SLURM_JOBS_PER_TASK", "jobs_per_task", "0", "a task runs at least one job"),
        ("NASHEUR_SLURM_JOBS_PER_TASK", "jobs_per_task", "-2", "a task runs at least one job"),
        ("NASHEUR_SLURM_CPUS", "cpus_per_task", "-3", "expected a whole number >= 1"),
        ("NASHEUR_SLURM_CPUS", "cpus_per_task", "0", "expected a whole number >= 1"),
        ("NASHEUR_SLURM_GPUS", "gpus_per_node", "0", "expected a whole number >= 1"),
        ("NASHEUR_SLURM_MEM_GB", "mem_gb", "-16", "expected a whole number >= 0"),
        (
            "NASHEUR_SLURM_ARRAY_PARALLELISM",
            "array_parallelism",
            "0",
            "expected a whole number >= 1",
        ),
        ("NASHEUR_SLURM_MAX_NUM_TIMEOUT", "max_num_timeout", "-1", "expected a whole number >= 0"),
    ],
)
def test_a_slurm_count_below_its_least_is_refused_before_launch(
    args, tmp_path, monkeypatch, capsys, env, key, value, said
):
    # sbatch would refuse it only at the first submission: the profile is checked first, with
    # SLURM here or not
    monkeypatch.setenv(env, value)
    sweeper, task = sweeper_for([*args, "hydra/launcher=slurm"], stand_in=False)
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"hydra.launcher.{key}={value} ({env}): {said}" in err
    assert not (sweep_dir(tmp_path) / "sweep.json").exists()


@pytest.mark.parametrize(
    "env", ["NASHEUR_SLURM_GPUS", "NASHEUR_SLURM_CPUS", "NASHEUR_SLURM_MEM_GB"]
)
def test_a_slurm_count_of_null_or_at_its_least_passes_the_check(args, monkeypatch, env):
    # --mem=0 is SLURM's "all the node's memory"
    for value in ("null", "0" if env == "NASHEUR_SLURM_MEM_GB" else "1"):
        monkeypatch.setenv(env, value)
        monkeypatch.setenv("NASHEUR_SLURM_MAX_NUM_TIMEOUT", "0")  # no requeue after a time-out
        sweeper, _ = sweeper_for([*args, "hydra/launcher=slurm", "hydra.sweeper.dry_run=true"])
        sweeper._check_scheduler()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_batch_of_no_jobs_is_refused_before_launch(args, tmp_path, capsys, value):
    # range(0, n, -1) is empty: the sweep would launch nothing and ask to be run again
    sweeper, task = sweeper_for([*args, f"hydra.sweeper.max_batch_size={value}"])
    with pytest.raises(SystemExit) as stop:
        sweeper.sweep(task)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"hydra.sweeper.max_batch_size={value}: jobs handed to the launcher at once" in err
    assert sweeper.launcher.launched == [] and not (sweep_dir(tmp_path) / "sweep.json").exists()


@pytest.mark.parametrize(("every", "warned"), [("inf", True), ("1200", True), ("1199", False)])
def test_a_checkpoint_rarer_than_a_slurm_run_is_warned_about_before_launch(
    args, monkeypatch, caplog, capsys, every, warned
):
    # a run of 22 min (1,320 s, less the 120 s signal delay: 1,200 s) that ends before
    # run.checkpoint_every_s passed saves nothing: a requeued job would start over each time
    monkeypatch.setenv("NASHEUR_SLURM_TIME_MIN", "22")
    overrides = [*args, "hydra/launcher=slurm", "hydra.sweeper.dry_run=true"]
    sweeper, task = sweeper_for([*overrides, f"run.checkpoint_every_s={every}"], stand_in=False)
    with caplog.at_level(logging.WARNING):
        sweeper.sweep(task)
    said = [r.getMessage() for r in caplog.records if "checkpoint_every_s" in r.getMessage()]
    assert bool(said) == warned, said
    if warned:
        assert "not below a SLURM run's 1200 s" in said[0] and "starts again" in said[0]
    capsys.readouterr()
    caplog.clear()
    sweeper, task = sweeper_for([*args, f"run.checkpoint_every_s={every}"])  # run here
    with caplog.at_level(logging.WARNING):
        sweeper.sweep(task)
    local = [*args, "hydra/launcher=submitit_local", "hydra.sweeper.dry_run=true"]
    sweeper, task = sweeper_for([*local, f"run.checkpoint_every_s={every}"], stand_in=False)
    with caplog.at_level(logging.WARNING):
        sweeper.sweep(task)  # submitit's local executor: no SLURM run to outlast
    assert not [r for r in caplog.records if "checkpoint_every_s" in r.getMessage()]


def test_a_dry_run_says_how_the_launcher_packs_the_jobs_it_launches(
    args, tmp_path, monkeypatch, capsys
):
    # the 4 jobs to run go in 2 SLURM array tasks of 3 and 1, as a launch's summary says
    monkeypatch.setenv("NASHEUR_SLURM_JOBS_PER_TASK", "3")
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    dry, task = sweeper_for(
        [*args, "hydra.sweeper.dry_run=true", "hydra/launcher=slurm"], stand_in=False
    )
    dry.sweep(task)
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith(
        "(4 to run: 2 SLURM tasks of up to 3 jobs each); nothing was launched or written"
    )
    # one job per task (the default): nothing to say
    monkeypatch.delenv("NASHEUR_SLURM_JOBS_PER_TASK")
    dry, task = sweeper_for(
        [*args, "hydra.sweeper.dry_run=true", "hydra/launcher=slurm"], stand_in=False
    )
    dry.sweep(task)
    assert "(4 to run); nothing" in capsys.readouterr().out.splitlines()[0]


def test_the_slurm_profile_packs_one_job_per_task_by_default(args, monkeypatch):
    monkeypatch.delenv("NASHEUR_SLURM_JOBS_PER_TASK", raising=False)
    sweeper, _ = sweeper_for([*args, "hydra/launcher=slurm"], stand_in=False)
    assert sweeper.launcher.jobs_per_task == 1
    monkeypatch.setenv("NASHEUR_SLURM_JOBS_PER_TASK", "4")
    sweeper, _ = sweeper_for([*args, "hydra/launcher=slurm"], stand_in=False)
    assert sweeper.launcher.jobs_per_task == 4
    assert "jobs_per_task" not in sweeper.launcher.params  # not an sbatch option


def test_completed_jobs_are_always_skipped_and_skip_completed_is_gone(args):
    # a completed job returns at once when run again (run_job): an option to launch it again
    # would launch it for nothing; its folder is deleted to run it anew
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="skip_completed"):
        sweeper_for([*args, "hydra.sweeper.skip_completed=false"])


def test_levels_on_the_command_line_resolve_without_an_experiment(args):
    # TINY_JOB's baseline: 4 channels, 1 layer
    sweeper, task = sweeper_for([*_no_experiment(args), "fidelity.channels=base/2,base"])
    jobs = sweeper.plan(task)
    assert sorted(o for j in jobs for o in j if o.startswith("fidelity.channels")) == [
        "fidelity.channels=2",
        "fidelity.channels=4",
    ]
    assert len(sweeper._check(jobs)) == 2
    # one level: as a one-value sweep (a plain value meets Hydra's int schema first)
    sweeper, task = sweeper_for([*_no_experiment(args), "fidelity.layers=choice(base+1)"])
    (job,) = sweeper.plan(task)
    assert "fidelity.layers=2" in job
    # in an experiment that does not sweep the key: into every job, resolved
    sweeper, task = sweeper_for([*args, "fidelity.channels=base/2,base"])
    jobs = sweeper.plan(task)
    assert len(jobs) == 8 and {o for j in jobs for o in j if "fidelity.channels=" in o} == {
        "fidelity.channels=2",
        "fidelity.channels=4",
    }
    sweeper, task = sweeper_for([*_no_experiment(args), "fidelity.channels=base/8,base"])
    with pytest.raises(
        ablation_sweeper.SweepError, match=r"fidelity\.channels=base/8: base/8 of 4"
    ):
        sweeper.plan(task)


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_a_stopped_sweep_ends_with_its_summary_and_no_traceback(args, tmp_path, how, capsys):
    # the submitting process stopped by Ctrl-C or `kill`: the summary, the exit status a shell
    # reports (130, 143), no traceback; SIGTERM is caught although no job runs in this process
    class Elsewhere(Exception):
        """Raised by the stand-in SIGTERM handler: the sweep did not take the signal over."""

    def raising(signum, frame):  # what the test runner would otherwise die of
        raise Elsewhere

    def stop(overrides):
        if how == "Ctrl-C":
            return KeyboardInterrupt()
        os.kill(os.getpid(), signal.SIGTERM)
        return "completed"

    previous = signal.signal(signal.SIGTERM, raising)
    try:
        sweeper, task = sweeper_for(args, outcome=stop)
        with pytest.raises(SystemExit) as stopped:
            sweeper.sweep(task)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == (130 if how == "Ctrl-C" else 143)
    err = capsys.readouterr().err
    assert f"stopped by {how}" in err and "the same command resumes the sweep" in err
    assert signal.getsignal(signal.SIGTERM) is previous


def test_no_ground_truth_falls_back_to_embedded_here_but_not_on_a_cluster(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("NASHEUR_SITE_ENV", raising=False)
    for space in ("NB101", "NB201", "DARTS_NDS"):
        monkeypatch.delenv(f"NASHEUR_GT_{space}", raising=False)
    here, task = sweeper_for(["+experiment=bn_ablation", "seed=0"])
    with caplog.at_level(logging.WARNING):
        jobs = here.plan(task)
    assert {j[0] for j in jobs} == {"search_space=embedded"}
    assert "sweeping search_space=embedded, the default, instead" in caplog.text
    cluster, task = sweeper_for(
        ["+experiment=bn_ablation", "seed=0", "hydra/launcher=slurm"], stand_in=False
    )
    with pytest.raises(ablation_sweeper.SweepError, match="does not fall back") as refused:
        cluster.plan(task)
    assert "NASHEUR_GT_NB201" in str(refused.value)
    assert "(e.g. in launch/site.env)" in str(refused.value)
    # the message sends the user to the site profile in use (launch/with_site_env.sh's)
    monkeypatch.setenv("NASHEUR_SITE_ENV", str(tmp_path / "our-site.env"))
    with pytest.raises(ablation_sweeper.SweepError, match="does not fall back") as refused:
        cluster.plan(task)
    assert f"(e.g. in {tmp_path / 'our-site.env'})" in str(refused.value)


def test_a_dry_run_says_what_a_launch_would_do_and_writes_nothing(
    args, tmp_path, monkeypatch, capsys
):
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    capsys.readouterr()
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    dry, task = sweeper_for([*args, "hydra.sweeper.dry_run=true", "hydra/launcher=slurm"])
    assert dry.sweep(task) == [] and dry.launcher.launched == []
    out = capsys.readouterr().out
    assert out.startswith(
        f"dry run: 4 jobs in {sweep_dir(tmp_path)} (3 to run, 1 to copy); nothing"
    )
    assert "  copy (completed in " in out and out.count("\n  run: search_space=nb201 ") == 3
    assert not sweep_dir(tmp_path).exists()
    # once they ran: skipped
    bn, task = sweeper_for(args)
    bn.sweep(task)
    assert "(4 to skip); nothing" in dry_run(args, capsys)
    # one stopped with a checkpoint resumes from it; one stopped before its first checkpoint
    # (run.checkpoint_every_s) starts again
    folders = [Path(j["folder"]) for j in listed(tmp_path)[:2]]
    for folder in folders:
        record = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (folders[0] / "checkpoint.pt").write_bytes(b"x")
    (folders[1] / "checkpoint.pt").unlink(missing_ok=True)
    out = dry_run(args, capsys)
    assert "  resume (from its checkpoint): " in out
    assert "  resume (from the start: it stopped before its first checkpoint): " in out
    assert out.index(str(folders[1])) > out.index("from the start")
    # one whose record cannot be read: the job, launched, refuses it (it is not overwritten)
    (folders[0] / "metrics.json").write_text('{"status": "compl')
    out = dry_run(args, capsys)
    assert "(1 to fail, 1 to resume, 2 to skip)" in out
    said = "  fail (its metrics.json cannot be read: move it away to run the job): "
    assert said in out and out.index(str(folders[0])) > out.index(said)
    bn, task = sweeper_for(args)
    bn.sweep(task)
    assert len(bn.launcher.launched) == 2  # launched with the one to resume, as said


@pytest.mark.parametrize(
    ("content", "state"),
    [
        (b"\xff\xfe{}", "broken"),  # not UTF-8 text
        (b'{"status": "compl', "broken"),
        (b'{"config_hash": "h", "status": "completed", "ground_truth": "x"}', "completed"),
    ],
)
def test_a_jobs_state_reads_any_record_without_a_traceback(tmp_path, content, state):
    from nasheur.sweep.manifest import job_state

    (tmp_path / "metrics.json").write_bytes(content)
    assert job_state(tmp_path, "h") == state


# ---------------------------------------------------------------------------------------------
# audit: what the plan keeps, drops and runs once


def test_a_plan_lists_each_job_once():
    # expand's contract: duplicates are dropped (a seed or a value given twice, a value two
    # blocks share), whatever order the keys come in
    jobs = expand(
        ["nb201"],
        [0, 0, 1],
        [{"protocol.lr": [0.1, 0.1, 0.2]}, {"protocol.lr": [0.2]}],
        {"nb201": {}},
    )
    assert sorted(map(sorted, jobs)) == sorted(
        sorted(["search_space=nb201", f"protocol.lr={lr}", f"seed={s}"])
        for lr in (0.1, 0.2)
        for s in (0, 1)
    )


def test_a_pinned_list_with_a_value_off_the_experiments_list_replaces_it_whole():
    # module doc and expand: values the experiment lists all restrict it; one it does not list
    # replaces the key's values in every block, so none of the command line's values is lost
    blocks = [{"protocol.lr": [0.05, 0.1, 0.2]}]
    restricted = expand(["nb201"], [0], blocks, {"nb201": {}}, pinned={"protocol.lr": [0.1, 0.2]})
    replaced = expand(["nb201"], [0], blocks, {"nb201": {}}, pinned={"protocol.lr": [0.1, 0.3]})

    def lrs(jobs):
        return sorted(o for job in jobs for o in job if o.startswith("protocol.lr="))

    assert lrs(restricted) == ["protocol.lr=0.1", "protocol.lr=0.2"]
    assert lrs(replaced) == ["protocol.lr=0.1", "protocol.lr=0.3"]


def test_rows_of_one_config_launch_one_job(args, tmp_path):
    # two blocks that each hold the space's baseline (NB201 trains with track F, affine T,
    # Table 14) plan it twice under other overrides; it is one config, one folder, one job
    sweeper, task = sweeper_for(args)
    sweeper.blocks = [{"protocol.bn_track": [False, True]}, {"protocol.bn_affine": [True, False]}]
    sweeper.sweep(task)
    launched = sweeper.launcher.launched
    assert len(sweeper.plan(task)) == 4 and len(launched) == 3
    folders = [j["folder"] for j in listed(tmp_path)]
    assert len(folders) == len(set(folders)) == 3


def test_one_config_spelt_two_ways_is_one_job(args, tmp_path):
    # eval.recalibrate_batches is no part of a job's identity under eval.bn=batch: the two
    # values name two folders of one config hash, which a launch must not run side by side
    sweeper, task = sweeper_for(
        [*_no_experiment(args), "eval.bn=batch", "eval.recalibrate_batches=3,10"]
    )
    jobs = sweeper.plan(task)
    assert len(jobs) == 2
    (kept,) = sweeper._check(jobs)
    assert "eval.recalibrate_batches=3" in kept.overrides


def test_a_jobs_state_at_launch_follows_its_folder(tmp_path):
    # module doc: completed jobs are skipped, interrupted ones (a checkpoint, no record yet)
    # resume from it, failed ones run again; a record of another config is not this job's
    from nasheur.sweep.dry_run import DRY_RUN
    from nasheur.sweep.manifest import job_state

    assert job_state(tmp_path, "h") == "new"
    (tmp_path / "metrics.json").write_text(
        json.dumps({"config_hash": "h", "status": "interrupted"})
    )
    assert job_state(tmp_path, "h") == "interrupted"
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert job_state(tmp_path, "h") == "interrupted"
    assert DRY_RUN["interrupted"] == ("resume", "from its checkpoint")
    for status in ("failed", "completed"):
        (tmp_path / "metrics.json").write_text(json.dumps({"config_hash": "h", "status": status}))
        assert job_state(tmp_path, "h") == status
    assert job_state(tmp_path, "other") == "other-config"


def test_a_completed_job_whose_ground_truth_changed_is_launched_again(args, tmp_path):
    # a job evaluated against a ground truth that changed since is evaluated again (from its
    # checkpoint), not skipped as completed; the others are skipped
    sweeper, task = sweeper_for(args)
    sweeper.sweep(task)
    stale = Path(listed(tmp_path)[0]["folder"])
    record = json.loads((stale / "metrics.json").read_text())
    gt = str(tmp_path / "gt.csv")
    record["ground_truth"] = {"fingerprint": {"path": gt, "stamp": "0-0", "sha256": "0" * 64}}
    (stale / "metrics.json").write_text(json.dumps(record))
    again, task = sweeper_for(args)
    again.sweep(task)
    assert len(again.launcher.launched) == 1
    (entry,) = [j for j in listed(tmp_path) if Path(j["folder"]) == stale]
    assert entry["state_at_launch"] == "ground truth changed"


def test_only_a_job_that_never_started_counts_as_never_listed(tmp_path):
    # nasheur.reuse: a job the sweep listed and started (it had a folder) and whose folder is
    # gone was deleted to run it again; only one new at its latest launch that then did not
    # run it (`after: not run`) had no folder to delete, and may be copied from a sibling
    from nasheur.reuse import listed_jobs

    entries = {
        "a-new-not-run": ("new", "not run"),
        "b-interrupted-not-run": ("interrupted", "not run"),
        "c-failed-not-run": ("failed", "not run"),
        "d-new-completed": ("new", "completed"),
        "e-new-killed": ("new", None),
    }
    jobs = [
        {"folder": str(tmp_path / "nb201" / name), "state_at_launch": before}
        | ({"after": after} if after else {})
        for name, (before, after) in entries.items()
    ]
    (tmp_path / "sweep.json").write_text(json.dumps({"jobs": jobs}))
    everything = {f"nb201/{name}" for name in entries}
    assert listed_jobs(tmp_path) == everything
    assert listed_jobs(tmp_path, started_only=True) == everything - {"nb201/a-new-not-run"}


def test_a_sibling_job_that_failed_is_not_copied(args, tmp_path):
    # nasheur.reuse: only a *completed* job of the same config is copied; the baseline that
    # lr_ablation failed is trained here, with the other three
    lr, task = sweeper_for(_other_experiment(args, "lr_ablation"))
    lr.sweep(task)
    _with(_lr_baseline(tmp_path), status="failed", error="RuntimeError: boom")
    bn, task = sweeper_for(args)
    bn.sweep(task)
    assert len(bn.launcher.launched) == 4
    assert not any("reused_from" in j for j in listed(tmp_path))


def test_the_size_of_a_generated_set_is_part_of_a_jobs_identity(tmp_path):
    # a generated set's num_images, image_size and num_classes decide the images a job trains
    # on: another value is another job (another folder, not a completed one skipped); on
    # CIFAR-10 nothing reads them, and they leave its folder alone
    from nasheur.config import config_hash, plain
    from tests.conftest import compose_job

    gt = f"ground_truth.path={tmp_path / 'gt.csv'}"

    def chash(*overrides):
        return config_hash(plain(compose_job([*TINY_JOB, gt, *overrides])))

    generated = {
        chash(),
        chash("dataset.num_images=320"),
        chash("dataset.image_size=12"),
        chash("dataset.num_classes=5"),
    }
    assert len(generated) == 4
    cifar = ["dataset=cifar10", f"dataset.root={tmp_path}"]
    assert chash(*cifar) == chash(*cifar, "dataset.num_images=320", "dataset.num_classes=5")


def test_a_launched_jobs_end_is_what_its_result_and_record_say(tmp_path):
    # a failed result whose record says interrupted (SIGTERM, a requeue) resumes: interrupted;
    # a job its cluster ended without a result is what its record, written since, says
    from nasheur.jobguard import NoResult
    from nasheur.sweep.outcomes import Outcome, settle

    def job(name, status, value):
        folder = tmp_path / "nb201" / name
        folder.mkdir(parents=True)
        record = {"config_hash": name, "status": status}
        (folder / "metrics.json").write_text(json.dumps(record))
        outcome = Outcome([f"seed={len(name)}"], folder, name, before="new", launched=True)
        returned = JobReturn(overrides=[], status=JobStatus.FAILED, _return_value=value)
        return outcome, returned

    cases = {
        "a": ("interrupted", RuntimeError("stopped"), "interrupted"),
        "bb": ("failed", RuntimeError("boom"), "failed"),
        "ccc": ("failed", NoResult("job 1_2 ended without a result"), "failed"),
        "dddd": ("interrupted", NoResult("job 1_3 ended without a result"), "interrupted"),
    }
    made = [job(name, status, value) for name, (status, value, _) in cases.items()]
    todo = [o for o, _ in made]
    settle(todo, [r for _, r in made])
    assert [o.after for o in todo] == [after for *_, after in cases.values()]


def test_sweep_json_records_how_a_job_left_to_another_launch_ended(tmp_path):
    from nasheur.sweep.manifest import RUNNING
    from nasheur.sweep.outcomes import Outcome, record_after

    folder = tmp_path / "nb201" / "x-h"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"config_hash": "h", "status": "completed"}))
    left = Outcome(["seed=0"], folder, "h", before=RUNNING, after="running elsewhere")
    record_after(tmp_path, [left])
    (entry,) = json.loads((tmp_path / "sweep.json").read_text())["jobs"]
    assert entry["state_at_launch"] == RUNNING and entry["after"] == "completed"


def test_the_classes_the_sweep_checks_survive_hydras_plugin_scan():
    """Hydra's scan of ``hydra_plugins`` executes each plugin module again where the plugins
    are installed as plain files (a wheel, PYTHONPATH): a class defined in a plugin module is
    then made twice, and the sweeper's ``isinstance`` check of a job that its cluster ended
    would miss the launcher's. NoResult, SweepError and the rest of the sweep's machinery live
    outside the plugins (nasheur.sweep), so every module finds one class.
    (In a fresh interpreter: modules executed again would change this one's classes.)"""
    code = """if True:
        import importlib
        from hydra_plugins.nasheur_ablation import ablation_sweeper, packed_launcher
        from nasheur.jobguard import NoResult
        from nasheur.sweep.plan import SweepError
        for module in (packed_launcher, ablation_sweeper):  # as Hydra's scan
            importlib.util.find_spec(module.__name__).loader.exec_module(module)
        assert packed_launcher.NoResult is NoResult, "packed_launcher"
        assert ablation_sweeper.NoResult is NoResult, "ablation_sweeper"
        assert ablation_sweeper.SweepError is SweepError, "SweepError"
    """
    proc = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
