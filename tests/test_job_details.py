"""Details of one job that its end-to-end tests leave open: the random stream of each epoch,
the learning rate of each epoch, the flags and counts of its record, a diverged epoch, and the
pool's independence of the training factors. Training is stubbed where only the wiring is
pinned, so that each test takes about a second."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import nasheur.evaluation as evaluation
import nasheur.training as training
from nasheur.config import validate
from nasheur.job import run_job
from nasheur.seeding import derive_seed, numpy_rng
from nasheur.training import EpochStats
from tests.conftest import TINY_JOB, compose_job, write_nb201_gt


def _job(tmp_path, *overrides: str):
    gt = tmp_path / "gt.csv"
    if not gt.exists():
        write_nb201_gt(gt, bins=8)
    cfg = compose_job([*TINY_JOB, f"ground_truth.path={gt}", *overrides])
    validate(cfg)
    return cfg


def _read(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


class StubEpochs:
    """train_epoch without training: records what each epoch was given (its sampler's and
    data's random streams, torch's seed, its learning rate) and reports a loss per epoch."""

    def __init__(self, losses=None) -> None:
        self.seen: list[dict] = []
        self.losses = losses or {}

    def __call__(self, model, optimizer, loader, sampler, *, rng, generator, **kw):
        epoch = len(self.seen) + 1
        self.seen.append(
            {
                "sampler": int(rng.integers(1 << 62)),
                "data": generator.initial_seed(),
                "torch": torch.initial_seed(),
                "lr": optimizer.param_groups[0]["lr"],
            }
        )
        return EpochStats(
            loss=self.losses.get(epoch, 1.0), acc=0.5, images=16, steps=1, seconds=0.01
        )


def test_each_epoch_has_its_own_random_streams_and_its_cosine_learning_rate(tmp_path, monkeypatch):
    """Every epoch draws other paths, another data order and another torch stream (one seed
    for all epochs would repeat epoch 1's architectures and batches in every epoch), and its
    learning rate is README's cosine per epoch from protocol.lr to protocol.lr_min, epoch 1 at
    protocol.lr: lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2 for e = 0 .. E - 1."""
    stub = StubEpochs()
    monkeypatch.setattr(training, "train_epoch", stub)
    cfg = _job(tmp_path, "protocol.epochs=4", "protocol.lr_min=0.001")
    run_job(cfg, output_dir=tmp_path / "job")
    assert len(stub.seen) == 4
    for stream in ("sampler", "data", "torch"):
        assert len({e[stream] for e in stub.seen}) == 4, stream
    lr, lr_min = cfg.protocol.lr, 0.001
    expected = [lr_min + (lr - lr_min) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [e["lr"] for e in stub.seen] == pytest.approx(expected, rel=1e-12)
    assert stub.seen[0]["lr"] == lr
    history = _read(tmp_path / "job")["history"]
    assert [h["lr"] for h in history] == pytest.approx(expected, rel=1e-12)


def test_the_record_flags_untrained_by_the_mean_and_counts_the_validation_share(
    tmp_path, monkeypatch
):
    """With super-net accuracies of mean 0.55 (std about 0.03) the run is not untrained: the
    flag is mean < 0.4 (spec section 5), not the spread. eval.val_images is the validation
    share (round(0.1 * 160) = 16 images), pool.json names the ground truth it was drawn
    from, and the evaluation starts from the seed's own "evaluate" stream (a job resumed after
    its last epoch evaluates as the uninterrupted one)."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    seeds: list[int] = []

    def fake_evaluate(model, archs, val_loader, **kw):
        seeds.append(torch.initial_seed())
        return np.linspace(0.5, 0.6, len(archs))

    monkeypatch.setattr(evaluation, "evaluate_archs", fake_evaluate)
    cfg = _job(tmp_path, "seed=3")
    run_job(cfg, output_dir=tmp_path / "job")
    rec = _read(tmp_path / "job")
    assert rec["status"] == "completed"
    assert rec["metrics"]["supernet_acc_mean"] == pytest.approx(0.55)
    assert rec["untrained"] is False
    assert rec["eval"]["val_images"] == 16 == rec["data"]["val_images"]
    assert rec["data"]["train_images"] == 144
    assert seeds == [derive_seed(3, "evaluate")]
    pool = json.loads((tmp_path / "job" / "pool.json").read_text())
    assert pool["ground_truth"] == str(tmp_path / "gt.csv")


def test_a_diverged_epoch_fails_the_job_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A non-finite training loss ends the job as failed, naming the epoch; that epoch is not
    checkpointed (a resume would start from diverged weights), the one before it is."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs(losses={2: math.nan}))
    cfg = _job(tmp_path)
    with pytest.raises(FloatingPointError, match="epoch 2"):
        run_job(cfg, output_dir=tmp_path / "job")
    rec = _read(tmp_path / "job")
    assert rec["status"] == "failed" and rec["error"].startswith("FloatingPointError")
    state = torch.load(tmp_path / "job" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1


def test_the_pool_is_the_seeds_draw_whatever_the_training_factors(tmp_path, monkeypatch):
    """The rows of an ablation compare super-nets on one pool per seed: the pool depends on
    the seed and the ground truth only, not on the sampler, the epochs or the learning rate.
    It is the run's own "pool" stream's draw of eval.pool_size of the table's architectures
    in sorted key order (spec section 4: drawn with the run's seed), as earlier runs drew it."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    pools = []
    for i, extra in enumerate(
        [(), ("sampler=fairnas", "protocol.epochs=2"), ("protocol.lr=0.01",)]
    ):
        out = tmp_path / f"job{i}"
        run_job(_job(tmp_path, *extra), output_dir=out)
        pools.append(json.loads((out / "pool.json").read_text())["keys"])
    assert pools[0] == pools[1] == pools[2]
    keys = [row.split(",")[0] for row in (tmp_path / "gt.csv").read_text().splitlines()[2:]]
    drawn = evaluation.draw_pool(keys, 12, numpy_rng(0, "pool"))
    assert pools[0] == drawn
    other_seed = tmp_path / "seed1"
    run_job(_job(tmp_path, "seed=1"), output_dir=other_seed)
    assert json.loads((other_seed / "pool.json").read_text())["keys"] != pools[0]


def test_a_second_pool_has_its_own_draw_and_evaluation_stream_but_the_same_calibration(
    tmp_path, monkeypatch
):
    """Table 7's job (a random subset of NB101, also tested on sub-space 4, Table 6): each
    pool is drawn from its own space's architectures with GT with a stream of its own (the
    main pool's as a plain job's, the second's numbered 1), each is evaluated from its own
    "evaluate" stream, and both are recalibrated on the same batches (one calib seed for every
    architecture of every pool, so the two pools' accuracies compare)."""
    from nasheur.spaces import get_space
    from nasheur.spaces.nb101 import NB101SubSpace
    from tests.test_nb101_job import NB101_TINY, write_keys_gt

    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    calls: list[dict] = []

    def fake_evaluate(model, archs, val_loader, **kw):
        calls.append({"seed": torch.initial_seed(), "calib": kw["calib_seed"], "n": len(archs)})
        return np.linspace(0.5, 0.6, len(archs))

    monkeypatch.setattr(evaluation, "evaluate_archs", fake_evaluate)
    space = get_space("nb101")
    base = [*TINY_JOB, *NB101_TINY, "protocol.epochs=1", "supernet.dynamic_channels=fixed"]
    base += ["supernet.random_subspace=true", "supernet.subspace=4", "eval.bn=recalibrate"]
    subset = space.for_config(compose_job([*base, "ground_truth.path=/dev/null"]))
    rng = np.random.default_rng(0)
    members = [subset.enumerate()[int(i)] for i in rng.choice(len(subset.enumerate()), 20)]
    sub4 = NB101SubSpace(4).enumerate()
    in_sub4 = [sub4[int(i)] for i in rng.choice(len(sub4), 16)]
    keys = write_keys_gt(tmp_path / "gt.csv", [*members, *in_sub4])
    member_keys = [k for k in keys if subset.contains(space.parse(k))]
    sub4_keys = [k for k in keys if space.parse(k).output_inputs() == 4]
    cfg = compose_job([*base, f"ground_truth.path={tmp_path / 'gt.csv'}"])
    validate(cfg)
    run_job(cfg, output_dir=tmp_path / "job")
    pools = json.loads((tmp_path / "job" / "pool.json").read_text())
    assert pools["keys"] == evaluation.draw_pool(member_keys, 12, numpy_rng(0, "pool"))
    assert pools["extra"]["subspace"] == evaluation.draw_pool(
        sub4_keys, 12, numpy_rng(0, "pool", 1)
    )
    assert [c["seed"] for c in calls] == [derive_seed(0, "evaluate"), derive_seed(0, "evaluate", 1)]
    assert [c["calib"] for c in calls] == [derive_seed(0, "calibrate")] * 2
    timing = json.loads((tmp_path / "job" / "metrics.json").read_text())["timing"]
    # the rate counts the architectures of both pools, 12 + 12
    assert timing["eval_archs_per_s"] * timing["eval_seconds"] == pytest.approx(24)


# --- adoption of a job another sweep completed (nasheur.reuse) --------------------------------


@pytest.fixture
def completed_in_sweep(tmp_path, monkeypatch):
    """A completed job (stubbed training) in sweep ``a``'s folder, listed by its sweep.json:
    (sweeps folder, the job's folder, its config hash)."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    cfg = _job(tmp_path)
    from nasheur.config import config_hash, plain

    chash = config_hash(plain(cfg))
    sweeps = tmp_path / "sweeps"
    source = sweeps / "a" / "nb201" / f"seed=0-{chash}"
    run_job(cfg, output_dir=source)
    manifest = {"jobs": [{"folder": f"runs/sweeps/a/nb201/{source.name}"}]}
    (sweeps / "a" / "sweep.json").write_text(json.dumps(manifest))
    return sweeps, source, chash


def test_a_completed_twin_is_found_only_in_another_sweep_and_only_under_its_hash(
    completed_in_sweep,
):
    """Sweep ``b`` finds ``a``'s completed job of its config hash; sweep ``a`` itself finds
    none (its own job is no twin of itself); a record whose config_hash differs from the hash
    its folder is named by (a folder renamed or a record copied by hand) is no twin."""
    from nasheur.reuse import completed_twin

    sweeps, source, chash = completed_in_sweep
    (sweeps / "b").mkdir()
    mine = sweeps / "b" / "nb201" / f"other-{chash}"
    assert completed_twin(mine, chash, sweeps / "b") == source
    assert completed_twin(source, chash, sweeps / "a") is None
    record = _read(source)
    (source / "metrics.json").write_text(json.dumps({**record, "config_hash": "0" * 12}))
    assert completed_twin(mine, chash, sweeps / "b") is None


def test_a_twin_whose_ground_truth_changed_is_not_copied(completed_in_sweep, tmp_path):
    """A completed job evaluated against a GT file that has changed since is no source: its
    metrics are those of the old table (the job itself would evaluate again; README, reuse)."""
    from nasheur.reuse import completed_twin

    sweeps, source, chash = completed_in_sweep
    (sweeps / "b").mkdir()
    mine = sweeps / "b" / "nb201" / f"x-{chash}"
    assert completed_twin(mine, chash, sweeps / "b") == source
    gt = tmp_path / "gt.csv"
    gt.write_text(gt.read_text().replace(",0.5", ",0.6", 1))
    assert completed_twin(mine, chash, sweeps / "b") is None


def test_adoption_never_overwrites_a_record_already_in_the_folder(completed_in_sweep):
    """A copy into a folder that holds a metrics.json by now (another launch got there first,
    or the job ran there) is refused and that record is left as it is."""
    from nasheur.reuse import adopt

    sweeps, source, chash = completed_in_sweep
    folder = sweeps / "b" / "nb201" / f"x-{chash}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"status": "failed", "mine": true}')
    assert adopt(source, folder, {"name": "b"}) is False
    assert json.loads((folder / "metrics.json").read_text()) == {"status": "failed", "mine": True}
    fresh = sweeps / "b" / "nb201" / f"y-{chash}"
    assert adopt(source, fresh, {"name": "b"}) is True
    copied = _read(fresh)
    assert copied["config"]["experiment"] == {"name": "b"}
    assert copied["reused_from"] == str(source.resolve())
    assert copied["metrics"] == _read(source)["metrics"]
    assert (fresh / "checkpoint.pt").is_file() and (fresh / "pool.json").is_file()


def test_submitits_last_time_out_leaves_an_interrupted_record(tmp_path, monkeypatch):
    """submitit's UncompletedJobError (a job that ran out of time with no requeue left) is a
    stop from outside, like SIGTERM: the record says interrupted, with the epochs done, so a
    later launch resumes it rather than the tables counting it as a failure."""

    class UncompletedJobError(RuntimeError):
        """submitit's name for it; submitit itself is not needed here."""

    stub = StubEpochs()

    def out_of_time(*args, **kw):
        if len(stub.seen) == 2:
            raise UncompletedJobError("job 7 timed out")
        return stub(*args, **kw)

    monkeypatch.setattr(training, "train_epoch", out_of_time)
    with pytest.raises(UncompletedJobError):
        run_job(_job(tmp_path), output_dir=tmp_path / "job")
    rec = _read(tmp_path / "job")
    assert rec["status"] == "interrupted"
    assert rec["error"] == "UncompletedJobError: job 7 timed out"
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
