"""Every factor of the paper's Table 1, switched away from its default, runs end to end in every
space where the paper applies it (one parametrised test), and the low-fidelity rule holds."""

from __future__ import annotations

import pytest
import yaml

from nasheur.fidelity import compensation, effective_epochs
from tests.conftest import TINY_JOB, completed_job, compose_job, write_nb201_gt
from tests.test_darts_job import write_darts_gt, write_darts_json
from tests.test_nb101_job import write_nb101_gt

# factor -> overrides that switch it away from the default (on top of TINY_JOB)
COMMON: dict[str, list[str]] = {
    "ofa_kernel": ["supernet.ofa_kernel=true"],
    "path_dropout": ["supernet.path_dropout=0.2"],
    "global_dropout": ["supernet.global_dropout=0.2"],
    "layers": ["fidelity.layers=2"],
    "channels": ["fidelity.channels=2"],
    "batch_size": ["fidelity.batch_size=8"],
    "train_portion": ["fidelity.train_portion=0.5"],
    "compensate_epochs": ["fidelity.channels=2", "fidelity.compensate_epochs=true"],
    "batch_norm": ["protocol.bn_track=true", "protocol.bn_affine=false"],
    "learning_rate": ["protocol.lr=0.1"],
    "epochs": ["protocol.epochs=2"],
    "weight_decay": ["protocol.weight_decay=0"],
    "fairnas": ["sampler=fairnas"],
}
# space -> (its own overrides, GT writer, its factors where the paper applies them)
SPACES = {
    "nb201": (
        [],
        lambda tmp: write_nb201_gt(tmp / "gt.csv"),
        {
            **COMMON,
            "ops_on": ["supernet.ops_on=node"],
            "wsbn": ["supernet.wsbn=true", "supernet.ops_on=node"],
            "random_a": ["sampler=random_a"],
        },
    ),
    "nb101": (
        ["fidelity.baseline.channels=8"],
        lambda tmp: write_nb101_gt(tmp / "gt.csv"),
        {
            **COMMON,
            "channels": ["fidelity.channels=4"],
            "compensate_epochs": ["fidelity.channels=4", "fidelity.compensate_epochs=true"],
            "wsbn": ["supernet.wsbn=true"],
            "random_a": ["sampler=random_a"],
            "dynamic_fixed": ["supernet.dynamic_channels=fixed"],
            "dynamic_shuffle": ["supernet.dynamic_channels=shuffle"],
            "dynamic_disabled": ["supernet.dynamic_channels=disabled", "supernet.subspace=2"],
        },
    ),
    "darts_nds": (
        ["fidelity.baseline.layers=3"],
        lambda tmp: write_darts_gt(write_darts_json(tmp / "DARTS.json"), tmp / "gt.csv"),
        {
            **COMMON,
            "layers": ["fidelity.layers=4"],  # 3 at the least: a normal cell besides two reducing
            "ops_on": ["supernet.ops_on=node"],
            "wsbn": ["supernet.wsbn=false"],  # the DARTS default is on (Table 14)
        },
    ),
}
FACTORS = {space: factors for space, (_, _, factors) in SPACES.items()}
# NB201 runs in the fast suite; the other spaces take longer and run with the slow suite
CASES = [
    pytest.param(
        space,
        name,
        overrides,
        id=f"{space}-{name}",
        marks=() if space == "nb201" else pytest.mark.slow,
    )
    for space, factors in FACTORS.items()
    for name, overrides in factors.items()
]


# what each factor must change where the job uses it (the super-net's spec, the optimizer,
# the sampler, the data), not only in the config that the record repeats
SAMPLER_PASSES = {"nb201": 5, "nb101": 3, "darts_nds": 7}  # FairNAS: one pass per op
EFFECT = {
    "ofa_kernel": lambda u: u["spec"].ofa_kernel is True,
    "path_dropout": lambda u: u["spec"].path_dropout == 0.2,
    "global_dropout": lambda u: u["spec"].global_dropout == 0.2,
    "layers": lambda u: u["spec"].layers == int(u["value"]),
    "channels": lambda u: u["spec"].channels == int(u["value"]),
    "compensate_epochs": lambda u: u["spec"].channels == int(u["value"]),
    "batch_size": lambda u: u["images"] == u["train"] // 8 * 8,
    "train_portion": lambda u: u["train"] == round(0.5 * 160),
    "batch_norm": lambda u: u["spec"].bn_track is True and u["spec"].bn_affine is False,
    "learning_rate": lambda u: u["opt"]["lr"] == 0.1 and u["history"][0]["lr"] == 0.1,
    "epochs": lambda u: len(u["history"]) == 2,
    "weight_decay": lambda u: u["opt"]["weight_decay"] == 0,
    "fairnas": lambda u: (
        u["sampler"] == "fairnas"
        and u["images"] == u["train"] // 16 * 16 * SAMPLER_PASSES[u["space"]]
    ),
    "random_a": lambda u: u["sampler"] == "random_a",
    "ops_on": lambda u: u["spec"].ops_on == "node",
    "wsbn": lambda u: u["spec"].wsbn is (u["space"] != "darts_nds"),
    "dynamic_fixed": lambda u: u["spec"].dynamic_channels == "fixed",
    "dynamic_shuffle": lambda u: u["spec"].dynamic_channels == "shuffle",
    "dynamic_disabled": lambda u: (
        u["spec"].dynamic_channels == "disabled" and u["spec"].subspace == 2
    ),
}


def test_every_factor_has_an_effect_to_check():
    assert {f for factors in FACTORS.values() for f in factors} == set(EFFECT)


@pytest.mark.parametrize(("space", "factor", "overrides"), CASES)
def test_each_factor_runs_end_to_end(space, factor, overrides, tmp_path, monkeypatch):
    import nasheur.samplers
    import nasheur.supernet
    import nasheur.training

    used: dict = {"space": space, "value": overrides[0].split("=")[1]}

    def spy(module, name, record):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            record(*args, **kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    spy(nasheur.supernet, "build_supernet", lambda name, spec: used.update(spec=spec))
    spy(nasheur.training, "build_optimizer", lambda model, **kw: used.update(opt=kw))
    spy(nasheur.samplers, "build_sampler", lambda name, space: used.update(sampler=name))
    extra, write_gt, _ = SPACES[space]
    gt = write_gt(tmp_path)
    rec = completed_job(
        [
            *TINY_JOB,
            *extra,
            f"search_space={space}",
            "protocol.epochs=1",
            "eval.pool_size=6",
            f"ground_truth.path={gt}",
            *overrides,
        ],
        tmp_path / "job",
    )
    for item in overrides:  # the record says what ran
        key, value = item.split("=")
        node = rec["config"]
        for part in key.split("."):
            node = node[part]
        if isinstance(node, dict):  # a group choice: its name
            node = node["name"]
        assert node == yaml.safe_load(value)
    if factor == "compensate_epochs":
        assert (
            rec["epochs"] == 2 and len(rec["history"]) == 2
        )  # half the channels: twice the epochs
    history = rec["history"]
    used.update(history=history, images=history[0]["images"], train=rec["data"]["train_images"])
    assert EFFECT[factor](used), {k: v for k, v in used.items() if k != "history"}


def test_compensation_is_the_inverse_of_the_compute_saved():
    cfg = compose_job(["search_space=nb201", "fidelity.channels=8"])  # NB201 baseline 16
    assert compensation(cfg.fidelity) == 2 and effective_epochs(100, cfg.fidelity) == 100
    cfg.fidelity.compensate_epochs = True
    assert effective_epochs(100, cfg.fidelity) == 200
    cfg.fidelity.train_portion = 0.45  # half the baseline's 0.9: /2 more
    assert effective_epochs(100, cfg.fidelity) == 400
    # a smaller batch does the same arithmetic per epoch: it saves nothing, prolongs nothing
    cfg.fidelity.batch_size = 32
    assert effective_epochs(100, cfg.fidelity) == 400
    cfg.fidelity.layers = 6  # above the baseline: no reduction, no prolonging
    assert effective_epochs(100, cfg.fidelity) == 400


@pytest.mark.parametrize(("layers", "epochs"), [(5, 100), (4, 125), (3, 167), (2, 250), (1, 500)])
def test_fewer_layers_prolong_the_epochs_by_the_cells_saved(layers, epochs):
    # NB201's baseline is 5 cells per stage: L cells do L/5 of its arithmetic per epoch
    cfg = compose_job(["search_space=nb201", f"fidelity.layers={layers}"])
    assert cfg.fidelity.baseline.layers == 5
    cfg.fidelity.compensate_epochs = True
    assert effective_epochs(100, cfg.fidelity) == epochs


def test_prolonged_epochs_round_to_the_nearest_whole_epoch():
    # 50 x 5/3 = 83.3 epochs: 83, not 84 (rounded, not rounded up); 100 x 5/3 = 166.7: 167
    cfg = compose_job(["search_space=nb201", "fidelity.layers=3"])
    cfg.fidelity.compensate_epochs = True
    assert effective_epochs(50, cfg.fidelity) == 83
    assert effective_epochs(100, cfg.fidelity) == 167


def test_the_job_follows_the_cosine_schedule_over_its_prolonged_epochs(tmp_path):
    # lr_e = 0.1 * (1 + cos(pi e / 4)) / 2 for e = 0..3, from the formula, not the code;
    # half the channels with compensation turn 2 epochs into the same 4-epoch schedule
    want = [0.1, 0.05 * (1 + 0.5**0.5), 0.05, 0.05 * (1 - 0.5**0.5)]
    gt = write_nb201_gt(tmp_path / "gt.csv")
    common = [*TINY_JOB, f"ground_truth.path={gt}", "protocol.lr=0.1", "protocol.lr_min=0"]
    for name, extra in {
        "plain": ["protocol.epochs=4"],
        "prolonged": [
            "protocol.epochs=2",
            "fidelity.channels=2",
            "fidelity.compensate_epochs=true",
        ],
    }.items():
        rec = completed_job([*common, *extra], tmp_path / name)
        assert [h["lr"] for h in rec["history"]] == pytest.approx(want, abs=1e-12), name
