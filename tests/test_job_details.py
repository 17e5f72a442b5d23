"""Details of one job that its end-to-end tests leave open: the random stream of each epoch,
the learning rate of each epoch, the flags and counts of its record, a diverged epoch, the
pool's independence of the training factors, and the config keys that reach the job's data,
ground truth and training (dataset.augment, ground_truth.*, protocol.*, run.*). Training is
stubbed where only the wiring is pinned, so that each test takes about a second."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import nasheur.evaluation as evaluation
import nasheur.training as training
from nasheur.config import ConfigError, validate
from nasheur.job import _out_of_memory, gt_data_differs, pick_device, run_job, searched_archs
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
    # the pool evaluated (eval.pool_size=12) among the table's 60 architectures
    assert rec["eval"]["pool_size"] == len(rec["archs"]) == 12
    assert rec["ground_truth"]["architectures"] == 60
    assert seeds == [derive_seed(3, "evaluate")]
    pool = json.loads((tmp_path / "job" / "pool.json").read_text())
    assert pool["ground_truth"] == str(tmp_path / "gt.csv")
    # images per second, per epoch and over the training (README: counted as in history):
    # the stub's 16 images in 0.01 s, each epoch
    assert [h["images_per_s"] for h in rec["history"]] == pytest.approx([16 / 0.01] * 3)
    assert rec["timing"]["train_images_per_s"] == pytest.approx(16 / 0.01)
    # one pool, and a table that names no data: no second pool's keys, no difference said
    assert "extra" not in pool and "extra_pools" not in rec
    assert "data_differs" not in rec["ground_truth"]


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_a_diverged_epoch_fails_the_job_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, loss
):
    """A non-finite training loss (README: NaN or infinite) ends the job as failed, naming
    the epoch; that epoch is not checkpointed (a resume would start from diverged weights),
    the one before it is."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs(losses={2: loss}))
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


def test_a_second_pool_is_the_disabled_jobs_draw_with_its_own_evaluation_stream(
    tmp_path, monkeypatch
):
    """Table 7's job (a random subset of NB101, also tested on sub-space 4, Table 6): each
    pool is drawn from its own space's architectures with GT on the run's pool stream (the
    sub-space pool is then the `disabled` job's pool of the same seed: Table 6's rows test N
    score the same architectures), each is evaluated from its own "evaluate" stream (the
    second's numbered 1), and both are recalibrated on the same batches (one calib seed for
    every architecture of every pool, so the two pools' accuracies compare)."""
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
    assert pools["extra"]["subspace"] == evaluation.draw_pool(sub4_keys, 12, numpy_rng(0, "pool"))
    # the pool that train N / test N (dynamic channels disabled, sub-space 4) scores
    plain = [b for b in base if b != "supernet.random_subspace=true"]
    plain = [
        *plain,
        "supernet.dynamic_channels=disabled",
        f"ground_truth.path={tmp_path / 'gt.csv'}",
    ]
    run_job(compose_job(plain), output_dir=tmp_path / "disabled")
    disabled = json.loads((tmp_path / "disabled" / "pool.json").read_text())
    assert disabled["keys"] == pools["extra"]["subspace"]
    calls = calls[:2]
    assert [c["seed"] for c in calls] == [derive_seed(0, "evaluate"), derive_seed(0, "evaluate", 1)]
    assert [c["calib"] for c in calls] == [derive_seed(0, "calibrate")] * 2
    rec = json.loads((tmp_path / "job" / "metrics.json").read_text())
    # each pool's record names the part of NB101 it searched (not plain "nb101": P>R's N is
    # that part's architectures with GT)
    assert rec["eval"]["searched"] == {"space": repr(subset), "architectures": len(member_keys)}
    assert rec["extra_pools"]["subspace"]["searched"] == {
        "space": repr(NB101SubSpace(4)),
        "architectures": len(sub4_keys),
    }
    timing = rec["timing"]
    # the rate counts the architectures of both pools, 12 + 12
    assert timing["eval_archs_per_s"] * timing["eval_seconds"] == pytest.approx(24)


# --- dataset.augment, ground_truth.column and ground_truth.unit reach the job --------------


@pytest.mark.parametrize("augment", [False, True])
def test_dataset_augment_decides_whether_the_jobs_training_batches_are_cropped_and_flipped(
    tmp_path, monkeypatch, augment
):
    """dataset.augment (README: random crop with 4-pixel padding and horizontal flip) is what
    the job's training loader does: with false every training image reaches the super-net as
    it is, with true almost none does (an image is left as it was only by the centre crop, 1 in
    81, without a flip). The loader's batches are drawn with the epoch's own generator."""
    unchanged: list[bool] = []
    stub = StubEpochs()

    def epoch(model, optimizer, loader, sampler, *, rng, generator, **kw):
        raw = loader.normalize(loader.images).flatten(1)  # the share's images, not augmented
        for x, _ in loader.train_batches(generator):
            same = (x.flatten(1)[:, None, :] == raw[None]).all(-1).any(1)
            unchanged.extend(same.tolist())
        return stub(model, optimizer, loader, sampler, rng=rng, generator=generator, **kw)

    monkeypatch.setattr(training, "train_epoch", epoch)
    cfg = _job(tmp_path, f"dataset.augment={str(augment).lower()}", "protocol.epochs=2")
    assert cfg.dataset.augment is augment
    run_job(cfg, output_dir=tmp_path / "job")
    assert len(unchanged) == 2 * 144  # 2 epochs of the 144 training images, batches of 16
    if augment:
        assert sum(unchanged) < len(unchanged) / 10
    else:
        assert all(unchanged)


def _gt_with_columns(path, n: int = 30) -> dict[str, dict[str, float]]:
    """A table of `n` NB201 cells with three value columns and no '# unit:' line: `accuracy`
    (the default column) and `frac` in fractions, `pct` in percent. Returns each column's
    values by key, as written."""
    from nasheur.spaces import get_space

    space = get_space("nb201")
    archs = space.enumerate()
    rng = np.random.default_rng(1)
    keys = [space.key(archs[int(i)]) for i in rng.choice(len(archs), n, replace=False)]
    cols = {
        "accuracy": rng.uniform(0.1, 0.95, n).round(4),
        "frac": rng.uniform(0.1, 0.95, n).round(4),
        "pct": rng.uniform(10, 95, n).round(2),
    }
    rows = [
        ",".join(["key", *cols]),
        *(",".join([k, *(str(c[i]) for c in cols.values())]) for i, k in enumerate(keys)),
    ]
    path.write_text("\n".join(rows) + "\n")
    return {name: dict(zip(keys, map(float, vals), strict=True)) for name, vals in cols.items()}


@pytest.mark.parametrize(
    ("column", "unit", "scale"),
    [(None, "fraction", 1), ("frac", "fraction", 1), ("pct", "percent", 100)],
)
def test_ground_truth_column_and_unit_give_the_accuracies_a_job_ranks_against(
    tmp_path, monkeypatch, column, unit, scale
):
    """ground_truth.column picks the table's value column (null: `accuracy`) and
    ground_truth.unit says how it is written (a table without a '# unit:' line): the job's
    record holds, per architecture of its pool, that column's value as a fraction."""
    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    monkeypatch.setattr(
        evaluation,
        "evaluate_archs",
        lambda model, archs, loader, **kw: np.linspace(0.5, 0.6, len(archs)),
    )
    table = _gt_with_columns(tmp_path / "gt.csv")
    named = [] if column is None else [f"ground_truth.column={column}"]
    run_job(_job(tmp_path, *named, f"ground_truth.unit={unit}"), output_dir=tmp_path / "job")
    rec = _read(tmp_path / "job")
    assert rec["status"] == "completed"
    got = {a["key"]: a["gt_acc"] for a in rec["archs"]}
    assert len(got) == 12
    want = table[column or "accuracy"]
    assert got == pytest.approx({k: want[k] / scale for k in got}, rel=1e-12)
    for other in set(table) - {column or "accuracy"}:  # the columns differ: a mix-up shows
        assert got != pytest.approx({k: table[other][k] / scale for k in got})


@pytest.mark.parametrize(
    ("head", "overrides", "said"),
    [
        # the file does not say its unit and the config leaves it to the file
        ("", [], r"unit is not declared.*ground_truth\.unit=percent\|fraction"),
        ("", ["ground_truth.unit=auto"], r"unit is not declared.*ground_truth\.unit="),
        # percent values read as fractions, fractions read as percent
        ("", ["ground_truth.column=pct", "ground_truth.unit=fraction"], r"pct .* outside \[0, 1\]"),
        ("", ["ground_truth.column=frac", "ground_truth.unit=percent"], r"no frac exceeds 1"),
        # a column the table has not, named with the ones it has
        (
            "",
            ["ground_truth.column=test", "ground_truth.unit=fraction"],
            r"column 'test' not in the header; available columns: accuracy, frac, pct",
        ),
        # a unit that contradicts the file's own
        (
            "# unit: fraction\n",
            ["ground_truth.unit=percent"],
            r"declares unit 'fraction' but ground_truth\.unit='percent'",
        ),
    ],
)
def test_ground_truth_column_and_unit_are_refused_where_they_do_not_fit_the_table(
    tmp_path, head, overrides, said
):
    """What the job reads its table with (nasheur.job.read_ground_truth, which the sweep's
    preflight calls too): a unit or column that does not fit the file fails, naming the key."""
    from nasheur.groundtruth.table import GroundTruthError
    from nasheur.job import pool_spaces_of, read_ground_truth

    gt = tmp_path / "gt.csv"
    _gt_with_columns(gt)
    gt.write_text(head + gt.read_text())
    cfg = _job(tmp_path, *overrides)
    with pytest.raises(GroundTruthError, match=said):
        read_ground_truth(cfg, pool_spaces_of(cfg)[""])


def test_the_protocol_and_run_keys_reach_each_training_epoch(tmp_path, monkeypatch, caplog):
    """protocol.momentum and protocol.weight_decay are the optimizer's, protocol.grad_clip,
    run.max_steps_per_epoch and run.bf16 what each epoch trains with, and run.log_every
    logs a line every that many of the epoch's steps (the last step's left to the epoch's)."""
    import logging

    seen: list[dict] = []
    stub = StubEpochs()

    def epoch(model, optimizer, loader, sampler, *, rng, generator, **kw):
        group = optimizer.param_groups[0]
        seen.append({k: group[k] for k in ("momentum", "weight_decay")} | kw)
        for step in range(1, 5):  # run.max_steps_per_epoch=4 of the share's 9 batches
            kw["on_step"](step)
        return stub(model, optimizer, loader, sampler, rng=rng, generator=generator)

    monkeypatch.setattr(training, "train_epoch", epoch)
    keys = ["protocol.momentum=0.5", "protocol.weight_decay=0.003", "protocol.grad_clip=2.5"]
    keys += ["run.max_steps_per_epoch=4", "run.bf16=true", "run.log_every=2"]
    cfg = _job(tmp_path, *keys, "protocol.epochs=2")
    with caplog.at_level(logging.INFO, logger="nasheur"):
        run_job(cfg, output_dir=tmp_path / "job")
    assert len(seen) == 2
    for e in seen:
        assert (e["momentum"], e["weight_decay"]) == (0.5, 0.003)
        assert (e["grad_clip"], e["max_steps"], e["bf16"]) == (2.5, 4, True)
    steps = [m for r in caplog.records if " step " in (m := r.getMessage())]
    assert [s.split("  ")[:2] for s in steps] == [
        ["epoch 1/2", "step 2/4"],
        ["epoch 2/2", "step 2/4"],
    ]


def test_ground_truth_dataset_metric_and_cache_dir_reach_the_jobs_benchmark_file(tmp_path):
    """On an official NB201 file, ground_truth.dataset and ground_truth.metric pick which of
    its accuracies the job ranks against (null: cifar10 test; cifar10-valid: valid), and the
    conversion is cached in ground_truth.cache_dir, not beside the file."""
    from nasheur.job import pool_spaces_of, read_ground_truth
    from tests.test_groundtruth_loaders import nb201_dict

    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(nb201_dict(), pth)
    cache = tmp_path / "cache"
    read = {}
    for dataset, metric in [(None, None), ("cifar10-valid", None), ("cifar10-valid", "test")]:
        keys = [f"ground_truth.path={pth}", f"ground_truth.cache_dir={cache}"]
        keys += [
            f"ground_truth.{k}={v}" for k, v in (("dataset", dataset), ("metric", metric)) if v
        ]
        cfg = compose_job([*TINY_JOB, *keys])
        _, gt = read_ground_truth(cfg, pool_spaces_of(cfg)[""])
        read[dataset, metric] = gt
    protocols = [(gt.meta["dataset"], gt.meta["metric"]) for gt in read.values()]
    assert protocols == [("cifar10", "test"), ("cifar10-valid", "valid"), ("cifar10-valid", "test")]
    values = [tuple(gt.acc) for gt in read.values()]
    assert len(set(values)) == 3  # three columns of the file, none read twice
    assert len(list(cache.glob("*.gt.csv"))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NAS-Bench-201-v1_1-096897.pth", "cache"]


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


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        # a Ctrl-C carries no message of its own: the record says what stopped the job
        (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt: Ctrl-C"),
        # an error without a message is named alone, without a dangling ": "
        (RuntimeError(), "failed", "RuntimeError"),
    ],
    ids=["Ctrl-C", "no message"],
)
def test_an_error_without_a_message_is_still_named_in_the_record(
    tmp_path, monkeypatch, raised, status, error
):
    stub = StubEpochs()

    def stops_in_epoch_2(*args, **kw):
        if stub.seen:
            raise raised
        return stub(*args, **kw)

    monkeypatch.setattr(training, "train_epoch", stops_in_epoch_2)
    with pytest.raises(type(raised)):
        run_job(_job(tmp_path), output_dir=tmp_path / "job")
    rec = _read(tmp_path / "job")
    assert rec["status"] == status and rec["error"] == error
    assert [h["epoch"] for h in rec["history"]] == [1]


# --- the job's parts on their own: the device, errors of memory, a table's data line -----------


@pytest.mark.parametrize("visible", [" ", " -1 ", "NoDevFiles\n"])
def test_device_auto_reads_a_padded_hiding_value_as_hiding(monkeypatch, visible):
    # `export CUDA_VISIBLE_DEVICES=" -1"` hides every GPU as "-1" does: the CPU, no refusal
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert pick_device("auto") == torch.device("cpu")


def test_device_auto_takes_cuda_where_torch_sees_it_and_cuda_insists_on_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert pick_device("auto") == torch.device("cuda")
    # README: device=cuda without one is an input error, found in the job's first seconds
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device=cuda but torch sees no CUDA device"):
        pick_device("cuda")


@pytest.mark.parametrize(
    ("built_with", "why"),
    [(None, r"torch \S+ is built without CUDA"), ("12.1", "CUDA did not start")],
    ids=["CPU-only torch", "CUDA torch"],
)
def test_device_auto_says_why_the_gpu_it_was_given_is_unusable(monkeypatch, built_with, why):
    # a CPU-only torch needs another install; a CUDA torch, a look at the driver or MPS
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", built_with)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match=why):
        pick_device("auto")


def _with_context(error: BaseException, context: BaseException) -> BaseException:
    error.__context__ = context
    return error


@pytest.mark.parametrize(
    ("error", "oom"),
    [
        (torch.OutOfMemoryError("CUDA out of memory"), True),  # torch's type, whatever it says
        (
            _with_context(SystemError("returned a result with an exception set"), MemoryError()),
            True,
        ),
        # a C call's SystemError over another error, or over none, is no lack of memory
        (
            _with_context(SystemError("returned a result with an exception set"), KeyError("k")),
            False,
        ),
        (SystemError("returned NULL without setting an exception"), False),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
    ],
    ids=["torch's type", "SystemError over MemoryError", "over another", "alone", "a shape"],
)
def test_only_a_lack_of_memory_reads_as_out_of_memory(error, oom):
    # out of memory: "use fewer channels or layers"; anything else is the error it is
    assert _out_of_memory(error) is oom


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("   ", None),  # a blank line says nothing
        ("procedural image_size=12", None),  # names no classes: nothing to compare there
        ("procedural image_size=16", "dataset.image_size: 16 there, 12 here"),
        ("procedural image_size=12 num_classes=5", "dataset.num_classes: 5 there, 10 here"),
    ],
)
def test_a_builder_line_is_compared_on_what_it_says(line, said):
    ours = compose_job(["search_space=embedded"]).dataset  # procedural, 12 pixels, 10 classes
    assert gt_data_differs(line, ours) == said


class _Table:
    """A ground-truth table as searched_archs reads it: its keys, in order, and its size."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)


class _Part:
    """A part of NB201 (as an NB101 sub-space is of NB101): the keys it holds."""

    name = "nb201"

    def __init__(self, *keys: str) -> None:
        self.held = set(keys)

    def in_space(self, key: str) -> bool:
        return key in self.held

    def __repr__(self) -> str:
        return "part of nb201"


def test_each_pool_searches_the_architectures_of_its_space_that_have_ground_truth():
    table = _Table(["a", "b", "c", "d"])
    cfg = SimpleNamespace(eval=SimpleNamespace(pool_size=2))
    # the table's keys in its order, those of the part only (P>R's N counts these)
    assert searched_archs(cfg, "gt.csv", table, {"": _Part("c", "b", "x")}) == {"": ["b", "c"]}
    with pytest.raises(
        ConfigError, match=r"none of its 4 architectures is in the space searched \(part of nb201\)"
    ):
        searched_archs(cfg, "gt.csv", table, {"": _Part("x")})
    # a second pool's space is named as such
    with pytest.raises(
        ConfigError,
        match=r"eval\.pool_size=2 exceeds the 1 architectures of the space of the 'sub' pool",
    ):
        searched_archs(cfg, "gt.csv", table, {"": _Part("a", "b"), "sub": _Part("d")})


def test_a_job_refused_on_its_node_claims_its_folder_and_records_the_refusal(tmp_path):
    # a config error met on the node (a GT file moved since the sweep's check): the folder is
    # the job's (on_claimed, as for a job that runs) and its record says failed, and why
    claimed = []
    refusal = ConfigError("ground_truth.path=x: no such file")
    with pytest.raises(ConfigError, match="no such file"):
        run_job(
            _job(tmp_path),
            output_dir=tmp_path / "job",
            on_claimed=lambda: claimed.append(True),
            refused=refusal,
        )
    assert claimed == [True]
    rec = _read(tmp_path / "job")
    assert rec["status"] == "failed" and rec["error"] == f"ConfigError: {refusal}"
    assert rec["history"] == []


def test_a_job_evaluated_again_does_not_say_it_trains(tmp_path, monkeypatch):
    # a completed job evaluated again for a changed GT file trains nothing: its lock must not
    # name a training that a sweep of the same super-net would wait for (nasheur.reuse)
    from nasheur.config import plain, training_hash
    from nasheur.jobguard import folder_holder

    monkeypatch.setattr(training, "train_epoch", StubEpochs())
    seen = []
    evaluate = evaluation.evaluate_archs

    def evaluate_archs(*args, **kw):
        seen.append(folder_holder(tmp_path / "job").get("training"))
        return evaluate(*args, **kw)

    monkeypatch.setattr(evaluation, "evaluate_archs", evaluate_archs)
    cfg = _job(tmp_path)
    run_job(cfg, output_dir=tmp_path / "job")
    assert seen == [training_hash(plain(cfg))]
    write_nb201_gt(tmp_path / "gt.csv", bins=8, seed=1)  # other contents at the same path
    seen.clear()
    assert run_job(cfg, output_dir=tmp_path / "job")["status"] == "completed"
    assert seen == [None]


def test_a_failed_record_that_cannot_be_written_leaves_the_jobs_own_error(
    tmp_path, monkeypatch, caplog
):
    # a full disk: the job's own error is the news (raised, and logged with the write's)
    import nasheur.job

    monkeypatch.setattr(training, "train_epoch", StubEpochs(losses={1: math.nan}))
    write = nasheur.job.atomic_write_json

    def full_disk(path, *args, **kw):
        if path.name == "metrics.json":
            raise OSError(28, "No space left on device")
        return write(path, *args, **kw)

    monkeypatch.setattr(nasheur.job, "atomic_write_json", full_disk)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        run_job(_job(tmp_path), output_dir=tmp_path / "job")
    assert "could not be written" in caplog.text and "No space left" in caplog.text
    assert not (tmp_path / "job" / "metrics.json").exists()


def test_only_the_splits_own_value_error_becomes_a_config_error(tmp_path, monkeypatch):
    # a split that leaves a share empty names the key (a config error); a data file's own
    # error (a ValueError subclass: unsafe, unreadable) stays what it is
    import nasheur.data

    class UnsafeFile(ValueError):
        pass

    for n, error in enumerate(
        [ValueError("dataset.val_portion=0.001 leaves no image"), UnsafeFile("data_batch_1")]
    ):

        def load(*args, error=error, **kw):
            raise error

        monkeypatch.setattr(nasheur.data, "load_image_data", load)
        expected = ConfigError if type(error) is ValueError else UnsafeFile
        with pytest.raises(expected, match=str(error)) as raised:
            run_job(_job(tmp_path), output_dir=tmp_path / f"job{n}")
        assert type(raised.value) is expected


def test_a_damaged_cifar_batch_is_recorded_as_a_data_error_not_a_config_error(tmp_path):
    # the reader's refusal is a ValueError subclass: the job keeps its type, so a sweep's
    # record says the file is damaged rather than that the config is wrong
    from nasheur.data.cifar10 import BadBatchError
    from tests.conftest import write_fake_cifar

    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    (folder / "data_batch_2").write_bytes(b"\x80\x02K\x01K\x02a.")  # APPEND on an int
    write_nb201_gt(tmp_path / "gt.csv", bins=8)
    keep = [o for o in TINY_JOB if not o.startswith("dataset")]  # the generated set's keys
    cfg = compose_job(
        [
            *keep,
            "dataset=cifar10",
            f"dataset.root={tmp_path}",
            f"ground_truth.path={tmp_path}/gt.csv",
        ]
    )
    validate(cfg)
    with pytest.raises(BadBatchError, match="data_batch_2: a damaged or truncated"):
        run_job(cfg, output_dir=tmp_path / "job")
    assert _read(tmp_path / "job")["error"].startswith("BadBatchError: ")


def test_a_pool_key_that_does_not_parse_fails_before_training(tmp_path, monkeypatch):
    # an NB101 key's check while reading is its form only: the pool's keys are parsed when
    # drawn, so that a bad one fails the job at once, naming it, not after the training
    import nasheur.job
    from nasheur.groundtruth.table import GroundTruthError

    stub = StubEpochs()
    monkeypatch.setattr(training, "train_epoch", stub)
    spaces_of = nasheur.job.pool_spaces_of

    class Unparsable:
        def __init__(self, space) -> None:
            self.space = space

        def __getattr__(self, name: str):
            return getattr(self.space, name)

        def parse(self, key: str):
            raise ValueError("not a cell of this space")

    def strict(cfg):
        return {name: Unparsable(space) for name, space in spaces_of(cfg).items()}

    monkeypatch.setattr(nasheur.job, "pool_spaces_of", strict)
    with pytest.raises(GroundTruthError, match=r"gt\.csv: key '.+': not a cell of this space"):
        run_job(_job(tmp_path), output_dir=tmp_path / "job")
    assert stub.seen == []
