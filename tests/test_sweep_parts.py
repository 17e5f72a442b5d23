"""The parts of the sweep machinery called directly (nasheur.sweep.*, nasheur.reuse): a job's
state from hand-written folders, sweep.json, each job's end after a launch, the summary and
the failure message, submitit's jobs, the plan, and copying a sibling sweep's twin. No Hydra
config is composed and nothing is launched (tests/test_sweeper.py runs whole sweeps)."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from nasheur import reuse
from nasheur.jobguard import FolderLocked, NoResult, hold_folder
from nasheur.reuse import (
    LEFT,
    SUBMITTED,
    Claims,
    TrainedTwins,
    adopt,
    adopt_training,
    completed_twin,
    listed_jobs,
    manifest_key,
    stuck_reason,
    sweep_twins,
    trained_in,
)
from nasheur.sweep import launchers, manifest, outcomes, plan, twins
from nasheur.sweep.outcomes import Outcome, failure_message, first_line, settle, summary
from nasheur.sweep.plan import SweepError, expand, format_value, resolve_relative

COMPLETED = {"status": "completed", "config": {}, "metrics": {"sparse_kendall_tau": 0.5}}


def write_record(folder: Path, chash: str = "h", **record) -> Path:
    """A job folder with a metrics.json of `chash` (by default a completed one tables read)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {**COMPLETED, "config_hash": chash, **record}
    (folder / "metrics.json").write_text(json.dumps(body))
    return folder


def write_manifest(sweep: Path, *folders: Path, **entry) -> None:
    jobs = [{"folder": str(f), "state_at_launch": "new", **entry} for f in folders]
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "sweep.json").write_text(json.dumps({"jobs": jobs}))


def sibling(tmp_path: Path, name: str = "lr", chash: str = "h", **record) -> Path:
    """A job of `chash` that the sibling sweep `name` lists, completed unless said otherwise."""
    folder = write_record(tmp_path / "sweeps" / name / "nb201" / f"job-{chash}", chash, **record)
    write_manifest(folder.parent.parent, folder)
    return folder


# ---------------------------------------------------------------------------------------------
# manifest: a job's state from its folder, and sweep.json


@pytest.mark.parametrize(
    ("record", "state"),
    [
        ("[1, 2]", "broken"),  # JSON, but not an object: no status to read
        ('{"config_hash": "h"}', "unknown"),  # a record without a status
        ('{"config_hash": "h", "status": "interrupted"}', "interrupted"),
        ('{"config_hash": "x", "status": "completed"}', "other-config"),
    ],
)
def test_a_jobs_state_is_what_its_record_says(tmp_path, record, state):
    (tmp_path / "metrics.json").write_text(record)
    assert manifest.job_state(tmp_path, "h") == state


def test_a_completed_job_against_a_ground_truth_that_changed_is_said_so(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("a,b\n")
    fingerprint = {"path": str(gt), "stamp": "0-0", "sha256": "0" * 64}
    write_record(tmp_path / "job", ground_truth={"fingerprint": fingerprint})
    assert manifest.job_state(tmp_path / "job", "h") == "ground truth changed"
    # a failed one is failed whatever its ground truth: it runs again anyway
    write_record(tmp_path / "job", status="failed", ground_truth={"fingerprint": fingerprint})
    assert manifest.job_state(tmp_path / "job", "h") == "failed"


def test_only_a_jobs_own_record_gives_its_recorded_state(tmp_path):
    # a checkpoint alone is no record; another config's record is not this job's
    assert manifest.recorded_state(tmp_path, "h") is None
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert manifest.recorded_state(tmp_path, "h") is None
    write_record(tmp_path, "h", status="failed")
    assert manifest.recorded_state(tmp_path, "h") == "failed"
    assert manifest.recorded_state(tmp_path, "other") is None


def test_a_missing_sweep_json_lists_no_jobs(tmp_path):
    assert manifest.read_or_rebuild(tmp_path / "sweep.json") == []


def test_a_damaged_sweep_json_is_kept_aside_and_rebuilt_from_the_job_folders(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    done = write_record(sweep / "nb201" / "a-h")
    (done / ".hydra").mkdir()
    (done / ".hydra" / "overrides.yaml").write_text("- seed=0\n- protocol.lr=0.1\n")
    resumable = sweep / "nb201" / "b-h"
    resumable.mkdir(parents=True)
    (resumable / "checkpoint.pt").write_bytes(b"x")
    broken = sweep / "nb201" / "c-h"
    broken.mkdir()
    (broken / "metrics.json").write_text("[]")  # not an object
    (sweep / "nb201" / "d-h").mkdir()  # nothing in it: no job was made there
    (broken / ".hydra").mkdir()
    (broken / ".hydra" / "overrides.yaml").write_text("seed: 0\n")  # not a list
    (sweep / "sweep.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        jobs = manifest.read_or_rebuild(sweep / "sweep.json")
    assert jobs == [
        {
            "overrides": ["seed=0", "protocol.lr=0.1"],
            "folder": str(done),
            "config_hash": "h",
            "state_at_launch": "completed",
        },
        {
            "overrides": [],
            "folder": str(resumable),
            "config_hash": None,
            "state_at_launch": "interrupted",
        },
        {"overrides": [], "folder": str(broken), "config_hash": None, "state_at_launch": "broken"},
    ]
    assert not (sweep / "sweep.json").exists()
    (kept,) = sweep.glob("sweep.json.damaged-*")
    assert kept.read_text() == "{not json"
    assert "3 job folders" in caplog.text and kept.name in caplog.text


def test_a_record_that_is_not_json_is_a_broken_job_in_the_rebuilt_list(tmp_path):
    folder = tmp_path / "nb201" / "a-h"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_bytes(b"\xff{")
    (job,) = manifest.jobs_in_folders(tmp_path)
    assert job["state_at_launch"] == "broken" and job["config_hash"] is None


def test_a_launch_replaces_its_jobs_entries_in_place_and_keeps_the_others(tmp_path):
    first = [{"folder": f"runs/x/nb201/{n}", "state_at_launch": "new"} for n in "abc"]
    manifest.merge_manifest(tmp_path, first)
    # the same job folder named from another directory is the same job (manifest_key)
    again = {"folder": "/elsewhere/nb201/b", "state_at_launch": "completed"}
    manifest.merge_manifest(tmp_path, [again, {"folder": "nb201/d", "state_at_launch": "new"}])
    jobs = json.loads((tmp_path / "sweep.json").read_text())["jobs"]
    assert [j["folder"] for j in jobs] == [
        "runs/x/nb201/a",
        "/elsewhere/nb201/b",
        "runs/x/nb201/c",
        "nb201/d",
    ]
    assert jobs[1]["state_at_launch"] == "completed"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ({"error": "RuntimeError: boom\n  at line 3"}, ": RuntimeError: boom"),
        ({"error": "  \n"}, ""),  # blank: nothing to say
        ({"error": None}, ""),
        ({"error": "x" * 400}, ": " + "x" * 300),  # cut at 300 characters
        ([], ""),  # not an object
    ],
)
def test_a_failed_jobs_recorded_error_is_its_first_line(tmp_path, content, said):
    (tmp_path / "metrics.json").write_text(json.dumps(content))
    assert manifest.recorded_error(tmp_path) == said


def test_no_record_has_no_recorded_error(tmp_path):
    assert manifest.recorded_error(tmp_path) == ""


# ---------------------------------------------------------------------------------------------
# outcomes: each job's end, the summary, the failure message


def test_an_outcomes_entry_lists_only_what_it_knows(tmp_path):
    o = Outcome(["seed=0"], tmp_path / "nb201" / "a", "h", before="new")
    assert o.entry() == {
        "overrides": ["seed=0"],
        "folder": str(tmp_path / "nb201" / "a"),
        "config_hash": "h",
        "state_at_launch": "new",
    }
    o.trained_in = "/t"
    o.detail = "x"
    o.copied(Path("/src"))
    assert (o.before, o.after, o.detail) == ("completed", "completed", "")
    assert o.entry()["reused_from"] == "/src" and o.entry()["after"] == "completed"
    assert o.entry()["trained_in"] == "/t"
    o.copied(Path("/src"), before="new")
    assert o.before == "new"


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (RuntimeError(""), "RuntimeError"),
        (ValueError("  bad\nmore"), "ValueError: bad"),
        (KeyError("k"), "KeyError: 'k'"),
    ],
)
def test_an_errors_first_line_names_its_type(err, line):
    assert first_line(err) == line


def test_an_errors_first_line_is_cut_at_300_characters():
    fits = RuntimeError("x" * (300 - len("RuntimeError: ")))
    assert first_line(fits) == str(f"RuntimeError: {fits}")  # exactly 300: kept whole
    long = first_line(RuntimeError("y" * 400))
    assert len(long) == 300 and long.endswith("y...")


def _launched(folder: Path, chash: str = "h") -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    return Outcome(["seed=0"], folder, chash, before="new", launched=True)


def _returned(value, status=JobStatus.FAILED) -> JobReturn:
    return JobReturn(overrides=[], status=status, _return_value=value)


def test_a_job_another_copy_started_first_is_running_elsewhere(tmp_path):
    o = _launched(tmp_path / "a")
    settle([o], [_returned(FolderLocked(o.folder, {"pid": 7, "host": "n1"}))])
    assert (o.after, o.detail) == ("running elsewhere", "pid 7 on n1")


@pytest.mark.parametrize(
    ("status", "after", "detail"),
    [
        ("completed", "completed", ""),  # its record since the launch stands, no error
        ("failed", "failed", "job 1_2 ended without a result"),
        ("interrupted", "interrupted", "job 1_2 ended without a result"),
        (None, "no record", "job 1_2 ended without a result"),
    ],
)
def test_a_job_its_cluster_ended_is_what_its_record_says(tmp_path, status, after, detail):
    o = _launched(tmp_path / "a")
    if status:
        write_record(o.folder, status=status)
    settle([o], [_returned(NoResult("job 1_2 ended without a result"))])
    assert (o.after, o.detail) == (after, detail)


def test_a_completed_result_completes_whatever_its_folder_says(tmp_path):
    o = _launched(tmp_path / "a")
    write_record(o.folder, status="failed")
    settle([o], [_returned(0.5, JobStatus.COMPLETED)])
    assert o.after == "completed"


def test_a_failed_result_that_is_no_exception_is_said_as_it_is(tmp_path):
    o = _launched(tmp_path / "a")
    settle([o], [_returned("odd")])
    assert (o.after, o.detail) == ("failed", "'odd'")


@pytest.mark.parametrize(
    ("status", "after"),
    [
        ("completed", "completed"),
        ("interrupted", "interrupted"),
        ("failed", "not run"),
        (None, "not run"),
    ],
)
def test_a_job_without_a_result_is_what_its_folder_says(tmp_path, status, after):
    # the launch stopped before its result: only a completed or interrupted record counts;
    # an older failed record says nothing of this launch
    o = _launched(tmp_path / "a")
    if status:
        write_record(o.folder, status=status)
    o.launch()  # the records above are from before this launch
    settle([o], [], pending="not run")
    assert o.after == after


def test_a_job_that_failed_in_this_launch_before_it_stopped_is_failed(tmp_path):
    # Ctrl-C under the default launcher loses the results of the jobs it ran already: a job
    # that failed in this launch is failed (with its error), not "not run"
    o = _launched(tmp_path / "a")
    o.launch()
    write_record(o.folder, status="failed", error="GroundTruthError: bad row\nmore")
    settle([o], [], pending="not run")
    assert (o.after, o.detail) == ("failed", "GroundTruthError: bad row")


def test_a_job_its_cluster_ended_with_only_an_older_record_has_no_record(tmp_path):
    # killed (the OOM killer) in this launch: the failed record of an earlier launch is not
    # why, and does not say why
    o = _launched(tmp_path / "a")
    write_record(o.folder, status="failed", error="UnreadableCheckpoint: an old one")
    o.launch()
    settle([o], [_returned(NoResult("the process of job #0 ended without a result"))])
    assert (o.after, o.detail) == ("no record", "the process of job #0 ended without a result")


def test_a_job_without_a_result_that_runs_now_is_not_finished(tmp_path):
    o = _launched(tmp_path / "a")
    write_record(o.folder)  # stale: a resubmission runs it again
    with hold_folder(o.folder):
        settle([o], [])
    assert o.after == "not finished" and o.detail.startswith("running, pid ")


def test_results_go_to_the_jobs_in_launch_order(tmp_path):
    a, b, c = (_launched(tmp_path / n) for n in "abc")
    settle([a, b, c], [_returned(1, JobStatus.COMPLETED), _returned(RuntimeError("x"))])
    assert [o.after for o in (a, b, c)] == ["completed", "failed", "not finished"]


def test_a_job_left_to_another_launch_is_said_as_it_ended(tmp_path):
    held, failed, gone = (tmp_path / "nb201" / n for n in ("held", "failed", "gone"))
    write_record(failed, status="failed", error="RuntimeError: boom\ntrace")
    gone.mkdir(parents=True)
    held.mkdir(parents=True)
    left = [
        Outcome([f"seed={i}"], f, "h", before="new", after="running elsewhere", detail="old")
        for i, f in enumerate((held, failed, gone))
    ]
    untouched = Outcome(["seed=9"], tmp_path / "nb201" / "x", "h", before="completed")
    with hold_folder(held):
        outcomes.record_after(tmp_path, [*left, untouched])
    assert left[0].after == "running elsewhere" and left[0].detail.startswith("pid ")
    assert left[1].after == "failed"
    assert left[1].detail == "ran elsewhere, ended during this launch: RuntimeError: boom"
    assert (left[2].after, left[2].detail) == (
        "no record",
        "ran elsewhere, ended during this launch",
    )
    # neither launched nor ended by this launch: not written again
    jobs = json.loads((tmp_path / "sweep.json").read_text())["jobs"]
    assert [j["after"] for j in jobs] == ["running elsewhere", "failed", "no record"]


def _outcome(name: str, after: str, before: str = "new", folder=None, **kw) -> Outcome:
    folder = folder or Path("/s/nb201") / name
    return Outcome([f"j={name}"], folder, "h", before=before, after=after, **kw)


def test_the_summary_counts_each_state_in_order_and_says_where_the_results_are(tmp_path):
    config = OmegaConf.create({"experiment": {"name": "bn", "table": "5, 6"}})
    done = [
        _outcome("a", "completed", before="completed"),
        _outcome("b", "completed", launched=True),
        _outcome("c", "completed", reused="/x"),
        _outcome("d", "failed", launched=True, detail="boom"),
        _outcome("e", "not run"),
    ]
    lines = summary(config, Path("/s"), done, done)
    assert lines[0] == (
        "nasheur: sweep bn: 5 jobs: 3 completed (1 before this launch, 1 copied from other "
        "sweeps, where they completed), 1 failed, 1 not run"
    )
    assert lines[1:3] == ["  failed: nb201/d: boom", "  not run: nb201/e"]
    assert lines[-3:] == [
        "  python -m nasheur.results show /s",
        "  python -m nasheur.results table /s --table 5",
        "  python -m nasheur.results table /s --table 6",
    ]


def test_a_summary_of_one_job_without_an_experiment_names_its_folder():
    lines = summary(OmegaConf.create({}), Path("/s/my sweep"), [_outcome("a", "failed")], [])
    assert lines[0] == "nasheur: sweep my sweep: 1 job: 1 failed"
    assert lines[1] == "  failed: /s/nb201/a"  # outside the sweep folder: as it is
    assert lines[-1] == "  python -m nasheur.results show '/s/my sweep'"


def test_a_summary_with_nothing_before_says_no_note_and_lists_at_most_20():
    done = [_outcome("ok", "completed", launched=True)] + [
        _outcome(str(i), "not run") for i in range(23)
    ]
    lines = summary(OmegaConf.create({}), Path("/s"), done, done, stopped="stopped by Ctrl-C")
    assert lines[0] == "nasheur: sweep s: 24 jobs: 1 completed, 23 not run; stopped by Ctrl-C"
    assert lines[20] == "  not run: nb201/19"
    assert lines[21] == "  ... and 3 more"
    assert summary(OmegaConf.create({}), Path("/s"), [], [])[0] == "nasheur: sweep s: 0 jobs: none"


def test_a_summary_of_exactly_20_unfinished_jobs_lists_them_all():
    done = [_outcome(str(i), "failed") for i in range(20)]
    lines = summary(OmegaConf.create({}), Path("/s"), done, done)
    assert not any(line.startswith("  ...") for line in lines)


def test_all_launched_jobs_completed_is_no_failure():
    assert failure_message([_outcome("a", "completed"), _outcome("b", LEFT)], None) is None


@pytest.mark.parametrize(
    ("afters", "message"),
    [
        (
            ["failed"],
            "1 of 1 launched job failed (metrics.json says why). Run the same command again "
            "to retry it once the cause is fixed",
        ),
        (
            ["failed", "failed", "completed"],
            "2 of 3 launched jobs failed (metrics.json says why; the other one completed). "
            "Run the same command again to retry them once the cause is fixed",
        ),
        (
            ["failed", "interrupted", "completed", "completed"],
            "2 of 4 launched jobs did not complete (1 failed, 1 interrupted; metrics.json says "
            "why; the others completed). Run the same command again to retry them once",
        ),
        (
            ["no record", "completed"],
            "1 of 2 launched jobs did not complete (1 no record; the other one completed). "
            "Run the same command again to retry it (completed",
        ),
        # a job left elsewhere neither failed nor completed: "the others completed" is not said
        (
            ["not finished", "running elsewhere"],
            "1 of 2 launched jobs did not complete (1 not finished). ",
        ),
    ],
)
def test_the_failure_message_counts_what_did_not_complete(tmp_path, afters, message):
    todo = [_outcome(str(i), a, folder=tmp_path / str(i)) for i, a in enumerate(afters)]
    for o in todo:
        if o.after == "failed":  # its record of the failure, written by this launch
            write_record(o.folder, status="failed", error="RuntimeError: x")
    said = failure_message(todo, None)
    assert said.startswith(message)


def test_a_failure_without_a_record_of_its_own_is_not_said_to_be_in_metrics_json(tmp_path):
    # a checkpoint of another config: refused, and nothing written (CheckpointMismatch)
    refused = _outcome("a", "failed", folder=tmp_path / "a")
    old = write_record(tmp_path / "b", status="failed", error="UnreadableCheckpoint: earlier")
    stale = _outcome("b", "failed", folder=old)
    stale.launch()  # that record is from before this launch
    recorded = _outcome("c", "failed", folder=tmp_path / "c")
    write_record(recorded.folder, status="failed", error="RuntimeError: x")
    assert "(the summary above says why)" in failure_message([refused], None)
    assert "(the summary above says why)" in failure_message([stale], None)
    assert "(metrics.json says why)" in failure_message([recorded], None)
    assert "(metrics.json or the summary above says why)" in failure_message(
        [refused, recorded], None
    )


def test_a_stopped_launch_says_the_jobs_may_still_run_in_slurm():
    said = failure_message([_outcome("a", "completed")], "SIGTERM")
    assert said.startswith(
        "0 of 1 launched job did not complete (the launcher stopped waiting: SIGTERM; the "
        "other jobs may still be running in SLURM (squeue)). Run the same command again to "
        "retry them (completed"
    )


def test_a_refused_submission_says_nothing_was_submitted():
    from nasheur.config import site_env_file

    said = failure_message([_outcome("a", "not run")], "sbatch: error: x", submitted=False)
    assert f"sbatch: error: x; they were not submitted: fix the cause ({site_env_file()})" in said
    assert "SLURM (squeue)" not in said


# ---------------------------------------------------------------------------------------------
# launchers


class _Launcher:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize(
    ("kw", "jobs", "batch", "said"),
    [
        ({}, 5, None, ""),
        ({"jobs_per_task": 4}, 1, None, ""),  # one job: one at a time
        ({"jobs_per_task": 4}, 8, None, "2 SLURM tasks of up to 4 jobs each"),
        ({"jobs_per_task": 4}, 9, None, "3 SLURM tasks of up to 4 jobs each"),
        ({"jobs_per_task": 4}, 2, None, "1 SLURM task of up to 4 jobs each"),
        # batches of 5 packed on their own: 5 -> 2 tasks, 5 -> 2, 1 -> 1
        ({"jobs_per_task": 4}, 11, 5, "5 SLURM tasks of up to 4 jobs each"),
        ({"jobs_at_once": 3}, 7, None, "3 at a time"),
        ({"jobs_at_once": 3}, 2, None, "2 at a time"),
        ({"jobs_at_once": 3}, 1, None, ""),
        # hydra.sweeper.max_batch_size: a batch ends before the next is launched
        ({"jobs_at_once": 3}, 7, 1, ""),
        ({"jobs_at_once": 3}, 7, 2, "2 at a time"),
        ({"jobs_at_once": 3}, 7, 5, "3 at a time"),
    ],
)
def test_how_a_launcher_runs_jobs_side_by_side(kw, jobs, batch, said):
    assert launchers.side_by_side(_Launcher(**kw), jobs, batch) == said


def test_only_submitits_launcher_submits():
    base = type(
        "SlurmLauncher",
        (),
        {"__module__": "hydra_plugins.hydra_submitit_launcher.submitit_launcher"},
    )
    child = type("Mine", (base,), {})
    assert launchers.submits(child())
    assert not launchers.submits(_Launcher())


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "Job 123_4 (task: 0) with path /x\nhas not produced any output (state: CANCELLED by 0)\nlog",
            "job 123_4 ended without a result (state: CANCELLED by 0)",
        ),
        ("Job 77 has not produced any output", "job 77 ended without a result"),
        ("no job named\nhere", "RuntimeError: no job named"),
    ],
)
def test_submitits_uncompleted_job_is_one_line(text, line):
    assert launchers.uncompleted_line(RuntimeError(text)) == line


def test_only_sbatchs_own_error_is_a_refused_submission():
    refused = RuntimeError("sbatch failed")
    refused.__cause__ = subprocess.CalledProcessError(1, ["sbatch"])
    assert launchers.refused_submission(refused)
    assert not launchers.refused_submission(RuntimeError("job ended"))


def test_a_job_slurm_ended_without_a_result_settles_as_a_failed_result():
    from submitit.core.utils import UncompletedJobError

    class Job:
        job_id = "5_1"

        def results(self):
            raise UncompletedJobError("Job 5_1 has not produced any output (state: TIMEOUT)")

    (r,) = launchers._Settled(Job(), ("seed=0",)).results()
    assert r.status == JobStatus.FAILED and r.overrides == ["seed=0"]
    assert isinstance(r._return_value, NoResult)
    assert str(r._return_value) == "job 5_1 ended without a result (state: TIMEOUT)"
    assert launchers._Settled(Job(), None).job_id == "5_1"  # the rest is the job's


@pytest.mark.parametrize(
    ("item", "jobs"),
    [
        ([], []),
        (None, []),
        (["a=1", "b=2"], [["a=1", "b=2"]]),
        ([(["a=1"], 0), ["b=2"], (), "junk"], [["a=1"], "b=2"]),  # a packed task's jobs
    ],
)
def test_the_jobs_of_an_array_task_are_read_from_its_item(item, jobs):
    assert launchers._job_overrides(item) == jobs


def test_map_array_wraps_nest_and_come_off_in_turn():
    import submitit

    original = submitit.AutoExecutor.map_array
    calls = []

    def outer(orig, executor, fn, *it):
        calls.append("outer")
        return ["outer"]

    def inner(orig, executor, fn, *it):
        calls.append("inner")
        return [*orig(executor, fn, *it), "inner"]

    with launchers.map_array_wrapped(outer):
        with launchers.map_array_wrapped(inner):
            assert submitit.AutoExecutor.map_array(None, None, []) == ["outer", "inner"]
        assert submitit.AutoExecutor.map_array(None, None, []) == ["outer"]
    assert calls == ["inner", "outer", "outer"]  # the inner wraps the outer
    assert submitit.AutoExecutor.map_array is original
    assert "map_array" not in submitit.AutoExecutor.__dict__  # inherited, as before


# ---------------------------------------------------------------------------------------------
# plan


def test_a_value_that_is_no_level_is_left_as_it_is():
    baseline = OmegaConf.create({"channels": 16})
    assert resolve_relative("fidelity.channels", 8, baseline) == 8
    assert resolve_relative("fidelity.channels", "based", baseline) == "based"
    assert resolve_relative("fidelity.channels", "base/2", baseline) == 8
    assert resolve_relative("a.b.channels", "base-1", baseline) == 15  # its last part


def test_a_level_without_a_baseline_or_that_names_no_value_is_a_sweep_error():
    baseline = OmegaConf.create({"channels": 36})
    with pytest.raises(SweepError, match=r"fidelity.epochs=base/2: .*fidelity.baseline.epochs"):
        resolve_relative("fidelity.epochs", "base/2", baseline)
    with pytest.raises(SweepError, match=r"fidelity.channels=base/8: base/8 of 36") as err:
        resolve_relative("fidelity.channels", "base/8", baseline)
    assert err.value.status == 2


@pytest.mark.parametrize(
    ("value", "text"), [(None, "null"), (True, "true"), (False, "false"), (0.1, "0.1"), (3, "3")]
)
def test_a_value_is_spelled_as_hydra_reads_it(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("only", "space", "family", "applies"),
    [
        (None, "nb201", "nb201", True),
        (["nb201"], "embedded", "nb201", True),  # embedded stands in for nb201
        (["nb201"], "embedded", "embedded", False),
        (["darts"], "nb201", "nb201", False),
        (["darts", "nb201"], "nb201", "nb201", True),
    ],
)
def test_a_block_applies_to_the_spaces_it_names(only, space, family, applies):
    block = {} if only is None else {"_spaces": only}
    assert plan.block_applies(block, space, family) is applies


def test_a_plan_runs_every_block_value_seed_and_extra_per_space():
    jobs = expand(
        ["nb201", "embedded", "darts"],
        [0],
        [{"_spaces": ["nb201"], "fidelity.channels": ["base/2"]}, {"protocol.lr": [0.1]}],
        {"nb201": {"channels": 16}, "embedded": {"channels": 8}, "darts": {}},
        extra=[["x=1"], ["x=2"]],
        paper_space={"embedded": "nb201"},
    )
    assert jobs == [
        ["search_space=nb201", "fidelity.channels=8", "seed=0", "x=1"],
        ["search_space=nb201", "fidelity.channels=8", "seed=0", "x=2"],
        ["search_space=nb201", "protocol.lr=0.1", "seed=0", "x=1"],
        ["search_space=nb201", "protocol.lr=0.1", "seed=0", "x=2"],
        ["search_space=embedded", "fidelity.channels=4", "seed=0", "x=1"],
        ["search_space=embedded", "fidelity.channels=4", "seed=0", "x=2"],
        ["search_space=embedded", "protocol.lr=0.1", "seed=0", "x=1"],
        ["search_space=embedded", "protocol.lr=0.1", "seed=0", "x=2"],
        ["search_space=darts", "protocol.lr=0.1", "seed=0", "x=1"],
        ["search_space=darts", "protocol.lr=0.1", "seed=0", "x=2"],
    ]


def test_a_pinned_level_restricts_blocks_by_the_value_it_resolves_to():
    # base/2 of 16 is 8: the command line's 8 names the experiment's base/2, so it restricts;
    # a block without the key then runs nothing
    blocks = [{"fidelity.channels": ["base/2", "base"]}, {"protocol.lr": [0.1]}]
    jobs = expand(
        ["nb201"], [0], blocks, {"nb201": {"channels": 16}}, pinned={"fidelity.channels": [8]}
    )
    assert jobs == [["search_space=nb201", "fidelity.channels=8", "seed=0"]]
    # a value off the list replaces every block's values, and joins the blocks without the key
    jobs = expand(
        ["nb201"], [0], blocks, {"nb201": {"channels": 16}}, pinned={"fidelity.channels": [4]}
    )
    assert jobs == [
        ["search_space=nb201", "fidelity.channels=4", "seed=0"],
        ["search_space=nb201", "protocol.lr=0.1", "fidelity.channels=4", "seed=0"],
    ]


def test_a_plan_without_blocks_runs_each_space_and_seed():
    assert expand(["nb201"], [0, 1], [], {}) == [
        ["search_space=nb201", "seed=0"],
        ["search_space=nb201", "seed=1"],
    ]


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("fidelity.channels=base/2,base", True),
        ("fidelity.channels=base", True),
        ("fidelity.channels=8", False),
        ("fidelity.baseline.channels=base", False),  # the baseline itself: no level of it
        ("protocol.lr=base", False),
        ("~fidelity.channels", False),
    ],
)
def test_only_a_fidelity_key_given_levels_names_levels(override, names):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (o,) = OverridesParser.create().parse_overrides([override])
    assert plan.names_levels(o) is names


def test_errors_are_grouped_by_message_and_cut_after_the_most():
    errors = {"bad a": [["x=1"]], "bad b": [["y=1", "z=2"], ["y=2"]], "bad c": [["w=0"]]}
    assert plan.grouped(errors, most=2) == (
        "  x=1: bad a\n  bad b (2 jobs, e.g. y=1 z=2)\n  ... and 1 more"
    )
    assert plan.grouped(errors, most=3).count("\n") == 2


# ---------------------------------------------------------------------------------------------
# reuse: the twins of sibling sweeps, copying them, claims


def test_a_jobs_key_is_its_space_and_folder_wherever_the_launch_ran():
    assert manifest_key("runs/sweeps/bn/nb201/a-h") == manifest_key("/abs/nb201/a-h") == "nb201/a-h"


def test_a_missing_or_damaged_sweep_json_lists_no_job(tmp_path):
    assert listed_jobs(tmp_path) == set()
    (tmp_path / "sweep.json").write_text("{")
    assert listed_jobs(tmp_path) == set()


def test_a_sweep_whose_own_sweep_json_is_damaged_copies_none_of_its_jobs(tmp_path, caplog):
    # a job deleted to run it again cannot be told from one never started: none is copied
    # back from a sibling sweep (README: a deleted job is trained, not copied back)
    source = sibling(tmp_path)
    sweep = tmp_path / "sweeps" / "bn"
    mine = sweep / "nb201" / "job-h"
    assert reuse.started_jobs(sweep) == set()  # a first launch: everything may be copied
    write_manifest(sweep, mine, state_at_launch="completed", after="completed")
    assert reuse.started_jobs(sweep) == {"nb201/job-h"}
    (sweep / "sweep.json").write_text('{"jobs": [{"folder": "')  # cut short
    with caplog.at_level(logging.WARNING, logger="nasheur.reuse"):
        listed = reuse.started_jobs(sweep)
    assert listed is None and "none is copied" in caplog.text
    assert twins.at_launch(mine, "h", sweep, listed) == ("new", None, None)
    assert not twins.copyable("new", mine, listed)
    assert completed_twin(mine, "h", sweep) == source  # a source for other sweeps still


def test_a_job_left_to_another_sweep_never_started(tmp_path):
    write_manifest(tmp_path, tmp_path / "nb201" / "a", after=LEFT)
    assert listed_jobs(tmp_path) == {"nb201/a"}
    assert listed_jobs(tmp_path, started_only=True) == set()


def test_the_twins_of_a_job_are_its_config_in_the_other_sweeps(tmp_path):
    sweeps = tmp_path / "sweeps"
    for name in ("bn/nb201/a-h", "lr/nb201/b-h", "lr/darts/c-h", "lr/nb201/d-x", "wd/nb201/e-h"):
        (sweeps / name).mkdir(parents=True)
    assert sweep_twins(sweeps, "nb201", "h") == [
        sweeps / "bn/nb201/a-h",
        sweeps / "lr/nb201/b-h",
        sweeps / "wd/nb201/e-h",
    ]
    assert sweep_twins(sweeps, "nb201", "h", besides=sweeps / "lr") == [
        sweeps / "bn/nb201/a-h",
        sweeps / "wd/nb201/e-h",
    ]


@pytest.mark.parametrize(
    "spoil",
    ["unlisted", "failed", "other hash", "unreadable", "problem", "no record", "held"],
)
def test_only_a_listed_usable_completed_twin_is_copied(tmp_path, spoil):
    source = sibling(tmp_path)
    mine = tmp_path / "sweeps" / "bn" / "nb201" / "job-h"
    assert completed_twin(mine, "h", mine.parent.parent) == source
    if spoil == "unlisted":
        write_manifest(source.parent.parent, source.parent / "other")
    elif spoil == "failed":
        write_record(source, status="failed")
    elif spoil == "other hash":
        write_record(source, "x")
    elif spoil == "unreadable":
        (source / "metrics.json").write_text("{")
    elif spoil == "problem":
        write_record(source, metrics={"sparse_kendall_tau": "high"})
    elif spoil == "no record":
        (source / "metrics.json").unlink()
    if spoil == "held":
        with hold_folder(source):
            assert completed_twin(mine, "h", mine.parent.parent) is None
    else:
        assert completed_twin(mine, "h", mine.parent.parent) is None


def test_a_twin_in_the_sweeps_own_folder_is_not_its_source(tmp_path):
    source = sibling(tmp_path, name="bn")
    assert completed_twin(source.parent / "job-h", "h", source.parent.parent) is None


def test_a_completed_twin_whose_ground_truth_changed_is_not_copied(tmp_path):
    fingerprint = {"path": str(tmp_path / "gone.csv"), "stamp": "1-1", "sha256": "0" * 64}
    sibling(tmp_path, ground_truth={"fingerprint": fingerprint})
    mine = tmp_path / "sweeps" / "bn" / "nb201" / "job-h"
    assert completed_twin(mine, "h", mine.parent.parent) is None


def test_a_copy_is_the_sources_record_as_this_experiments_job(tmp_path):
    source = sibling(tmp_path, config={"experiment": {"name": "lr"}, "seed": 0})
    (source / "checkpoint.pt").write_bytes(b"ckpt")
    (source / "pool.json").write_text("[]")
    record = json.loads((source / "metrics.json").read_text())
    record["choices"] = {"experiment": "lr", "search_space": "nb201"}
    (source / "metrics.json").write_text(json.dumps(record))
    folder = tmp_path / "sweeps" / "bn" / "nb201" / "job-h"
    assert adopt(source, folder, {"name": "bn", "factors": []})
    copy = json.loads((folder / "metrics.json").read_text())
    assert copy["config"] == {"experiment": {"name": "bn", "factors": []}, "seed": 0}
    assert copy["choices"] == {"experiment": "bn", "search_space": "nb201"}
    assert copy["reused_from"] == str(source.resolve())
    assert (folder / "checkpoint.pt").read_bytes() == b"ckpt"
    assert (folder / "pool.json").read_text() == "[]"
    assert not (folder / "trained_in.json").exists()
    # the source is left as it was
    assert json.loads((source / "metrics.json").read_text()) == record


def test_no_choices_are_made_up_in_a_copy(tmp_path):
    source = sibling(tmp_path, choices={"search_space": "nb201"})
    folder = tmp_path / "copy" / "nb201" / "job-h"
    assert adopt(source, folder, {"name": "bn"})
    assert json.loads((folder / "metrics.json").read_text())["choices"] == {"search_space": "nb201"}


def test_no_copy_over_a_record_or_into_a_held_folder_or_from_an_unreadable_one(tmp_path):
    source = sibling(tmp_path)
    taken = write_record(tmp_path / "taken", status="failed")
    assert not adopt(source, taken, {"name": "bn"})
    assert json.loads((taken / "metrics.json").read_text())["status"] == "failed"
    held = tmp_path / "held"
    held.mkdir()
    with hold_folder(held):
        assert not adopt(source, held, {"name": "bn"})
    assert not (held / "metrics.json").exists()
    assert not adopt(tmp_path / "nowhere", tmp_path / "new", {"name": "bn"})
    assert not (tmp_path / "new" / "metrics.json").exists()


def test_a_trained_twin_lends_its_checkpoint_with_a_note(tmp_path, monkeypatch):
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "training_hash", lambda config: f"t{config.get('seed')}")
    source = sibling(tmp_path, "lr", "h", config={"seed": 1})
    (source / "checkpoint.pt").write_bytes(b"ckpt")
    folder = tmp_path / "sweeps" / "bn" / "nb201" / "job-x"
    assert adopt_training(source, folder)
    assert (folder / "checkpoint.pt").read_bytes() == b"ckpt"
    note = json.loads((folder / "trained_in.json").read_text())
    assert note == {"source": str(source.resolve()), "config_hash": "h", "training_hash": "t1"}
    assert trained_in(folder, "t1") == note
    assert trained_in(folder, "t2") is None  # a note of another training
    assert not (folder / "metrics.json").exists()
    # a folder with a checkpoint or a record of its own by now keeps it
    assert not adopt_training(source, folder)
    other = write_record(tmp_path / "other", "x", status="failed")
    assert not adopt_training(source, other)
    assert not (other / "checkpoint.pt").exists()
    # no checkpoint to lend: the job trains
    (source / "checkpoint.pt").unlink()
    assert not adopt_training(source, tmp_path / "third")


@pytest.mark.parametrize(
    "note",
    [
        "{",
        "[]",
        '{"training_hash": "t"}',
        '{"training_hash": "t", "config_hash": 3, "source": "/s"}',
        '{"training_hash": "t", "config_hash": "h"}',
        '{"training_hash": "t", "config_hash": "h", "source": null}',
    ],
)
def test_a_note_that_names_no_twin_of_this_training_is_none(tmp_path, note):
    (tmp_path / "trained_in.json").write_text(note)
    assert trained_in(tmp_path, "t") is None


def test_trained_twins_are_completed_listed_jobs_with_a_checkpoint(tmp_path, monkeypatch):
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "training_hash", lambda config: config["t"])
    sweeps = tmp_path / "sweeps"

    def job(sweep, name, t, *, ckpt=True, listed=True, **record):
        folder = write_record(sweeps / sweep / "nb201" / name, name, config={"t": t}, **record)
        if ckpt:
            (folder / "checkpoint.pt").write_bytes(b"x")
        if listed:
            known = (
                json.loads((sweeps / sweep / "sweep.json").read_text())["jobs"]
                if (sweeps / sweep / "sweep.json").is_file()
                else []
            )
            write_manifest(sweeps / sweep, *[Path(j["folder"]) for j in known], folder)
        return folder

    job("a", "no-ckpt", "T", ckpt=False)
    job("a", "unlisted", "T", listed=False)
    job("a", "failed", "T", status="failed")
    good = job("b", "good", "T")
    job("c", "other", "U")
    twins_ = TrainedTwins(sweeps)
    assert twins_.find(sweeps / "z" / "nb201" / "mine", "T") == good
    assert twins_.find(good, "T") is None  # its own record is no twin
    assert twins_.find(sweeps / "z" / "nb201" / "mine", "V") is None
    assert twins_.find(sweeps / "z" / "darts" / "mine", "T") is None
    assert TrainedTwins(tmp_path / "none").find(good, "T") is None


def test_a_job_that_trains_a_super_net_now_is_found_by_its_training(tmp_path):
    sweeps = tmp_path / "sweeps"
    other = sweeps / "lr" / "nb201" / "a"
    other.mkdir(parents=True)
    mine = sweeps / "bn" / "nb201" / "b"
    mine.mkdir(parents=True)
    with hold_folder(other) as held:
        held.record(training="T")  # as a job that trains records its training hash
        found = TrainedTwins(sweeps).training_now(mine, "T")
        assert found["folder"] == str(other) and found["sweep"] == str((sweeps / "lr").resolve())
        assert TrainedTwins(sweeps).training_now(other, "T") is None  # not its own twin
        assert TrainedTwins(sweeps).training_now(mine, "U") is None


def _fake_squeue(monkeypatch, answer):
    calls = []

    def status(job):
        calls.append(job)
        return answer

    monkeypatch.setattr(reuse, "slurm_job_status", status)
    return calls


def _other_launch_claim(tmp_path: Path, details: dict) -> tuple[Claims, Path]:
    """A claim file that the lr sweep's launch wrote and no longer holds."""
    mine = Claims(tmp_path / "sweeps" / "bn")
    folder = tmp_path / "sweeps" / "bn" / "nb201" / "job-h"
    path = mine.path(folder, "h")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(details))
    return mine, folder


def test_a_claim_file_is_one_per_space_and_config_beside_the_sweeps(tmp_path):
    claims = Claims(tmp_path / "sweeps" / "bn")
    path = claims.path(tmp_path / "x" / "nb201" / "job-h", "h")
    assert path == tmp_path / "sweeps" / ".nasheur-claims" / "nb201-h.lock"


def test_a_claim_is_taken_once_and_dropped_as_it_was_found(tmp_path):
    lr = tmp_path / "sweeps" / "lr"
    bn = tmp_path / "sweeps" / "bn"
    folder = bn / "nb201" / "job-h"
    mine = Claims(bn)
    path = mine.path(folder, "h")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"sweep": str(lr), SUBMITTED: "9"}))
    assert mine.take(folder, "h") is None
    assert mine.take(folder, "h") is None  # held already: still this launch's
    held = Claims(lr).take(folder, "h")
    assert held["sweep"] == str(bn.resolve()) and held["user"] == reuse.current_user()
    mine.note_submitted(folder, "h", "77_1")
    assert json.loads(path.read_text())[SUBMITTED] == "77_1"
    mine.drop(folder, "h")
    assert json.loads(path.read_text()) == {"sweep": str(lr), SUBMITTED: "9"}
    assert Claims(lr).holder(folder, "h") is None


def test_a_launch_that_does_not_hold_a_claim_records_no_slurm_job_in_it(tmp_path):
    mine, folder = _other_launch_claim(tmp_path, {"sweep": "/lr"})
    mine.note_submitted(folder, "h", "5")
    assert json.loads(mine.path(folder, "h").read_text()) == {"sweep": "/lr"}


@pytest.mark.parametrize(
    ("details", "asked"),
    [
        ({"sweep": "/lr"}, False),  # no SLURM job named
        ({"sweep": "OWN", SUBMITTED: "5"}, False),  # this sweep's own job
    ],
)
def test_no_queued_twin_without_another_sweeps_slurm_job(tmp_path, monkeypatch, details, asked):
    own = str((tmp_path / "sweeps" / "bn").resolve())
    details = {k: own if v == "OWN" else v for k, v in details.items()}
    calls = _fake_squeue(monkeypatch, ("PENDING", "Priority", "ana"))
    mine, folder = _other_launch_claim(tmp_path, details)
    assert mine.queued_twin(folder, "h") is None
    assert bool(calls) is asked


@pytest.mark.parametrize(
    ("user", "answer", "twin"),
    [
        ("ana", ("PENDING", "Priority", "ana"), True),
        (None, ("RUNNING", "None", "bob"), True),  # a claim of before users were recorded
        ("ana", ("PENDING", "Priority", "bob"), False),  # the number is another user's now
        ("ana", None, False),  # squeue lists it no more, or cannot answer
    ],
)
def test_a_queued_twin_is_another_sweeps_slurm_job_its_user_still_has(
    tmp_path, monkeypatch, user, answer, twin
):
    _fake_squeue(monkeypatch, answer)
    details = {"sweep": "/lr", SUBMITTED: "552_4", **({"user": user} if user else {})}
    mine, folder = _other_launch_claim(tmp_path, details)
    found = mine.queued_twin(folder, "h")
    if twin:
        assert found == {**details, "slurm_state": answer[0], "slurm_reason": answer[1]}
    else:
        assert found is None


def test_a_claim_this_launch_took_shows_the_twin_its_file_named_before(tmp_path, monkeypatch):
    _fake_squeue(monkeypatch, ("PENDING", "Priority", "ana"))
    mine, folder = _other_launch_claim(tmp_path, {"sweep": "/lr", SUBMITTED: "5", "user": "ana"})
    assert mine.take(folder, "h") is None
    assert mine.queued_twin(folder, "h")["slurm_state"] == "PENDING"


def _squeue_answers(monkeypatch, returncode=0, stdout="", stderr="", raises=None):
    seen = {}

    def run(cmd, **kw):
        seen["cmd"] = cmd
        if raises:
            raise raises
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)

    monkeypatch.setattr(reuse.subprocess, "run", run)
    return seen


def test_squeues_answer_is_state_reason_and_user(monkeypatch):
    seen = _squeue_answers(
        monkeypatch, stdout="PENDING|ana|Resources, Priority x\nRUNNING|bob|None\n"
    )
    assert reuse.slurm_job_status("552_4") == ("PENDING", "Resources, Priority x", "ana")
    assert seen["cmd"][seen["cmd"].index("--jobs") + 1] == "552_4"


@pytest.mark.parametrize(
    ("kw", "warned"),
    [
        ({"stdout": "\n"}, False),
        ({"returncode": 1, "stderr": "slurm_load_jobs error: Invalid job id specified"}, False),
        ({"returncode": 1, "stderr": "Unable to contact slurm controller"}, True),
        ({"raises": FileNotFoundError("squeue")}, True),
        ({"raises": subprocess.TimeoutExpired("squeue", 60)}, True),
    ],
)
def test_a_job_squeue_does_not_list_has_no_status(monkeypatch, caplog, kw, warned):
    _squeue_answers(monkeypatch, **kw)
    with caplog.at_level(logging.WARNING, logger="nasheur.reuse"):
        assert reuse.slurm_job_status("5") is None
    assert bool(caplog.records) is warned


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("JobHeldUser", "held by its user: `scontrol release 5_1` lets it run"),
        ("DependencyNeverSatisfied", "its dependency can never be satisfied"),
        ("Priority", None),  # it starts by itself
    ],
)
def test_a_pending_job_that_will_not_start_by_itself_says_what_to_do(reason, said):
    assert stuck_reason("5_1", reason) == said


def test_a_running_twin_is_the_first_held_folder_of_another_sweep(tmp_path):
    sweeps = tmp_path / "sweeps"
    own = sweeps / "bn" / "nb201" / "job-h"
    other = sweeps / "lr" / "nb201" / "job-h"
    own.mkdir(parents=True)
    other.mkdir(parents=True)
    assert reuse.running_twin(own, "h", own.parent.parent) is None
    with hold_folder(own):  # its own folder: not a twin
        assert reuse.running_twin(own, "h", own.parent.parent) is None
    with hold_folder(other):
        running = reuse.running_twin(own, "h", own.parent.parent)
    assert running["sweep"] == str((sweeps / "lr").resolve()) and "pid" in running


def test_a_single_run_takes_a_sweeps_completed_job_of_its_config(tmp_path, monkeypatch):
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "config_hash", lambda config: "h")
    source = sibling(tmp_path)
    config = {"search_space": {"name": "nb201"}, "experiment": {"name": "single"}}
    folder = tmp_path / "run" / "job"
    assert reuse.reuse_in_single_run(folder, config, tmp_path / "sweeps") == source
    assert json.loads((folder / "metrics.json").read_text())["reused_from"] == str(source.resolve())
    # its own record: nothing is taken
    assert reuse.reuse_in_single_run(folder, config, tmp_path / "sweeps") is None


# ---------------------------------------------------------------------------------------------
# twins: a job's state at launch, another sweep's trainer, waiting and copying


def test_a_new_job_never_listed_finds_its_twin_to_copy(tmp_path):
    source = sibling(tmp_path)
    sweep = tmp_path / "sweeps" / "bn"
    folder = sweep / "nb201" / "job-h"
    assert twins.at_launch(folder, "h", sweep, set()) == ("new", None, source)
    # deleted to run again, or nothing copied: no source
    assert twins.at_launch(folder, "h", sweep, {"nb201/job-h"}) == ("new", None, None)
    assert twins.at_launch(folder, "h", sweep, None) == ("new", None, None)
    assert twins.copyable("new", folder, set())
    assert not twins.copyable("new", folder, {"nb201/job-h"})
    assert not twins.copyable("new", folder, None)
    assert not twins.copyable("failed", folder, set())


def test_a_held_folder_is_running_with_its_holder(tmp_path):
    folder = tmp_path / "nb201" / "job-h"
    folder.mkdir(parents=True)
    with hold_folder(folder):
        state, holder, source = twins.at_launch(folder, "h", tmp_path, set())
    assert state == "running" and "pid" in holder and source is None


def test_only_another_sweeps_launch_is_another_trainer(tmp_path):
    assert not twins.of_another_sweep(None, tmp_path)
    assert not twins.of_another_sweep({"sweep": str(tmp_path.resolve())}, tmp_path)
    assert twins.of_another_sweep({"sweep": "/other"}, tmp_path)


def test_a_trainer_is_said_by_its_process_or_its_slurm_job():
    assert twins.trained_by({"sweep": "/lr", "pid": 4}) == "the sweep in /lr trains it (pid 4)"
    held = {
        "sweep": "/lr",
        SUBMITTED: "5_1",
        "slurm_state": "PENDING",
        "slurm_reason": "JobHeldUser",
    }
    assert twins.trained_by(held) == (
        "the sweep in /lr trains it (SLURM job 5_1, pending: held by its user: `scontrol release "
        "5_1` lets it run; it will not start by itself (after `scancel 5_1` the same command "
        "trains the job here))"
    )
    queued = {SUBMITTED: "5_1", "slurm_state": "RUNNING", "slurm_reason": "None"}
    assert twins.trained_by(queued) == "the sweep in ? trains it (SLURM job 5_1, running)"


def test_each_slurm_job_is_noted_in_the_claim_of_its_job(tmp_path):
    a = Outcome(["seed=0"], tmp_path / "nb201" / "a", "ha", before="new")
    b = Outcome(["seed=1"], tmp_path / "nb201" / "b", "hb", before="new")
    noted = []

    class Fake:
        def note_submitted(self, folder, chash, job):
            noted.append((folder.name, chash, job))

    assert twins.note_submitted([a, b], None) is None
    note = twins.note_submitted([a, b], Fake())
    note(["seed=1"], "9_1")
    note(("seed=0",), "9_0")
    note(["seed=5"], "9_2")  # not one of this launch's jobs
    assert noted == [("b", "hb", "9_1"), ("a", "ha", "9_0")]


class _NoClaims:
    """Claims whose holders have all ended, with no queued twin."""

    def __init__(self, queued=()):
        self.queued = list(queued)
        self.waited = []

    def wait(self, folder, chash):
        self.waited.append(folder.name)

    def queued_twin(self, folder, chash):
        return self.queued.pop(0) if self.queued else None


def test_a_job_left_to_a_sweep_that_completed_it_is_copied(tmp_path, monkeypatch):
    source = sibling(tmp_path)
    sweep = tmp_path / "sweeps" / "bn"
    o = Outcome(["seed=0"], sweep / "nb201" / "job-h", "h", before="new", after=LEFT, detail="lr")
    sleeps = []
    monkeypatch.setattr(twins.time, "sleep", sleeps.append)
    queued = {SUBMITTED: "5", "slurm_state": "PENDING", "slurm_reason": "Priority", "sweep": "/lr"}
    claims = _NoClaims([queued])
    twins.wait_and_copy([o], claims, sweep, {o.folder: {"name": "bn"}})
    assert (o.before, o.after, o.reused) == ("new", "completed", str(source))
    assert claims.waited == ["job-h", "job-h"] and sleeps == [twins.RUNNING_TWIN_POLL_S]


def test_a_job_left_to_a_sweep_that_did_not_complete_it_is_not_run(tmp_path):
    sibling(tmp_path, status="failed")
    sweep = tmp_path / "sweeps" / "bn"
    o = Outcome(["seed=0"], sweep / "nb201" / "job-h", "h", before="new", after=LEFT)
    twins.wait_and_copy([o], _NoClaims(), sweep, {o.folder: {"name": "bn"}})
    assert o.after == "not run" and "the same command runs it here" in o.detail


def test_a_job_left_to_another_sweep_that_this_sweep_completed_meanwhile_stays(tmp_path):
    sibling(tmp_path)
    sweep = tmp_path / "sweeps" / "bn"
    done = write_record(sweep / "nb201" / "job-h")
    held = sweep / "nb201" / "job-x"
    held.mkdir()
    a = Outcome(["seed=0"], done, "h", before="new", after=LEFT, detail="lr")
    b = Outcome(["seed=1"], held, "x", before="new", after=LEFT, detail="lr")
    with hold_folder(held):
        twins.wait_and_copy([a, b], _NoClaims(), sweep, {})
    assert (a.after, a.detail, a.reused) == ("completed", "", "")
    assert b.after == "running elsewhere" and b.detail.startswith("pid ")


def test_a_result_of_unknown_status_is_no_completed_job(tmp_path):
    # a JobReturn whose status was never set (UNKNOWN) did not complete: only COMPLETED does
    o = _launched(tmp_path / "a")
    settle([o], [JobReturn(overrides=[], _return_value=None)])
    assert (o.after, o.detail) == ("failed", "None")


def test_a_copied_job_counts_as_copied_not_as_completed_before(tmp_path):
    # Outcome.copied marks the job completed at launch too; the summary says it once, as copied
    copied = _outcome("c", "")
    copied.copied(Path("/lr/nb201/c"))
    done = [_outcome("a", "completed", before="completed"), copied]
    line = summary(OmegaConf.create({}), Path("/s"), done, [])[0]
    assert line == (
        "nasheur: sweep s: 2 jobs: 2 completed (1 before this launch, 1 copied from other "
        "sweeps, where they completed)"
    )


def test_a_launch_that_was_not_stopped_says_nothing_of_submissions(tmp_path):
    # `submitted` matters only where the launch stopped: a job that failed was submitted
    failed = _outcome("a", "failed", folder=write_record(tmp_path / "a", status="failed"))
    said = failure_message([failed], None, submitted=False)
    assert said == (
        "1 of 1 launched job failed (metrics.json says why). Run the same command again to "
        "retry it once the cause is fixed (completed jobs are skipped, interrupted ones resume "
        "from their checkpoint, running ones are left alone)"
    )


def test_a_stopped_launch_retries_them_even_with_one_job_unfinished():
    # the launcher stopped waiting: jobs it did not wait for may also end unfinished
    said = failure_message([_outcome("a", "not finished"), _outcome("b", "completed")], "SIGTERM")
    assert said.startswith("1 of 2 launched jobs did not complete (1 not finished; the launcher")
    assert "Run the same command again to retry them (completed" in said


class _Job:
    def __init__(self, n):
        self.job_id = str(n)

    def results(self):
        return [self.job_id]


def test_jobs_of_an_array_that_does_not_match_its_items_settle_without_overrides():
    # submitit may hand back another count of jobs than the items it was given: no job is then
    # paired with another's overrides, and none is named to the claims
    import submitit

    class Executor:
        cluster = "slurm"

        def _internal_process_submissions(self, submissions):
            return [_Job(n) for n in range(len(submissions) + 1)]  # one more

    got = []
    with launchers.each_job_settled(lambda o, job: got.append(job)):
        jobs = submitit.AutoExecutor.map_array(Executor(), print, [["a=0"], ["a=1"]])
    assert [j._overrides for j in jobs] == [None, None, None]
    assert [j.results() for j in jobs] == [["0"], ["1"], ["2"]]
    assert got == []


@pytest.mark.parametrize("cluster", ["debug", None])
def test_only_slurms_job_ids_are_handed_on_as_slurm_jobs(cluster):
    # submitit's debug executor (and an executor that names no cluster) runs no SLURM job
    import submitit

    class Executor:
        def _internal_process_submissions(self, submissions):
            return [_Job(n) for n in range(len(submissions))]

    executor = Executor()
    if cluster:
        executor.cluster = cluster
    got = []
    with launchers.each_job_settled(lambda o, job: got.append(job)):
        jobs = submitit.AutoExecutor.map_array(executor, print, [["a=0"], ["a=1"]])
    assert [j._overrides for j in jobs] == [["a=0"], ["a=1"]]
    assert got == []


def test_a_baseline_of_zero_is_a_value_not_a_missing_one():
    # only an absent baseline key makes a level unresolvable; 0 + 2 is 2
    assert resolve_relative("fidelity.layers", "base+2", OmegaConf.create({"layers": 0})) == 2


def test_blocks_that_name_the_same_values_in_another_order_plan_one_job():
    # a job's identity is its set of key=value items, not their order on the command line
    blocks = [
        {"protocol.lr": [0.1], "protocol.wd": [0]},
        {"protocol.wd": [0], "protocol.lr": [0.1]},
    ]
    assert expand(["nb201"], [0], blocks, {}) == [
        ["search_space=nb201", "protocol.lr=0.1", "protocol.wd=0", "seed=0"]
    ]


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("fidelity.channels=base/2,8", True),  # one level among plain values is enough
        ("~fidelity.channels=base/2", False),  # a deletion resolves nothing
    ],
)
def test_a_level_anywhere_in_a_fidelity_sweep_names_levels(override, names):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (o,) = OverridesParser.create().parse_overrides([override])
    assert plan.names_levels(o) is names


def test_a_trainer_in_this_sweep_named_another_way_is_this_sweeps(tmp_path):
    # the claim records the sweep folder resolved; this launch may name it by another path
    (tmp_path / "sub").mkdir()
    assert not twins.of_another_sweep({"sweep": str(tmp_path.resolve())}, tmp_path / "sub" / "..")


def test_a_copy_takes_the_note_of_the_twin_whose_checkpoint_its_source_evaluated(tmp_path):
    # the source's checkpoint is a trained twin's: the copy needs the note to evaluate it again
    source = sibling(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"ckpt")
    (source / "trained_in.json").write_text('{"config_hash": "t", "training_hash": "T"}')
    folder = tmp_path / "copy" / "nb201" / "job-h"
    assert adopt(source, folder, {"name": "bn"})
    assert json.loads((folder / "trained_in.json").read_text())["config_hash"] == "t"


def test_a_copy_names_its_source_by_its_resolved_path(tmp_path):
    # read back from any directory, and by other sweeps: the path as given may be relative
    source = sibling(tmp_path)
    roundabout = source.parent / ".." / "nb201" / source.name
    folder = tmp_path / "copy" / "nb201" / "job-h"
    assert adopt(roundabout, folder, {"name": "bn"})
    assert json.loads((folder / "metrics.json").read_text())["reused_from"] == str(source)


def test_a_trained_twin_whose_ground_truth_changed_still_lends_its_super_net(tmp_path, monkeypatch):
    # module doc: only its evaluation read the ground truth; its training is as good as before
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "training_hash", lambda config: "T")
    fingerprint = {"path": str(tmp_path / "gone.csv"), "stamp": "1-1", "sha256": "0" * 64}
    source = sibling(tmp_path, ground_truth={"fingerprint": fingerprint})
    (source / "checkpoint.pt").write_bytes(b"x")
    mine = tmp_path / "sweeps" / "bn" / "nb201" / "job-x"
    assert TrainedTwins(tmp_path / "sweeps").find(mine, "T") == source


def test_a_trained_twin_is_looked_at_again_when_it_is_asked_for(tmp_path, monkeypatch):
    # the index is read once per space and launch; a job's own folder, however named, is not
    # its twin, and a twin whose checkpoint went since (deleted to train again) lends nothing
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "training_hash", lambda config: "T")
    source = sibling(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"x")
    found = TrainedTwins(tmp_path / "sweeps")
    mine = tmp_path / "sweeps" / "bn" / "nb201" / "job-x"
    assert found.find(mine, "T") == source
    assert found.find(source.parent / ".." / "nb201" / source.name, "T") is None
    (source / "checkpoint.pt").unlink()
    assert found.find(mine, "T") is None


def test_a_running_job_that_records_no_training_trains_no_twin(tmp_path):
    # a job of a version before training hashes, or one that has not written its details yet
    sweeps = tmp_path / "sweeps"
    other = sweeps / "lr" / "nb201" / "a"
    other.mkdir(parents=True)
    mine = sweeps / "bn" / "nb201" / "b"
    with hold_folder(other):
        assert TrainedTwins(sweeps).training_now(mine, "T") is None


def test_a_claims_slurm_job_is_added_to_what_the_claim_says(tmp_path):
    # a later launch needs the claim's sweep and user beside the SLURM job (queued_twin)
    bn = tmp_path / "sweeps" / "bn"
    folder = bn / "nb201" / "job-h"
    mine = Claims(bn)
    assert mine.take(folder, "h") is None
    mine.note_submitted(folder, "h", 77)
    said = json.loads(mine.path(folder, "h").read_text())
    assert said["sweep"] == str(bn.resolve()) and said["user"] == reuse.current_user()
    assert said[SUBMITTED] == "77"
    mine.release()


def test_squeues_reason_is_kept_whole_whatever_it_holds(monkeypatch):
    # the reason comes last in squeue's format so that nothing in it splits the line
    _squeue_answers(monkeypatch, stdout="PENDING|ana|a|b, c\n")
    assert reuse.slurm_job_status("5") == ("PENDING", "a|b, c", "ana")


def test_a_single_run_that_resumes_from_its_checkpoint_takes_nothing(tmp_path, monkeypatch):
    # its own job: resumed as it is, not overwritten by a sweep's record
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "config_hash", lambda config: "h")
    sibling(tmp_path)
    folder = tmp_path / "run" / "job"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"mine")
    config = {"search_space": {"name": "nb201"}, "experiment": {"name": "single"}}
    assert reuse.reuse_in_single_run(folder, config, tmp_path / "sweeps") is None
    assert not (folder / "metrics.json").exists()
    assert (folder / "checkpoint.pt").read_bytes() == b"mine"


def test_a_single_run_takes_the_checkpoint_of_a_sweeps_job_of_its_training(tmp_path, monkeypatch):
    # no sweep completed its config, one trained its super-net: that source is what it took
    import nasheur.config

    monkeypatch.setattr(nasheur.config, "config_hash", lambda config: "mine")
    monkeypatch.setattr(nasheur.config, "training_hash", lambda config: "T")
    source = sibling(tmp_path, chash="other")
    (source / "checkpoint.pt").write_bytes(b"ckpt")
    folder = tmp_path / "run" / "job"
    config = {"search_space": {"name": "nb201"}, "experiment": {"name": "single"}}
    assert reuse.reuse_in_single_run(folder, config, tmp_path / "sweeps") == source
    assert (folder / "checkpoint.pt").read_bytes() == b"ckpt"
    assert not (folder / "metrics.json").exists()  # it evaluates, then writes its own


def test_claims_where_none_can_be_made_let_the_job_train(tmp_path):
    # module doc: claims are harmless where they cannot be made (here: a file in the way)
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / ".nasheur-claims").write_text("")
    bn = tmp_path / "sweeps" / "bn"
    assert Claims(bn).take(bn / "nb201" / "job-h", "h") is None


def test_waiting_for_a_claim_no_one_made_makes_none(tmp_path):
    bn = tmp_path / "sweeps" / "bn"
    claims = Claims(bn)
    claims.wait(bn / "nb201" / "job-h", "h")
    assert not claims.path(bn / "nb201" / "job-h", "h").exists()


def test_a_released_claim_can_be_taken_by_another_launch(tmp_path):
    lr, bn = tmp_path / "sweeps" / "lr", tmp_path / "sweeps" / "bn"
    folder = bn / "nb201" / "job-h"
    mine = Claims(bn)
    assert mine.take(folder, "h") is None
    assert Claims(lr).take(folder, "h") is not None  # held: the holder's details
    mine.release()
    other = Claims(lr)
    assert other.take(folder, "h") is None
    other.release()


def test_a_claim_another_launch_holds_is_that_launchs_to_wait_for(tmp_path, monkeypatch):
    # its file names an older SLURM job; the launch that holds the claim now trains the job
    calls = _fake_squeue(monkeypatch, ("PENDING", "Priority", "ana"))
    mine, folder = _other_launch_claim(tmp_path, {"sweep": "/lr", SUBMITTED: "5", "user": "ana"})
    holder = Claims(tmp_path / "sweeps" / "lr")
    assert holder.take(folder, "h") is None
    holder.note_submitted(folder, "h", "6")  # and queued its own SLURM job
    assert mine.queued_twin(folder, "h") is None and calls == []
    holder.release()


def test_a_copy_clears_what_an_adoption_cut_short_left(tmp_path):
    source = sibling(tmp_path)
    folder = tmp_path / "copy" / "nb201" / "job-h"
    folder.mkdir(parents=True)
    stale = folder / ".metrics.json.abcd1234.tmp"  # atomic_path's name for a temporary
    stale.write_text("{")
    mine = folder / "notes.tmp"  # not one of a job's files: left alone
    mine.write_text("x")
    assert adopt(source, folder, {"name": "bn"})
    assert not stale.exists() and mine.exists()


def test_a_copy_where_no_hard_link_can_be_made_copies_the_file(tmp_path, monkeypatch):
    source = sibling(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"ckpt")

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(reuse.os, "link", no_link)
    folder = tmp_path / "copy" / "nb201" / "job-h"
    assert adopt(source, folder, {"name": "bn"})
    assert (folder / "checkpoint.pt").read_bytes() == b"ckpt"
    assert (folder / "checkpoint.pt").stat().st_nlink == 1  # its own copy
    assert [p.name for p in folder.glob(".*.tmp")] == []


def test_this_processs_user_is_its_passwd_entry_not_user(monkeypatch):
    # squeue's %u is the passwd entry of the uid; su and sudo may leave $USER as it was
    import os
    import pwd

    monkeypatch.setenv("USER", "someone-else")
    reuse.current_user.cache_clear()
    try:
        assert reuse.current_user() == pwd.getpwuid(os.getuid()).pw_name
    finally:
        reuse.current_user.cache_clear()


def test_a_failed_squeue_that_says_why_on_its_output_gives_no_status(monkeypatch, caplog):
    _squeue_answers(monkeypatch, returncode=1, stdout="squeue: error: x|y|z\n")
    with caplog.at_level(logging.WARNING, logger="nasheur.reuse"):
        assert reuse.slurm_job_status("5") is None
    assert "squeue: error: x|y|z" in caplog.text


def test_a_job_left_to_a_sweep_that_completed_it_runs_if_it_cannot_be_copied(tmp_path):
    # its folder holds a record of its own by now (a failed run of it): the copy is refused
    sibling(tmp_path)
    sweep = tmp_path / "sweeps" / "bn"
    folder = write_record(sweep / "nb201" / "job-h", status="failed")
    o = Outcome(["seed=0"], folder, "h", before="new", after=LEFT)
    twins.wait_and_copy([o], _NoClaims(), sweep, {o.folder: {"name": "bn"}})
    assert o.after == "not run" and o.reused == ""


def test_a_twin_that_runs_on_its_own_is_its_running_job_first(tmp_path):
    sweeps = tmp_path / "sweeps"
    other = sweeps / "lr" / "nb201" / "job-h"
    other.mkdir(parents=True)
    mine = sweeps / "bn" / "nb201" / "job-h"
    queued = {"sweep": "/wd", "slurm_state": "PENDING"}
    with hold_folder(other):
        twin = twins.twin_on_its_own(_NoClaims([queued]), mine, "h", mine.parent.parent)
    assert twin["sweep"] == str((sweeps / "lr").resolve())
    assert twins.twin_on_its_own(_NoClaims([queued]), mine, "h", mine.parent.parent) == queued


def test_a_job_the_sweep_never_ran_did_not_complete():
    said = failure_message([_outcome("a", "not run"), _outcome("b", "completed")], None)
    assert said.startswith("1 of 2 launched jobs did not complete (1 not run; the other one")


def test_the_summary_counts_jobs_left_to_other_sweeps_in_the_order_of_states():
    done = [_outcome("a", LEFT), _outcome("b", "interrupted"), _outcome("c", "failed")]
    line = summary(OmegaConf.create({}), Path("/s"), done, [])[0]
    assert line == f"nasheur: sweep s: 3 jobs: 1 failed, 1 interrupted, 1 {LEFT}"


def test_a_dropped_claim_is_not_closed_again_on_release(tmp_path):
    # its descriptor was closed by drop; the number may be another file's by release
    import os

    bn = tmp_path / "sweeps" / "bn"
    mine = Claims(bn)
    assert mine.take(bn / "nb201" / "job-h", "h") is None
    mine.drop(bn / "nb201" / "job-h", "h")
    fd = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    try:
        mine.release()
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_a_pinned_value_only_another_spaces_block_lists_replaces_this_spaces_values():
    # the experiment lists lr=0.3 only for darts: for nb201 it is a value off the list
    blocks = [{"_spaces": ["darts"], "protocol.lr": [0.3]}, {"protocol.lr": [0.1]}]
    jobs = expand(["nb201"], [0], blocks, {}, pinned={"protocol.lr": [0.3]})
    assert jobs == [["search_space=nb201", "protocol.lr=0.3", "seed=0"]]


def test_the_summary_counts_the_jobs_that_only_evaluated_a_trained_twin():
    # README, "Trained twins": the sweep's summary counts these jobs, as it counts copies
    twin = _outcome("t", "completed", launched=True, trained_in="/bn/nb201/t")
    done = [_outcome("a", "completed", launched=True), twin]
    line = summary(OmegaConf.create({}), Path("/s"), done, done)[0]
    assert line == (
        "nasheur: sweep s: 2 jobs: 2 completed (1 only evaluated: its super-net trained in "
        "another job)"
    )
    two = [*done, _outcome("u", "completed", launched=True, trained_in="/bn/nb201/u")]
    assert summary(OmegaConf.create({}), Path("/s"), two, two)[0].endswith(
        "3 completed (2 only evaluated: their super-nets trained in other jobs)"
    )
    # evaluated in an earlier launch: counted among those completed before this one
    earlier = _outcome("t", "completed", before="completed", trained_in="/bn/nb201/t")
    again = [_outcome("a", "completed", launched=True), earlier]
    assert summary(OmegaConf.create({}), Path("/s"), again, again)[0].endswith(
        "2 completed (1 before this launch)"
    )


def test_a_copy_cut_short_never_leaves_a_twins_checkpoint_without_its_note(tmp_path, monkeypatch):
    # a checkpoint alone reads as an interrupted job, which resumes from it: one written by a
    # trained twin, without the note that names it, would be refused as another config's
    source = sibling(tmp_path)
    (source / "checkpoint.pt").write_bytes(b"ckpt")
    (source / "trained_in.json").write_text('{"config_hash": "t", "training_hash": "T"}')
    link = reuse._link_or_copy

    def full_disk_for_the_note(src, dst):
        if dst.name == "trained_in.json":
            raise OSError(28, "No space left on device")
        link(src, dst)

    monkeypatch.setattr(reuse, "_link_or_copy", full_disk_for_the_note)
    folder = tmp_path / "copy" / "nb201" / "job-h"
    assert not adopt(source, folder, {"name": "bn"})
    assert not (folder / "checkpoint.pt").exists()
    assert manifest.job_state(folder, "h") == "new"  # copied at the next launch
