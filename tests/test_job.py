"""One job end to end on synthetic data: its record, its resume and its failure record."""

from __future__ import annotations

import json
import os
import re
import traceback
from pathlib import Path

import pytest

import nasheur.training as training
from nasheur.config import ConfigError, config_hash, plain, validate
from nasheur.job import run_job
from nasheur.jobguard import CHECKPOINT
from nasheur.training import CheckpointMismatch
from tests.conftest import METRIC_KEYS, TINY_JOB, compose_job, write_nb201_gt


@pytest.fixture
def tiny(tmp_path):
    # GT in 8 bins of 0.1%: the pool's sparse correlations differ from the plain ones
    gt = write_nb201_gt(tmp_path / "gt.csv", bins=8)
    cfg = compose_job([*TINY_JOB, f"ground_truth.path={gt}"])
    validate(cfg)
    return cfg


def read(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_a_job_writes_the_documented_record(tiny, tmp_path):
    out = tmp_path / "job"
    run_job(tiny, output_dir=out, choices={"sampler": "random_nas"})
    rec = read(out)
    assert rec["status"] == "completed"
    assert rec["config_hash"] == config_hash(plain(tiny)) and rec["config"] == plain(tiny)
    assert rec["choices"] == {"sampler": "random_nas"} and rec["seed"] == 0
    assert set(rec["metrics"]) == METRIC_KEYS
    assert len(rec["archs"]) == 12 and set(rec["archs"][0]) == {"key", "supernet_acc", "gt_acc"}
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    assert {"wall_seconds", "train_images_per_s"} <= set(rec["timing"])
    pool = json.loads((out / "pool.json").read_text())["keys"]
    assert pool == [a["key"] for a in rec["archs"]]
    for a in rec["archs"]:
        assert 0 <= a["supernet_acc"] <= 1 and 0 <= a["gt_acc"] <= 1
    # the metrics follow from the pool, recomputed independently (scipy, the spec's formulas)
    import numpy as np
    from scipy import stats

    table = dict(
        (k, float(v))
        for k, v in (row.split(",") for row in (tmp_path / "gt.csv").read_text().splitlines()[2:])
    )
    assert all(a["gt_acc"] == pytest.approx(table[a["key"]]) for a in rec["archs"])
    s = np.array([a["supernet_acc"] for a in rec["archs"]])
    g = np.array([a["gt_acc"] for a in rec["archs"]])
    m = rec["metrics"]
    bins = np.floor(g / 0.001 + 1e-9)
    assert len(set(bins)) < len(set(g)) == len(g)  # ties in the bins only
    for key, value in (
        ("kendall_tau", stats.kendalltau(s, g, variant="b").statistic),
        ("sparse_kendall_tau", stats.kendalltau(s, bins, variant="b").statistic),
        ("spearman", stats.spearmanr(s, g).statistic),
        ("sparse_spearman", stats.spearmanr(s, bins).statistic),
        ("supernet_acc_mean", s.mean()),
        ("supernet_acc_std", s.std()),
    ):
        assert m[key] == pytest.approx(value, nan_ok=True), key
    assert m["sparse_kendall_tau"] != pytest.approx(m["kendall_tau"])
    top = np.argsort(-s, kind="stable")[:3]
    rank = 1 + sum(v > g[top].max() for v in table.values())  # r among the 60 of the table
    assert m["p_beat_random"] == pytest.approx((1 - rank / len(table)) ** 3)
    assert m["final_performance"] == pytest.approx(g[top].mean())
    assert rec["ground_truth"]["fingerprint"]["path"] == str(tmp_path / "gt.csv")


def test_the_metrics_keys_reach_the_metrics(tmp_path):
    # metrics.skdt_threshold and metrics.top_n, recomputed from the record's pool by hand
    import numpy as np
    from scipy import stats

    gt = write_nb201_gt(tmp_path / "gt.csv", bins=30)
    cfg = compose_job(
        [
            *TINY_JOB,
            f"ground_truth.path={gt}",
            "protocol.epochs=1",
            "metrics.skdt_threshold=0.01",
            "metrics.top_n=1",
        ]
    )
    validate(cfg)
    run_job(cfg, output_dir=tmp_path / "job")
    rec = read(tmp_path / "job")
    s = np.array([a["supernet_acc"] for a in rec["archs"]])
    g = np.array([a["gt_acc"] for a in rec["archs"]])
    table = [float(r.split(",")[1]) for r in gt.read_text().splitlines()[2:]]
    m = rec["metrics"]
    coarse = np.floor(g / 0.01 + 1e-9)  # GT from 0.500 to 0.530: 1% bins 50, 51, 52
    assert m["sparse_kendall_tau"] == pytest.approx(
        stats.kendalltau(s, coarse, variant="b").statistic, nan_ok=True
    )
    fine = np.floor(g / 0.001 + 1e-9)
    assert stats.kendalltau(s, coarse).statistic != pytest.approx(stats.kendalltau(s, fine)[0])
    best = int(np.argmax(s))  # the first of the highest, as a stable sort gives it
    rank = 1 + sum(v > g[best] for v in table)
    assert m["p_beat_random"] == pytest.approx(1 - rank / len(table))  # (1 - r/N)^1
    assert m["final_performance"] == pytest.approx(g[best])


@pytest.mark.parametrize(
    ("bn_track", "eval_bn", "mode"),
    [(False, "auto", "batch"), (True, "auto", "running"), (False, "recalibrate", "recalibrate")],
)
def test_the_bn_factor_reaches_the_evaluation(tmp_path, monkeypatch, bn_track, eval_bn, mode):
    # Table 11's factor: the BN mode the job evaluates with, and batch statistics taken at
    # the training batch size on a validation share of several batches
    import nasheur.evaluation as evaluation

    seen = {}
    real = evaluation.evaluate_archs

    def spy(model, archs, val_loader, **kwargs):
        seen.update(kwargs, batch=val_loader.batch_size, images=val_loader.num_images)
        return real(model, archs, val_loader, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_archs", spy)
    gt = write_nb201_gt(tmp_path / "gt.csv")
    cfg = compose_job(
        [
            *TINY_JOB,
            f"ground_truth.path={gt}",
            "dataset.num_images=480",
            "protocol.epochs=1",
            f"protocol.bn_track={str(bn_track).lower()}",
            f"eval.bn={eval_bn}",
            "eval.recalibrate_batches=3",
        ]
    )
    validate(cfg)
    run_job(cfg, output_dir=tmp_path / "job")
    rec = read(tmp_path / "job")
    assert rec["eval"]["bn"] == mode and seen["bn_mode"] == mode
    assert seen["batch"] == cfg.fidelity.batch_size == 16 and seen["images"] == 48
    if mode == "recalibrate":
        assert seen["calib_batches"] == 3 and seen["calib_loader"].batch_size == 16
    else:
        assert seen["calib_loader"] is None


def test_a_path_is_drawn_for_every_step(tiny, tmp_path, monkeypatch):
    # single-path training samples one architecture per batch (spec 3), not one per epoch
    import nasheur.samplers as samplers

    drawn: list[list[str]] = []
    real = samplers.build_sampler

    def counting(name, space):
        sampler = real(name, space)
        inner = sampler.step_archs

        def step_archs(rng):
            archs = inner(rng)
            drawn.append([space.key(a) for a in archs])
            return archs

        sampler.step_archs = step_archs
        return sampler

    monkeypatch.setattr(samplers, "build_sampler", counting)
    run_job(tiny, output_dir=tmp_path / "job")
    history = read(tmp_path / "job")["history"]
    steps = [h["images"] // tiny.fidelity.batch_size for h in history]
    assert len(drawn) == sum(steps) and min(steps) >= 4
    first = drawn[: steps[0]]
    assert len({tuple(d) for d in first}) > 1  # several paths in one epoch


def test_seed_changes_the_pool_and_the_run(tiny, tmp_path):
    run_job(tiny, output_dir=tmp_path / "a")
    tiny.seed = 1
    run_job(tiny, output_dir=tmp_path / "b")
    assert [a["key"] for a in read(tmp_path / "a")["archs"]] != [
        a["key"] for a in read(tmp_path / "b")["archs"]
    ]


def stop_in_save(monkeypatch, epoch: int, stop: BaseException):
    """Make the checkpoint of `epoch` raise `stop` once written (a job stopped right after
    it); returns the real save_checkpoint, to put back."""
    original = training.save_checkpoint
    calls = {"n": 0}

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == epoch:
            raise stop

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    return original


def test_an_interrupted_job_resumes_to_the_same_metrics(tiny, tmp_path, monkeypatch):
    run_job(tiny, output_dir=tmp_path / "whole")

    original = stop_in_save(monkeypatch, 2, KeyboardInterrupt("killed after epoch 2"))
    with pytest.raises(KeyboardInterrupt):
        run_job(tiny, output_dir=tmp_path / "resumed")
    stopped = read(tmp_path / "resumed")
    assert stopped["status"] == "interrupted" and "killed after epoch 2" in stopped["error"]
    assert [h["epoch"] for h in stopped["history"]] == [1, 2]

    # Ctrl-C itself carries no message: the record says what it was
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_job(tiny, output_dir=tmp_path / "ctrl-c")
    assert read(tmp_path / "ctrl-c")["error"] == "KeyboardInterrupt: Ctrl-C"

    monkeypatch.setattr(training, "save_checkpoint", original)
    run_job(tiny, output_dir=tmp_path / "resumed")
    whole, resumed = read(tmp_path / "whole"), read(tmp_path / "resumed")
    assert resumed["status"] == "completed"
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["archs"] == whole["archs"]
    strip = lambda h: [(e["epoch"], e["lr"], e["train_loss"], e["train_acc"]) for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])


def test_checkpoint_every_s_saves_once_that_long_passed_and_a_resume_repeats_the_epochs_since(
    tiny, tmp_path, monkeypatch
):
    # run.checkpoint_every_s: a checkpoint after an epoch once that many seconds passed since
    # the last (or the start), and after the last epoch; a job stopped in between resumes
    # from the one before and ends as an uninterrupted job ends
    import time
    import types

    from nasheur import job as job_module
    from nasheur import jobguard

    run_job(tiny, output_dir=tmp_path / "whole")
    clock = {"t": 0.0}
    real_train, real_save = training.train_epoch, training.save_checkpoint
    calls: dict[str, list[int]] = {"train": [], "saved": []}
    stop_at = {"call": 0}

    def train_ten_seconds(*args, **kwargs):  # every epoch takes 10 s of the job's clock
        calls["train"].append(len(calls["train"]) + 1)
        if len(calls["train"]) == stop_at["call"]:
            raise KeyboardInterrupt
        clock["t"] += 10.0
        return real_train(*args, **kwargs)

    def save(*args, **kwargs):
        calls["saved"].append(kwargs["epoch"])
        real_save(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", train_ten_seconds)
    monkeypatch.setattr(training, "save_checkpoint", save)
    shim = types.SimpleNamespace(monotonic=lambda: clock["t"], perf_counter=time.perf_counter)
    monkeypatch.setattr(job_module, "time", shim)
    noted: list[dict] = []
    original_note = jobguard.Holding.note

    def spy(self, **progress):
        original_note(self, **progress)
        noted.append(dict(self["progress"]))

    monkeypatch.setattr(jobguard.Holding, "note", spy)
    tiny.run.checkpoint_every_s = 15.0
    assert config_hash(plain(tiny)) == read(tmp_path / "whole")["config_hash"]  # no identity
    run_job(tiny, output_dir=tmp_path / "every")
    assert calls["saved"] == [2, 3]  # 10 s < 15 s after epoch 1; 20 s; the last epoch
    assert [n.get("checkpoint") for n in noted if "epoch" in n] == [0, None, None]
    assert "done at " in (said := jobguard.describe_progress(noted[0]))
    assert "(no checkpoint yet), about" in said

    # stopped in epoch 2, with epoch 1 done but not saved: the resume starts from scratch
    calls["train"].clear(), calls["saved"].clear()
    stop_at["call"] = 2
    with pytest.raises(KeyboardInterrupt):
        run_job(tiny, output_dir=tmp_path / "stopped")
    assert calls["saved"] == [] and not (tmp_path / "stopped" / CHECKPOINT).exists()
    stopped = read(tmp_path / "stopped")  # where its resume starts, for `results show`
    assert (len(stopped["history"]), stopped["epochs"], stopped["checkpoint_epoch"]) == (1, 3, 0)
    stop_at["call"] = 0
    calls["train"].clear()
    run_job(tiny, output_dir=tmp_path / "stopped")
    assert len(calls["train"]) == 3  # epoch 1 again
    whole, resumed = read(tmp_path / "whole"), read(tmp_path / "stopped")
    assert resumed["metrics"] == whole["metrics"] and resumed["archs"] == whole["archs"]


def test_a_job_keeps_its_progress_in_its_lock_file(tiny, tmp_path, monkeypatch):
    # what `results show` and a refused second copy print: each epoch as it ends, then the
    # evaluation's quarters; a resumed job says at once how far its checkpoint got
    from nasheur import jobguard

    noted: list[dict] = []
    original_note = jobguard.Holding.note

    def spy(self, **progress):
        original_note(self, **progress)
        noted.append(dict(self["progress"]))
        # what a look at the folder reads now, from the file
        assert jobguard.recorded_details(tmp_path / "job" / "job.lock") == dict(self)

    monkeypatch.setattr(jobguard.Holding, "note", spy)
    original_save = stop_in_save(monkeypatch, 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_job(tiny, output_dir=tmp_path / "job")
    assert [(n["epoch"], n["epochs"]) for n in noted] == [(1, 3)]  # epoch 2 stopped in its save
    assert noted[0]["eta_s"] >= 0 and noted[0]["at"]
    noted.clear()
    monkeypatch.setattr(training, "save_checkpoint", original_save)
    run_job(tiny, output_dir=tmp_path / "job")
    trimmed = [{k: v for k, v in n.items() if k not in ("at", "eta_s")} for n in noted]
    assert trimmed == [
        {"epoch": 2, "epochs": 3},  # resumed from the checkpoint of epoch 2
        {"epoch": 3, "epochs": 3},
        *({"evaluated": k, "of": 12} for k in (3, 6, 9, 12)),
    ]
    assert "eta_s" not in noted[0] and noted[1]["eta_s"] == 0


def _evaluation_twin(tmp_path):
    """tiny's training with another evaluation: a pool of 8, BN recalibrated, top 2."""
    cfg = compose_job(
        [
            *TINY_JOB,
            f"ground_truth.path={tmp_path / 'gt.csv'}",
            "eval.pool_size=8",
            "eval.bn=recalibrate",
            "eval.recalibrate_batches=2",
            "metrics.top_n=2",
        ]
    )
    validate(cfg)
    return cfg


def test_a_job_evaluates_a_trained_twins_super_net_as_if_it_had_trained_it(
    tiny, tmp_path, monkeypatch
):
    from nasheur import reuse
    from nasheur.config import training_hash

    other = _evaluation_twin(tmp_path)
    assert training_hash(plain(other)) == training_hash(plain(tiny))
    assert config_hash(plain(other)) != config_hash(plain(tiny))
    run_job(tiny, output_dir=tmp_path / "twin")
    run_job(other, output_dir=tmp_path / "alone")  # its own training, as without a twin
    assert reuse.adopt_training(tmp_path / "twin", tmp_path / "evaluates")
    assert os.path.samefile(tmp_path / "twin" / CHECKPOINT, tmp_path / "evaluates" / CHECKPOINT)

    def no_training(*args, **kwargs):
        raise AssertionError("a job that evaluates a trained twin's super-net trained")

    monkeypatch.setattr(training, "train_epoch", no_training)
    got = run_job(other, output_dir=tmp_path / "evaluates")
    alone = read(tmp_path / "alone")
    assert got["status"] == "completed" and got["config_hash"] == alone["config_hash"]
    # the same super-net, so the same accuracies, bit for bit on this CPU, in its own pool
    assert got["archs"] == alone["archs"] and len(got["archs"]) == 8
    assert got["metrics"] == alone["metrics"]
    strip = lambda h: [(e["epoch"], e["lr"], e["train_loss"], e["train_acc"]) for e in h]  # noqa: E731
    assert strip(got["history"]) == strip(alone["history"])
    assert got["trained_in"] == str((tmp_path / "twin").resolve()) and "trained_in" not in alone
    # run again (a changed ground truth, say): it evaluates the same checkpoint again
    (tmp_path / "evaluates" / "metrics.json").unlink()
    assert run_job(other, output_dir=tmp_path / "evaluates")["archs"] == alone["archs"]
    # so does a copy of it in another sweep (a completed twin's copy), which needs the note
    assert reuse.adopt(tmp_path / "evaluates", tmp_path / "copy", plain(other)["experiment"])
    (tmp_path / "copy" / "metrics.json").unlink()
    again = run_job(other, output_dir=tmp_path / "copy")
    assert again["archs"] == alone["archs"] and again["trained_in"] == got["trained_in"]


def test_a_job_that_trains_says_which_training_in_its_lock(tiny, tmp_path, monkeypatch):
    # for a sweep that would train the same super-net meanwhile (nasheur.reuse); a job that
    # only evaluates a twin's super-net does not say so
    from nasheur import evaluation, reuse
    from nasheur.config import training_hash
    from nasheur.jobguard import folder_holder

    seen: dict[str, list] = {"train": [], "evaluate": []}
    train, evaluate = training.train_epoch, evaluation.evaluate_archs

    def train_epoch(*args, **kwargs):
        seen["train"].append(folder_holder(tmp_path / seen["folder"]).get("training"))
        return train(*args, **kwargs)

    def evaluate_archs(*args, **kwargs):
        seen["evaluate"].append(folder_holder(tmp_path / seen["folder"]).get("training"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", train_epoch)
    monkeypatch.setattr(evaluation, "evaluate_archs", evaluate_archs)
    seen["folder"] = "twin"
    run_job(tiny, output_dir=tmp_path / "twin")
    assert seen["train"] == [training_hash(plain(tiny))] * tiny.protocol.epochs
    assert seen["evaluate"] and set(seen["evaluate"]) == {training_hash(plain(tiny))}
    seen.update(folder="evaluates", train=[], evaluate=[])
    assert reuse.adopt_training(tmp_path / "twin", tmp_path / "evaluates")
    run_job(_evaluation_twin(tmp_path), output_dir=tmp_path / "evaluates")
    assert seen["train"] == [] and seen["evaluate"] and set(seen["evaluate"]) == {None}


def test_a_twin_that_evaluated_a_twins_super_net_lends_it_on(tiny, tmp_path):
    # a third evaluation of one training may find the second (it has the checkpoint and a
    # completed record): the note it gets names the config that wrote the checkpoint
    from nasheur import reuse

    other = _evaluation_twin(tmp_path)
    third = compose_job([*TINY_JOB, f"ground_truth.path={tmp_path / 'gt.csv'}", "eval.pool_size=9"])
    validate(third)
    run_job(tiny, output_dir=tmp_path / "twin")
    assert reuse.adopt_training(tmp_path / "twin", tmp_path / "evaluates")
    run_job(other, output_dir=tmp_path / "evaluates")
    assert reuse.adopt_training(tmp_path / "evaluates", tmp_path / "third")
    note = json.loads((tmp_path / "third" / reuse.TRAINED_IN).read_text())
    assert note["config_hash"] == config_hash(plain(tiny))
    got = run_job(third, output_dir=tmp_path / "third")
    assert got["status"] == "completed" and len(got["archs"]) == 9
    assert got["trained_in"] == str((tmp_path / "twin").resolve())
    # without its note, such a source cannot say whose checkpoint it holds: not lent
    (tmp_path / "evaluates" / reuse.TRAINED_IN).unlink()
    assert not reuse.adopt_training(tmp_path / "evaluates", tmp_path / "fourth")
    assert not (tmp_path / "fourth" / CHECKPOINT).exists()


@pytest.mark.parametrize("note", ["other training", "other source", "none"])
def test_a_checkpoint_of_another_config_needs_a_note_naming_a_twin(tiny, tmp_path, note):
    # trained_in.json must name both the checkpoint's config and this job's training
    from nasheur import reuse

    run_job(tiny, output_dir=tmp_path / "twin")
    assert reuse.adopt_training(tmp_path / "twin", tmp_path / "evaluates")
    path = tmp_path / "evaluates" / reuse.TRAINED_IN
    said = json.loads(path.read_text())
    if note == "none":
        path.unlink()
    else:
        said["training_hash" if note == "other training" else "config_hash"] = "0123456789ab"
        path.write_text(json.dumps(said))
    with pytest.raises(CheckpointMismatch, match="another config"):
        run_job(_evaluation_twin(tmp_path), output_dir=tmp_path / "evaluates")


def test_a_resumed_job_takes_the_cpu_threads_it_began_with(tiny, tmp_path, monkeypatch, caplog):
    # the CPU's sums depend on torch's threads: a job resumed by a launch that gives it
    # another count (a sweep's last job left to run alone) goes on with the count it began
    # with, and the next job in this process has this process's count again
    import torch

    before = torch.get_num_threads()
    original = training.save_checkpoint

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt("killed after epoch 1")

    try:
        torch.set_num_threads(1)
        monkeypatch.setattr(training, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            run_job(tiny, output_dir=tmp_path / "job")
        assert torch.load(tmp_path / "job" / CHECKPOINT, weights_only=True)["threads"] == 1
        monkeypatch.setattr(training, "save_checkpoint", original)
        torch.set_num_threads(2)
        with caplog.at_level("INFO", logger="nasheur"):
            assert run_job(tiny, output_dir=tmp_path / "job")["status"] == "completed"
        assert "1 CPU threads, as the run began with" in caplog.text
        assert torch.load(tmp_path / "job" / CHECKPOINT, weights_only=True)["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("code", "said", "asked"),
    [
        ("ENOSPC", "No space left on device", "is the disk full or over quota?"),
        ("EFBIG", "File too large", "is the file over a size limit (ulimit -f)?"),
    ],
)
def test_a_checkpoint_that_cannot_be_written_fails_the_job_naming_it(
    tiny, tmp_path, monkeypatch, code, said, asked
):
    import errno

    import torch

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partly")
        raise OSError(getattr(errno, code), said)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "job"
    with pytest.raises(training.CheckpointWriteError, match=r"checkpoint\.pt: the checkpoint"):
        run_job(tiny, output_dir=out)
    rec = read(out)
    assert rec["status"] == "failed" and said in rec["error"]
    assert f"bytes free there; {asked}" in rec["error"] and not (out / CHECKPOINT).exists()
    assert not list(out.glob(".checkpoint.pt.*.tmp"))  # the temporary went with the error


def test_a_failure_whose_record_cannot_be_written_says_so(tiny, tmp_path, monkeypatch):
    # a folder that takes no new file (a read-only mount): neither the checkpoint nor the
    # failed record can be written, and the command must not point at a record
    import errno

    import torch

    import nasheur.job as job

    def refused(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    written = job.atomic_write_json

    def records_refused(path, obj):  # pool.json was written before
        if obj.get("status") == "failed":
            refused()
        written(path, obj)

    monkeypatch.setattr(torch, "save", refused)
    monkeypatch.setattr(job, "atomic_write_json", records_refused)
    out = tmp_path / "job"
    with pytest.raises(training.CheckpointWriteError) as failed:
        run_job(tiny, output_dir=out)
    assert not (out / "metrics.json").exists()
    assert failed.value.unrecorded.startswith(f"{out / 'metrics.json'} could not be written")


def completed_records_fail(monkeypatch, code: int, said: str):
    """A job's writes of a completed record raise OSError `code` (a full disk, a quota);
    returns the real writer, to put back."""
    import nasheur.job as job

    written = job.atomic_write_json

    def full(path, obj):
        if obj.get("status") == "completed":
            raise OSError(code, said)
        written(path, obj)

    monkeypatch.setattr(job, "atomic_write_json", full)
    return written


def test_results_that_cannot_be_written_fail_the_job_naming_the_file(tiny, tmp_path, monkeypatch):
    import errno

    import nasheur.job as job

    written = completed_records_fail(monkeypatch, errno.ENOSPC, "No space left on device")
    out = tmp_path / "job"
    with pytest.raises(job.RecordWriteError, match=r"metrics\.json: the results could not be"):
        run_job(tiny, output_dir=out)
    assert (out / CHECKPOINT).is_file()  # the training stands
    monkeypatch.setattr(job, "atomic_write_json", written)
    again = run_job(tiny, output_dir=out)  # space again: evaluated from the checkpoint
    assert again["status"] == "completed" and read(out)["status"] == "completed"


def test_results_of_a_new_evaluation_that_cannot_be_written_keep_the_completed_record(
    tiny, tmp_path, monkeypatch
):
    # a changed ground truth evaluated again, its record unwritable: the earlier one stands
    import errno

    import nasheur.job as job
    from tests.conftest import write_nb201_gt

    out = tmp_path / "job"
    first = run_job(tiny, output_dir=out)
    write_nb201_gt(tmp_path / "gt.csv", seed=1)
    completed_records_fail(monkeypatch, errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(job.RecordWriteError):
        run_job(tiny, output_dir=out)
    assert read(out) == first


def test_a_completed_job_is_not_run_again(tiny, tmp_path):
    out = tmp_path / "job"
    first = run_job(tiny, output_dir=out)
    (out / CHECKPOINT).unlink()  # would be needed if it trained again
    assert run_job(tiny, output_dir=out) == first


def test_a_completed_job_is_evaluated_again_when_its_ground_truth_changed(tiny, tmp_path):
    # the hash names the file, not its contents: another table at the same path is not the
    # one the record was evaluated against; its checkpoint spares the training
    out = tmp_path / "job"
    first = run_job(tiny, output_dir=out)
    gt = tmp_path / "gt.csv"
    text = gt.read_text()
    gt.write_text(text)  # the same contents, a new stamp: the record stands
    assert run_job(tiny, output_dir=out) == first
    write_nb201_gt(gt, seed=1)
    again = run_job(tiny, output_dir=out)
    keys = {line.split(",")[0] for line in gt.read_text().splitlines()[2:]}
    assert again["status"] == "completed" and {a["key"] for a in again["archs"]} <= keys
    assert again["history"] == first["history"]  # not trained again
    # without its checkpoint it cannot be evaluated again: refused, not trained anew, and
    # the record stands
    (out / CHECKPOINT).unlink()
    write_nb201_gt(gt, seed=2)
    with pytest.raises(CheckpointMismatch, match=r"checkpoint\.pt is gone.*delete .*metrics"):
        run_job(tiny, output_dir=out)
    assert read(out) == again


def test_a_ground_truth_rewritten_during_training_is_evaluated_again(tiny, tmp_path, monkeypatch):
    # the record's fingerprint is of the table the job read, not of the one at its path
    # when training ended: a table rewritten meanwhile is found changed by the next launch
    out = tmp_path / "job"
    gt = tmp_path / "gt.csv"
    real_train, rewritten = training.train_epoch, []

    def train_and_rewrite(*args, **kwargs):
        if not rewritten:
            rewritten.append(write_nb201_gt(gt, seed=1))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", train_and_rewrite)
    first = run_job(tiny, output_dir=out)
    monkeypatch.setattr(training, "train_epoch", real_train)
    again = run_job(tiny, output_dir=out)
    table = {k: float(v) for k, v in (row.split(",") for row in gt.read_text().splitlines()[2:])}
    assert again != first and again["history"] == first["history"]  # evaluated, not trained
    assert all(a["gt_acc"] == pytest.approx(table[a["key"]]) for a in again["archs"])


def test_a_failed_evaluation_with_a_changed_ground_truth_keeps_the_completed_record(tiny, tmp_path):
    from nasheur.groundtruth.table import GroundTruthError

    out = tmp_path / "job"
    first = run_job(tiny, output_dir=out)
    gt = tmp_path / "gt.csv"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([*lines[:3], lines[3].split(",")[0] + ",abc", *lines[4:]]) + "\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:4: .*not a number"):
        run_job(tiny, output_dir=out)
    assert read(out) == first  # its results and history stand; the next launch tries again


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"metrics": None}, "metrics is null, not an object"),
        ({"archs": "x"}, "archs is a str, not a list"),
        ({"ground_truth": "x"}, None),  # no fingerprint to compare: the record stands
    ],
)
def test_a_hand_edited_completed_record_is_refused_or_stands(tiny, tmp_path, edit, said):
    import json

    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    record = {**read(out), **edit}
    (out / "metrics.json").write_text(json.dumps(record))
    if said is None:
        assert run_job(tiny, output_dir=out) == record
        return
    with pytest.raises(
        CheckpointMismatch, match=rf"metrics\.json: a completed record whose {said}"
    ):
        run_job(tiny, output_dir=out)
    assert read(out) == record


def test_a_hang_up_ends_a_job_as_interrupted(tiny, tmp_path, monkeypatch):
    # the terminal or SSH session of a foreground job ended: recorded, and it resumes
    import signal

    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        _signal_after_epoch(monkeypatch, signal.SIGHUP)
        with pytest.raises(SystemExit) as stop:
            run_job(tiny, output_dir=tmp_path / "job")
        assert stop.value.code == 128 + signal.SIGHUP
        rec = read(tmp_path / "job")
        assert rec["status"] == "interrupted" and rec["error"].startswith("Terminated: SIGHUP")
        assert "the terminal or session ended" in rec["error"]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # put back
        # under nohup (ignored) it stays ignored: the job resumes and runs on through one
        monkeypatch.undo()
        _signal_after_epoch(monkeypatch, signal.SIGHUP)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        assert run_job(tiny, output_dir=tmp_path / "job")["status"] == "completed"
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_failing_job_records_the_error(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text(
        "# unit: fraction\nkey,accuracy\n|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|,0.5\n"
    )
    cfg = compose_job([*TINY_JOB, f"ground_truth.path={gt}"])
    with pytest.raises(ValueError, match=r"gt\.csv:3: .*unknown op 'bogus'"):
        run_job(cfg, output_dir=tmp_path / "job")
    rec = read(tmp_path / "job")
    assert rec["status"] == "failed" and "bogus" in rec["error"]
    assert rec["history"] == []  # spec section 8's key, with no epoch trained
    assert not (tmp_path / "job" / CHECKPOINT).exists()  # it failed before training


def _stopped_after_epoch_2(cfg, out: Path, monkeypatch) -> dict:
    """Run the 3-epoch job in `out`, stopped right after its checkpoint of epoch 2; its
    record."""
    original = stop_in_save(monkeypatch, 2, KeyboardInterrupt("killed after epoch 2"))
    with pytest.raises(KeyboardInterrupt):
        run_job(cfg, output_dir=out)
    monkeypatch.setattr(training, "save_checkpoint", original)
    record = read(out)
    assert [h["epoch"] for h in record["history"]] == [1, 2] and record["epochs"] == 3
    return record


def test_a_resumed_job_that_fails_before_training_keeps_the_epochs_on_record(
    tiny, tmp_path, monkeypatch
):
    # README, metrics.json: a failed record has the epochs trained so far; a resumed job
    # that fails on its ground truth before it restored its checkpoint trained them still
    out = tmp_path / "job"
    first = _stopped_after_epoch_2(tiny, out, monkeypatch)
    gt = Path(tiny.ground_truth.path)
    gt.write_text(gt.read_text() + "|bogus|,0.5\n")  # a row its reader refuses
    with pytest.raises(ValueError):
        run_job(tiny, output_dir=out)
    rec = read(out)
    assert rec["status"] == "failed" and [h["epoch"] for h in rec["history"]] == [1, 2]
    # and how far they go, and where its resume starts (`results show`), as the earlier said
    assert (rec.get("epochs"), rec.get("checkpoint_epoch")) == (3, first["checkpoint_epoch"])


def test_a_restart_from_nothing_records_none_of_the_earlier_runs_epochs(
    tiny, tmp_path, monkeypatch
):
    # its checkpoint deleted, the job trains again from epoch 0: stopped in its first epoch,
    # its record lists no epoch (not those of the run before, whose checkpoint is gone)
    out = tmp_path / "job"
    _stopped_after_epoch_2(tiny, out, monkeypatch)
    (out / CHECKPOINT).unlink()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("stopped in epoch 1")

    monkeypatch.setattr(training, "train_epoch", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_job(tiny, output_dir=out)
    rec = read(out)
    assert rec["status"] == "interrupted" and rec["history"] == []
    assert (rec["epochs"], rec["checkpoint_epoch"]) == (3, 0)


def test_bf16_autocast_runs_and_is_recorded(tmp_path):
    gt = write_nb201_gt(tmp_path / "gt.csv")
    cfg = compose_job(
        [
            *TINY_JOB,
            "protocol.epochs=1",
            "eval.pool_size=6",
            "run.bf16=true",
            f"ground_truth.path={gt}",
        ]
    )
    rec = run_job(cfg, output_dir=tmp_path / "job")
    assert rec["status"] == "completed" and rec["config"]["run"]["bf16"] is True
    assert rec["config_hash"] != config_hash(
        plain(
            compose_job(
                [*TINY_JOB, "protocol.epochs=1", "eval.pool_size=6", f"ground_truth.path={gt}"]
            )
        )
    )


def test_a_channels_last_job_is_the_same_job(tmp_path):
    """run.channels_last keeps the job's identity (folder and hash) and its arithmetic: the
    same accuracies up to float rounding, on the CPU too."""
    gt = write_nb201_gt(tmp_path / "gt.csv")
    base = [*TINY_JOB, "protocol.epochs=1", "eval.pool_size=6", f"ground_truth.path={gt}"]
    recs = [
        run_job(compose_job([*base, f"run.channels_last={v}"]), output_dir=tmp_path / v)
        for v in ("false", "true")
    ]
    assert all(r["status"] == "completed" for r in recs)
    assert recs[0]["config_hash"] == recs[1]["config_hash"]
    accs = [[a["supernet_acc"] for a in r["archs"]] for r in recs]
    assert accs[0] == pytest.approx(accs[1], abs=0.05)  # one epoch: a flip or two, no more


def test_a_job_reads_an_official_benchmark_file_through_the_cache(tmp_path):
    import torch

    from tests.test_groundtruth_loaders import nb201_dict

    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(nb201_dict(), pth)
    overrides = [
        *TINY_JOB,
        "protocol.epochs=1",
        "eval.pool_size=4",
        f"ground_truth.path={pth}",
        "ground_truth.dataset=cifar10-valid",
    ]
    rec = run_job(compose_job(overrides), output_dir=tmp_path / "job")
    assert rec["status"] == "completed" and rec["ground_truth"]["architectures"] == 4
    assert list((tmp_path / ".nasheur-gt-cache").glob("*.csv"))  # converted once, beside the file


def test_a_folder_of_another_config_is_refused_and_left_intact(tiny, tmp_path):
    from nasheur.training import CheckpointMismatch

    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    before = (out / "metrics.json").read_bytes()
    lock = (out / "job.lock").read_bytes()  # the job's details: its last progress, its host
    assert b'"progress"' in lock
    tiny.protocol.lr = 0.05
    with pytest.raises(CheckpointMismatch, match="another config"):
        run_job(tiny, output_dir=out)
    assert (out / "metrics.json").read_bytes() == before
    assert (out / "job.lock").read_bytes() == lock  # `results show` still says its last step
    (out / "metrics.json").unlink()  # an interrupted job of the first config: its checkpoint
    pool = (out / "pool.json").read_bytes()
    tiny.seed = 1  # another pool too: the refusal comes before the pool is written
    with pytest.raises(CheckpointMismatch, match="another config"):
        run_job(tiny, output_dir=out)
    assert not (out / "metrics.json").exists()
    assert (out / "pool.json").read_bytes() == pool


def test_on_claimed_runs_only_for_the_folder_s_own_config(tiny, tmp_path):
    from nasheur.training import CheckpointMismatch

    out, claims = tmp_path / "job", []
    run_job(tiny, output_dir=out, on_claimed=lambda: claims.append(sorted(os.listdir(out))))
    assert claims == [["job.lock"]]  # before anything but the job's lock was written there
    (out / "metrics.json").unlink()  # stopped after its last checkpoint: resumed, claimed
    run_job(tiny, output_dir=out, on_claimed=lambda: claims.append("resumed"))
    assert claims[1:] == ["resumed"]
    tiny.protocol.lr = 0.05
    for folder_holds in ("metrics.json", "checkpoint.pt"):
        if folder_holds == "checkpoint.pt":
            (out / "metrics.json").unlink()
        with pytest.raises(CheckpointMismatch, match="another config"):
            run_job(tiny, output_dir=out, on_claimed=lambda: claims.append("refused"))
    assert "refused" not in claims


def test_a_damaged_checkpoint_fails_the_job_naming_the_file(tiny, tmp_path):
    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint
    ckpt = out / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    with pytest.raises(training.UnreadableCheckpoint, match=r"checkpoint\.pt: unreadable.*delete"):
        run_job(tiny, output_dir=out)
    rec = read(out)
    assert rec["status"] == "failed" and str(ckpt) in rec["error"]


def test_a_checkpoint_with_a_flipped_bit_fails_the_job_naming_the_entry(tiny, tmp_path):
    # torch.load reads a tensor's bytes without checking them: a flipped bit would resume the
    # super-net with one weight changed, silently. The zip's CRC-32 of each entry catches it.
    import zipfile

    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint
    ckpt = out / CHECKPOINT
    with zipfile.ZipFile(ckpt) as archive:
        entry = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size)
        tensor = archive.read(entry)
    data = bytearray(ckpt.read_bytes())
    at = data.find(tensor) + len(tensor) // 2  # a byte inside the tensor, not the pickle
    data[at] ^= 0x10
    ckpt.write_bytes(bytes(data))
    with pytest.raises(training.UnreadableCheckpoint, match=r"checkpoint\.pt: damaged") as err:
        run_job(tiny, output_dir=out)
    assert f"Bad CRC-32 for file '{entry.filename}'" in str(err.value)
    assert read(out)["status"] == "failed"


@pytest.mark.parametrize(
    ("text", "said"),
    [('{"status": "compl', "unreadable"), ("[1, 2]", "a JSON list, not a job record")],
)
def test_an_unreadable_record_is_named_and_left_alone(tiny, tmp_path, text, said):
    from nasheur.training import CheckpointMismatch

    out = tmp_path / "job"
    out.mkdir()
    (out / "metrics.json").write_text(text)
    with pytest.raises(CheckpointMismatch, match=rf"metrics\.json: {re.escape(said)}"):
        run_job(tiny, output_dir=out)
    assert (out / "metrics.json").read_text() == text


@pytest.mark.parametrize("name", ["metrics.json", "checkpoint.pt", "pool.json", "job.lock"])
def test_a_folder_where_a_job_writes_a_file_is_refused_before_any_work(tiny, tmp_path, name):
    from nasheur.training import CheckpointMismatch

    out = tmp_path / "job"
    (out / name).mkdir(parents=True)  # would fail the job's write after hours of training
    with pytest.raises(CheckpointMismatch, match=rf"{name}: a folder"):
        run_job(tiny, output_dir=out)
    assert {p.name for p in out.iterdir()} <= {name, "job.lock"}  # nothing else written


def test_a_resumed_job_removes_what_a_killed_write_left(tiny, tmp_path):
    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    (out / "metrics.json").unlink()  # stopped after its last checkpoint ...
    stale = out / ".checkpoint.pt.k1ll3d__.tmp"  # ... and killed while writing the next
    stale.write_bytes(b"x" * 1000)
    # the folder may be the user's own (hydra.run.dir=.): their temporaries are theirs
    theirs = [out / ".draft.tmp", out / ".notes.txt.k1ll3d__.tmp", out / ".metrics.json.x.tmp"]
    for path in theirs:
        path.write_text("mine")
    run_job(tiny, output_dir=out)
    assert not stale.exists() and set(out.glob(".*.tmp")) == set(theirs)


def _damage(state: dict, how: str) -> None:
    import torch

    if how == "no model":
        del state["model"]
    elif how == "epoch past the end":
        state["epoch"] = 99
    elif how == "epoch a bool":
        state["epoch"] = True
    elif how == "history short":
        state["history"] = state["history"][:-1]
    elif how == "history entry":
        state["history"][0] = 3
    elif how == "foreign tensor":
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 3)
    elif how == "missing tensor":
        state["model"].pop(next(iter(state["model"])))
    elif how == "nan weights":
        name = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    elif how == "optimizer groups":
        state["optimizer"]["param_groups"] = []
    elif how == "optimizer settings":
        state["optimizer"]["param_groups"][0].update(momentum=0.0, weight_decay=0.5)
    elif how == "momentum shape":
        buffers = state["optimizer"]["state"]
        buffers[next(iter(buffers))]["momentum_buffer"] = torch.zeros(1)
    elif how == "nan momentum":
        buffers = state["optimizer"]["state"]
        buf = buffers[next(iter(buffers))]["momentum_buffer"]
        buf.fill_(float("nan"))


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("no model", "no valid model"),
        ("epoch past the end", "epoch 99 is not a count of this job's 3 epochs"),
        ("epoch a bool", "epoch True is not a count"),
        ("history short", "its history has 2 entries for 3 epochs"),
        ("history entry", r"its history does not list epochs 1\.\.3 \(entry 1\)"),
        ("foreign tensor", "its tensors do not fit this super-net .*size mismatch"),
        ("missing tensor", "its tensors do not fit this super-net .*Missing key"),
        ("optimizer groups", "its tensors do not fit this super-net .*parameter groups"),
        ("nan weights", r"its tensor stem\.0\.weight holds NaN or infinity"),
        ("optimizer settings", "its optimizer's momentum, weight_decay differ from this config's"),
        ("momentum shape", r"the momentum buffer of stem\.0\.weight has shape \(1,\), its"),
        ("nan momentum", r"the momentum_buffer of stem\.0\.weight holds NaN or infinity"),
    ],
)
def test_a_checkpoint_that_does_not_fit_fails_the_job_before_training(tiny, tmp_path, how, said):
    # the config hash matches, so only a damaged or hand-made file gets here
    import torch

    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint
    ckpt = out / CHECKPOINT
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == tiny.protocol.epochs == 3
    _damage(state, how)
    torch.save(state, ckpt)
    with pytest.raises(training.UnreadableCheckpoint, match=rf"checkpoint\.pt: {said}.*delete"):
        run_job(tiny, output_dir=out)
    rec = read(out)
    assert rec["status"] == "failed" and not rec.get("history")


@pytest.mark.parametrize(
    "overrides, share",
    [(["fidelity.batch_size=200"], "training"), (["dataset.val_portion=0.05"], "validation")],
)
def test_a_batch_larger_than_a_share_fails_before_training(tmp_path, overrides, share):
    # 160 images: 144 for training, 16 (or 8) for validation; no silent smaller batch
    gt = write_nb201_gt(tmp_path / "gt.csv")
    cfg = compose_job([*TINY_JOB, f"ground_truth.path={gt}", *overrides])
    said = rf"fidelity\.batch_size=\d+ exceeds the \d+ {share}"
    with pytest.raises(ConfigError, match=said):  # from the config: a sweep is refused whole
        validate(cfg)
    with pytest.raises(ConfigError, match=said):  # and from the data the job loaded
        run_job(cfg, output_dir=tmp_path / "job")
    assert read(tmp_path / "job")["status"] == "failed"
    assert not (tmp_path / "job" / CHECKPOINT).exists()


def test_a_super_net_too_large_for_memory_is_an_input_error_naming_its_size(tmp_path, monkeypatch):
    # fidelity.channels=100000 asked the CPU allocator for 40 GB: a traceback before; the
    # allocator's refusal is played here (a real one could wake the OOM killer instead)
    import nasheur.supernet

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 40000000000 bytes. Error code 12"
        )

    monkeypatch.setattr(nasheur.supernet, "build_supernet", refuse)
    gt = write_nb201_gt(tmp_path / "gt.csv")
    cfg = compose_job([*TINY_JOB, f"ground_truth.path={gt}"])
    with pytest.raises(
        ConfigError, match=r"super-net of fidelity\.channels=\d+ and fidelity\.layers"
    ):
        run_job(cfg, output_dir=tmp_path / "job")
    assert read(tmp_path / "job")["status"] == "failed"


@pytest.mark.cuda
@pytest.mark.parametrize("bf16", [False, True])
def test_a_job_runs_on_cuda(tmp_path, bf16):
    """The default (embedded) job end to end on the GPU: data, training and evaluation there."""
    cfg = compose_job(
        ["device=cuda", "protocol.epochs=1", "eval.pool_size=20", f"run.bf16={str(bf16).lower()}"]
    )
    rec = run_job(cfg, output_dir=tmp_path / "job")
    assert rec["status"] == "completed", rec.get("error")
    assert all(v == v for v in rec["metrics"].values())  # no NaN
    # one epoch learns: on the CPU this job's super-net scores 0.19 on average (chance: 0.1)
    assert rec["metrics"]["supernet_acc_mean"] > 0.12


def test_a_table_of_another_space_is_refused(tmp_path):
    # an NB201-layout table holds NAS-Bench-201's CIFAR-10 accuracies; its cells are valid
    # keys of the embedded space too, which must not be ranked against them unnoticed
    table = tmp_path / "nb201.csv"
    table.write_text(
        "index,arch_str,valid_acc,test_acc\n"
        "0,|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|,80.1,79.5\n"
        "1,|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|,60.2,61.0\n"
    )
    cfg = compose_job(["protocol.epochs=1", f"ground_truth.path={table}", "device=cpu"])
    assert cfg.search_space.name.value == "embedded"
    with pytest.raises(ConfigError, match="search_space=nb201, not of search_space=embedded"):
        validate(cfg)
    validate(compose_job([*TINY_JOB, f"ground_truth.path={table}"]))  # nb201: its own


# ---------------------------------------------------------------------------------------------
# SIGTERM (scancel, kill) and a second copy of a running job


def _signal_after_epoch(monkeypatch, sig, epoch=1):
    """Deliver `sig` to this process right after the given epoch's checkpoint."""
    import signal

    original, calls = training.save_checkpoint, {"n": 0}

    def save_then_signal(*args, **kwargs):
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == epoch:
            signal.raise_signal(sig)

    monkeypatch.setattr(training, "save_checkpoint", save_then_signal)


@pytest.fixture
def submitit_like_handlers():
    """SIGTERM and USR2 handlers as submitit installs them in a SLURM job: SIGTERM is logged
    and ignored; USR2 requeues the job (for which SLURM sends it SIGTERM) and exits with -1."""
    import signal
    import sys

    seen: list[str] = []

    def bypass(signum, frame):
        seen.append("SIGTERM bypassed")

    def checkpoint_and_try_requeue(signum, frame):
        seen.append("requeue")
        signal.raise_signal(signal.SIGTERM)  # `scontrol requeue` ends the running job: SIGTERM
        seen.append("requeued")
        sys.exit(-1)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR2)
    signal.signal(signal.SIGTERM, bypass)
    signal.signal(signal.SIGUSR2, checkpoint_and_try_requeue)
    yield seen, bypass, checkpoint_and_try_requeue
    signal.signal(signal.SIGTERM, before[0])
    signal.signal(signal.SIGUSR2, before[1])


def test_sigterm_ends_a_job_as_interrupted(tiny, tmp_path, monkeypatch, submitit_like_handlers):
    import signal

    seen, bypass, requeue = submitit_like_handlers
    _signal_after_epoch(monkeypatch, signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        run_job(tiny, output_dir=tmp_path / "job")
    assert stop.value.code == 128 + signal.SIGTERM  # not trained on until SIGKILL
    rec = read(tmp_path / "job")
    assert rec["status"] == "interrupted" and rec["error"].startswith("Terminated: SIGTERM")
    assert "Terminated" in rec["traceback"]
    assert [h["epoch"] for h in rec["history"]] == [1]  # the epoch it trained is on record
    assert seen == []  # submitit's handler did not swallow it
    # the job's handlers are gone with it: submitit's are back
    assert signal.getsignal(signal.SIGTERM) is bypass
    assert signal.getsignal(signal.SIGUSR2) is requeue
    monkeypatch.undo()
    assert run_job(tiny, output_dir=tmp_path / "job")["status"] == "completed"  # it resumes


def test_sigterm_while_the_results_are_written_keeps_them(tiny, tmp_path, monkeypatch):
    # SIGTERM that lands in the write of the completed record: the work is done, so the
    # record is written whole as completed, not lost with its temporary file
    import signal

    import nasheur.job

    original, seen = nasheur.job.atomic_write_json, []

    def signal_mid_write(path, data, *args, **kwargs):
        if data.get("status") == "completed" and not seen:
            seen.append(path)
            signal.raise_signal(signal.SIGTERM)  # the handler raises before the file is made
        return original(path, data, *args, **kwargs)

    monkeypatch.setattr(nasheur.job, "atomic_write_json", signal_mid_write)
    with pytest.raises(SystemExit) as stop:
        run_job(tiny, output_dir=tmp_path / "job")
    assert seen and stop.value.code == 128 + signal.SIGTERM
    rec = read(tmp_path / "job")
    assert rec["status"] == "completed" and "error" not in rec
    assert set(rec["metrics"]) == METRIC_KEYS
    monkeypatch.undo()
    again = run_job(tiny, output_dir=tmp_path / "job")  # returns at once: nothing to resume
    assert again["metrics"] == rec["metrics"]


def test_submitits_requeue_still_ends_the_job_its_own_way(
    tiny, tmp_path, monkeypatch, submitit_like_handlers
):
    import signal

    seen, bypass, _ = submitit_like_handlers
    _signal_after_epoch(monkeypatch, signal.SIGUSR2)
    with pytest.raises(SystemExit) as stop:
        run_job(tiny, output_dir=tmp_path / "job")
    # the SIGTERM that follows `scontrol requeue` went to submitit's handler, which let the
    # requeue finish: the job ends with submitit's exit, requeued
    assert seen == ["requeue", "SIGTERM bypassed", "requeued"]
    assert stop.value.code == -1 and type(stop.value) is SystemExit
    rec = read(tmp_path / "job")
    assert rec["status"] == "interrupted" and rec["error"] == "SystemExit: -1"
    assert signal.getsignal(signal.SIGTERM) is bypass


def test_a_job_refuses_a_folder_that_a_running_job_holds(tiny, tmp_path, monkeypatch):
    from nasheur.job import FolderBusy
    from nasheur.jobguard import hold_folder

    out = tmp_path / "job"
    run_job(tiny, output_dir=out)
    (out / "metrics.json").unlink()  # stopped after its last checkpoint: resumable
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "job.lock"}
    monkeypatch.setenv("SLURM_JOB_ID", "4243")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    with hold_folder(out) as holder:  # another open of the lock file: another job, for flock
        held = json.loads((out / "job.lock").read_text())
        assert held == holder and held["pid"] == os.getpid() and held["slurm_job_id"] == "4243"
        assert {"host", "started", "slurm_array_job_id", "slurm_array_task_id"} <= set(held)
        with pytest.raises(FolderBusy) as refused:
            run_job(tiny, output_dir=out, on_claimed=lambda: pytest.fail("claimed"))
    message = str(refused.value)
    assert str(out) in message and f"pid {os.getpid()}" in message
    assert "SLURM job 4242_1" in message and "\n" not in message
    # nothing of the folder was touched: no record, the checkpoint and pool as they were
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "job.lock"} == before
    assert run_job(tiny, output_dir=out)["status"] == "completed"  # free again: it resumes


def test_a_file_system_without_locks_runs_the_job_with_a_warning(
    tiny, tmp_path, monkeypatch, caplog
):
    import errno

    import nasheur.jobguard as jobguard

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(jobguard.fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="nasheur"):
        assert run_job(tiny, output_dir=tmp_path / "job")["status"] == "completed"
    assert "refuses locks" in caplog.text and "No locks available" in caplog.text
    assert jobguard.folder_holder(tmp_path / "job") is None


@pytest.mark.slow
def test_sigterm_and_a_second_copy_of_a_running_job_from_the_command_line(tmp_path):
    """`kill <pid>` of `python -m nasheur` leaves an interrupted record and exit status 143;
    the same command run while it runs is refused in one line and touches nothing."""
    import signal
    import subprocess
    import time

    from tests.conftest import PYTHON, REPO, run_env

    gt = write_nb201_gt(tmp_path / "gt.csv")
    # many epochs of about a second: the job runs until the test stops it
    args = [*TINY_JOB, "dataset.num_images=800", "protocol.epochs=2000", f"ground_truth.path={gt}"]
    cmd = [PYTHON, "-m", "nasheur", *args]
    env = run_env(tmp_path)
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "runs").rglob("checkpoint.pt")):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.25)
        (ckpt,) = (tmp_path / "runs").rglob("checkpoint.pt")
        second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stderr[-3000:]
        refusal = [line for line in second.stderr.splitlines() if line.startswith("nasheur:")]
        assert len(refusal) == 1 and "in use by a running job" in refusal[0], second.stderr
        # and nothing else: the folder's own .hydra record, put back, is not news to a user
        said = [line for line in (second.stdout + second.stderr).splitlines() if line.strip()]
        assert said == refusal, said
        assert f"pid {first.pid}" in refusal[0] and str(ckpt.parent) in refusal[0]
        assert not (ckpt.parent / "metrics.json").exists()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    rec = read(ckpt.parent)
    assert rec["status"] == "interrupted" and rec["error"].startswith("Terminated: SIGTERM")
    assert "resuming" not in (ckpt.parent / "nasheur.log").read_text()


@pytest.mark.parametrize(
    ("visible", "said"),
    [
        (None, None),
        ("", None),
        ("-1", None),  # every GPU hidden on purpose
        ("NoDevFiles", None),
        ("2", "CUDA_VISIBLE_DEVICES=2 gives this job a GPU, but torch sees no CUDA device"),
    ],
)
def test_device_auto_does_not_fall_back_to_the_cpu_from_a_gpu_it_was_given(
    monkeypatch, visible, said
):
    # a CPU-only torch on a GPU node, or an MPS daemon that cannot serve: days on the CPU
    import torch

    from nasheur.config import ConfigError
    from nasheur.job import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    if said is None:
        assert pick_device("auto") == torch.device("cpu")
    else:
        with pytest.raises(ConfigError, match=said) as refused:
            pick_device("auto")
        assert "device=cpu" in str(refused.value)
    assert pick_device("cpu") == torch.device("cpu")  # asked for: always


def test_a_failed_job_lets_go_of_its_super_net_while_its_error_is_kept(tiny, tmp_path, monkeypatch):
    # Hydra keeps a multirun job's exception until the sweep ends; through its traceback it
    # kept the failed job's super-net, optimizer and images (on the GPU, under the default
    # launcher, the next jobs of the sweep started short of that memory)
    import gc
    import weakref

    import nasheur.supernet
    from nasheur import training

    made = []
    build = nasheur.supernet.build_supernet

    def tracked(*args, **kwargs):
        model = build(*args, **kwargs)
        made.append(weakref.ref(model))
        return model

    def diverge(*args, **kwargs):
        raise FloatingPointError("loss is nan")

    monkeypatch.setattr(nasheur.supernet, "build_supernet", tracked)
    monkeypatch.setattr(training, "train_epoch", diverge)
    with pytest.raises(FloatingPointError) as failed:
        run_job(tiny, output_dir=tmp_path / "job")
    kept = failed.value  # as Hydra keeps it
    gc.collect()
    assert len(made) == 1 and made[0]() is None
    assert read(tmp_path / "job")["status"] == "failed"
    assert "loss is nan" in "".join(traceback.format_exception(kept))  # still prints


def test_a_sigterm_that_interrupts_a_log_write_is_said_on_stderr(capfd, caplog):
    # a stream being written cannot be entered again from the signal handler (Python's
    # "reentrant call" logging error, and the line lost): then the line goes to stderr as is
    import logging
    import signal
    import time

    from nasheur.jobguard import Terminated, stop_on_sigterm

    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # the handler's lock held: as while a record is being written
        with pytest.raises(Terminated), stop_on_sigterm("the test"), handler.lock:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode
    finally:
        root.removeHandler(handler)
    err = capfd.readouterr().err
    assert "SIGTERM: stopping the test\n" in err and "Logging error" not in err
    with pytest.raises(Terminated), stop_on_sigterm("the test"):  # otherwise: logged
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert "SIGTERM: stopping the test" in caplog.text


def _system_error_from_memory():
    try:
        raise MemoryError
    except MemoryError:
        raise SystemError("<built-in method> returned a result with an exception set")  # noqa: B904


@pytest.mark.parametrize(
    ("raised", "refused"),
    [
        (MemoryError, True),
        (_system_error_from_memory, True),
        (lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: 9 GB"), True),
        (lambda: RuntimeError("a shape mismatch"), False),
    ],
    ids=["MemoryError", "SystemError of one", "torch's allocator", "another error"],
)
def test_a_supernet_too_large_for_memory_is_a_config_error(
    tiny, tmp_path, monkeypatch, raised, refused
):
    import nasheur.supernet

    def build(*args, **kwargs):
        raise raised()

    monkeypatch.setattr(nasheur.supernet, "build_supernet", build)
    error = ConfigError if refused else RuntimeError
    with pytest.raises(error) as info:
        run_job(tiny, output_dir=tmp_path / "job")
    if refused:
        assert "does not fit in the memory of cpu" in str(info.value)
        assert "use fewer channels or layers" in str(info.value)


def test_a_builder_table_measured_on_other_data_is_said():
    from nasheur.job import gt_data_differs

    line = "procedural image_size=12 num_classes=10 train_images=1200 data_seed=0"
    same = compose_job(["search_space=embedded"]).dataset  # procedural, 12 pixels, 10 classes
    assert gt_data_differs(line, same) is None
    other = compose_job(["search_space=embedded", "dataset.image_size=16"]).dataset
    assert gt_data_differs(line, other) == "dataset.image_size: 12 there, 16 here"
    cifar = compose_job(["search_space=nb201", "dataset=cifar10"]).dataset
    assert gt_data_differs(line, cifar) == (
        "dataset.name: procedural there, cifar10 here; dataset.image_size: 12 there, 32 here"
    )
    # an official benchmark's line names its own data set: nothing to compare
    assert gt_data_differs("cifar10-valid", cifar) is None and gt_data_differs(None, cifar) is None
