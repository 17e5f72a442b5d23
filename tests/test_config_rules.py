"""The rules of nasheur.config checked on typed configs built directly (no Hydra composition,
which takes a second each): every range edge of `validate`, the combinations a space refuses,
where a ground truth comes from, which keys make a job's training, and the groups a job takes."""

from __future__ import annotations

import copy
import math
import re
import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nasheur.config import (
    Config,
    ConfigError,
    DatasetConfig,
    DatasetName,
    EvalBN,
    FidelityBaseline,
    FidelityConfig,
    GroundTruthConfig,
    GTUnit,
    OpsOn,
    ProtocolConfig,
    SamplerConfig,
    SamplerName,
    SearchSpaceConfig,
    SpaceName,
    check_groups,
    config_hash,
    inactive_keys,
    plain,
    resolve_ground_truth,
    to_config,
    training_hash,
    validate,
    wsbn_unused,
)

ROW = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.1\n"  # one NB201 cell


@pytest.fixture
def gt_file(tmp_path: Path) -> Path:
    path = tmp_path / "gt.csv"
    path.write_text("# unit: fraction\nkey,accuracy\n" + ROW)
    return path


def nb201_job(gt: Path | None) -> Config:
    """NB201 at the paper's settings (spec Table 14: 5 cells per stage, 16 channels, batch 128,
    portion 0.9, lr 0.025, 1000 epochs, wd 3e-3, BN track F / affine T) on CIFAR-10."""
    return Config(
        search_space=SearchSpaceConfig(name=SpaceName.nb201),
        fidelity=FidelityConfig(
            baseline=FidelityBaseline(layers=5, channels=16, batch_size=128, train_portion=0.9),
            layers=5,
            channels=16,
            batch_size=128,
            train_portion=0.9,
        ),
        protocol=ProtocolConfig(
            lr=0.025, epochs=1000, weight_decay=0.003, bn_track=False, bn_affine=True
        ),
        sampler=SamplerConfig(name=SamplerName.random_nas),
        dataset=DatasetConfig(name=DatasetName.cifar10, root="data"),
        ground_truth=GroundTruthConfig(path=None if gt is None else str(gt)),
    )


def changed(cfg: Config, changes: dict[str, object]) -> Config:
    """A copy of `cfg` with its dotted keys set."""
    out = copy.deepcopy(cfg)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = getattr(node, part)
        setattr(node, last, value)
    return out


def test_the_typed_nb201_job_is_the_composed_one(gt_file):
    # the builder stands for conf/*/nb201.yaml: were they to part, these tests would check
    # another job than the one a user runs
    from tests.conftest import compose_job

    composed = plain(compose_job(["search_space=nb201", f"ground_truth.path={gt_file}"]))
    built = plain(nb201_job(gt_file))
    for section in ("search_space", "supernet", "fidelity", "protocol", "sampler", "eval"):
        assert built[section] == composed[section], section
    assert built["dataset"]["name"] == composed["dataset"]["name"] == "cifar10"
    validate(nb201_job(gt_file))


SYNTHETIC = {"dataset.name": DatasetName.synthetic}  # the generated sets' sizes apply


@pytest.mark.parametrize(
    ("key", "edge", "past", "base"),
    [
        ("fidelity.baseline.channels", 1, 0, {}),
        ("fidelity.baseline.batch_size", 2, 1, {}),  # BN needs two images
        ("fidelity.baseline.train_portion", 1.0, 0.0, {}),  # (0, 1], as train_portion
        ("fidelity.channels", 1, 0, {}),
        ("fidelity.layers", 1, 0, {}),
        ("supernet.global_dropout", 0.0, 1.0, {}),  # spec: a rate in [0, 1)
        ("protocol.lr", 1e-6, 0.0, {}),  # SGD that never moves
        ("protocol.grad_clip", 1e-6, 0.0, {}),
        ("protocol.weight_decay", 0.0, math.inf, {}),  # no decay rate at all
        ("dataset.val_portion", 0.5, 0.0, {}),  # a validation share of no image
        ("dataset.split_seed", 0, -1, {}),
        ("seed", 0, -1, {}),
        ("eval.pool_size", 2, 1, {"metrics.top_n": 1}),  # a ranking needs two architectures
        ("metrics.top_n", 1, 0, {}),
        # generated image sets: 10 images at 0.5 / 0.5 are 5 and 5, room for a batch of 2
        (
            "dataset.num_images",
            10,
            9,
            {
                **SYNTHETIC,
                "fidelity.train_portion": 0.5,
                "dataset.val_portion": 0.5,
                "fidelity.batch_size": 2,
            },
        ),
        ("dataset.image_size", 8, 7, SYNTHETIC),  # 8: NB201's two halvings leave 2 pixels
        ("dataset.num_classes", 2, 1, SYNTHETIC),
        # open upper edges: a value just below 1 is allowed, 1 itself is not
        ("protocol.momentum", 0.999, 1.0, {}),  # 1 never forgets a gradient: no SGD
        ("metrics.skdt_threshold", 0.999, 1.0, {}),  # a bin of 1 holds every accuracy
        # 0.99 of CIFAR-10's 50,000 validate, the other 500 train: room for a batch of 128
        ("dataset.val_portion", 0.99, 1.0, {}),
    ],
)
def test_each_edge_is_accepted_and_the_value_past_it_refused_naming_it(
    gt_file, key, edge, past, base
):
    job = changed(nb201_job(gt_file), base)
    validate(changed(job, {key: edge}))
    with pytest.raises(ConfigError, match=re.escape(f"{key}={past!r} is out of range")):
        validate(changed(job, {key: past}))


@pytest.mark.parametrize(("key", "value"), [("image_size", 32), ("num_classes", 100)])
def test_generated_image_sizes_are_refused_on_cifar10(gt_file, key, value):
    # CIFAR-10 has 32-pixel images of 10 classes whatever these say: a value set here would be
    # ignored, and a folder named after it would hold the default's results
    with pytest.raises(ConfigError, match=f"dataset.{key}={value} applies to generated images"):
        validate(changed(nb201_job(gt_file), {f"dataset.{key}": value}))


def test_a_batch_larger_than_the_training_share_is_refused(gt_file):
    # 100 images: round(0.1 * 100) = 10 train, round(0.5 * 100) = 50 validate; a batch of 32
    # fits the validation share but not the training one
    job = changed(
        nb201_job(gt_file),
        {
            **SYNTHETIC,
            "dataset.num_images": 100,
            "fidelity.train_portion": 0.1,
            "dataset.val_portion": 0.5,
            "fidelity.batch_size": 32,
        },
    )
    with pytest.raises(ConfigError, match=r"fidelity\.batch_size=32 exceeds the 10 training"):
        validate(job)
    validate(changed(job, {"fidelity.batch_size": 10}))  # exactly one batch of them


def test_running_bn_needs_tracked_statistics_not_affine_parameters(gt_file):
    # eval.bn=running reads the statistics BN tracked; affine parameters are another matter
    job = changed(nb201_job(gt_file), {"eval.bn": EvalBN.running, "protocol.bn_track": True})
    validate(changed(job, {"protocol.bn_affine": False}))
    with pytest.raises(ConfigError, match=r"protocol\.bn_track=true"):
        validate(changed(job, {"protocol.bn_track": False}))


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        # NB101's ops sit on its nodes (spec Table 14: node); no edge mapping exists there
        (
            {"search_space.name": SpaceName.nb101, "supernet.ops_on": OpsOn.edge},
            "supernet.ops_on=edge is not supported by search_space=nb101; allowed values: node",
        ),
        # Random-A draws unique architectures (NB101 hashes, NB201 strings): none on DARTS
        (
            {"search_space.name": SpaceName.darts_nds, "sampler.name": SamplerName.random_a},
            "sampler=random_a is not supported by search_space=darts_nds",
        ),
    ],
)
def test_a_choice_the_space_lacks_is_refused_before_its_ground_truth(changes, said):
    # no ground truth is given: the choice is said first, not the missing file
    with pytest.raises(ConfigError, match=re.escape(said)):
        validate(changed(nb201_job(None), changes))


def test_a_darts_super_net_keeps_a_normal_cell(tmp_path):
    # DARTS reduces at layers // 3 and 2 * layers // 3: two cells would both reduce
    table = tmp_path / "DARTS.json"
    table.write_text("[]")
    job = changed(
        nb201_job(table),
        {"search_space.name": SpaceName.darts_nds, "sampler.name": SamplerName.fairnas},
    )
    with pytest.raises(ConfigError, match=r"fidelity\.layers=2 is not supported"):
        validate(changed(job, {"fidelity.layers": 2}))


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"ground_truth.metric": "valid"}, "ground_truth.metric=valid: NDS DARTS records test"),
        (
            {"ground_truth.dataset": "cifar10-valid"},
            "ground_truth.dataset=cifar10-valid: NDS DARTS has dataset cifar10 only",
        ),
    ],
)
def test_a_dataset_or_metric_the_benchmark_file_lacks_is_refused(tmp_path, changes, said):
    # NDS publishes DARTS test errors on CIFAR-10 only (spec section 6): known from the file's
    # format, before it is read
    from nasheur.config import GTMetric

    table = tmp_path / "DARTS.json"
    table.write_text("[]")
    job = changed(
        nb201_job(table),
        {"search_space.name": SpaceName.darts_nds, "sampler.name": SamplerName.fairnas},
    )
    validate(job)
    if "ground_truth.metric" in changes:
        changes = {"ground_truth.metric": GTMetric(changes["ground_truth.metric"])}
    with pytest.raises(ConfigError, match=re.escape(said)):
        validate(changed(job, changes))


def test_a_ground_truth_dataset_is_one_the_benchmarks_publish(gt_file):
    with pytest.raises(
        ConfigError,
        match=re.escape("ground_truth.dataset=cifar100 is not supported; allowed values: cifar10"),
    ):
        validate(changed(nb201_job(gt_file), {"ground_truth.dataset": "cifar100"}))


def test_a_blank_ground_truth_path_names_no_file(gt_file):
    # spaces alone would be read as the current folder
    with pytest.raises(ConfigError, match=r"ground_truth\.path='  ' names no file"):
        validate(changed(nb201_job(gt_file), {"ground_truth.path": "  "}))


def test_a_blank_ground_truth_cache_dir_names_no_folder(gt_file):
    # an empty folder name would cache converted tables in the current folder
    for blank in ("", " "):
        with pytest.raises(
            ConfigError, match=rf"ground_truth\.cache_dir='{blank}' names no folder"
        ):
            validate(changed(nb201_job(gt_file), {"ground_truth.cache_dir": blank}))


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"ground_truth.unit": GTUnit.percent}, "ground_truth.unit=percent: these"),
        ({"ground_truth.column": "acc"}, "ground_truth.column=acc: these"),
        (
            {"ground_truth.column": "acc", "ground_truth.unit": GTUnit.fraction},
            "ground_truth.column=acc, ground_truth.unit=fraction: these",
        ),
    ],
)
def test_table_keys_on_a_benchmark_file_are_refused_by_the_config_check(tmp_path, changes, said):
    # the job would refuse them too, but only once it has loaded its data
    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"  # its format is known by its name
    pth.write_bytes(b"")
    with pytest.raises(ConfigError, match=re.escape(said) + " apply to CSV tables only"):
        validate(changed(nb201_job(pth), changes))
    validate(changed(nb201_job(pth), {"ground_truth.unit": GTUnit.auto}))  # the default: no word


def test_a_missing_file_is_named_by_the_key_that_gave_it(tmp_path, monkeypatch):
    # the key given wins over the environment's variable, and the message names the key
    monkeypatch.setenv("NASHEUR_GT_NB201", str(tmp_path / "from-env.csv"))
    with pytest.raises(ConfigError, match=r"^ground_truth\.path=.*absent\.csv: no such file"):
        validate(nb201_job(tmp_path / "absent.csv"))


def test_a_nats_simple_folder_is_a_ground_truth_but_another_folder_is_not(tmp_path):
    # README "Ground truth": NATS-Bench's -simple folder (its meta.pickle.pbz2 beside one file
    # per architecture) is NB201's benchmark, known from its layout before it is read
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"^ground_truth\.path=.*not a NATS-Bench -simple"):
        validate(nb201_job(folder))
    (folder / "meta.pickle.pbz2").write_bytes(b"")
    validate(nb201_job(folder))


def test_a_file_of_no_known_format_is_a_config_error_naming_the_key(tmp_path):
    # said in one line before any work, not as a traceback from the loader
    table = tmp_path / "gt.dat"
    table.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"^ground_truth\.path=.*unknown ground-truth format"):
        validate(nb201_job(table))


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs unix sockets")
def test_a_file_that_cannot_be_opened_is_a_config_error_naming_the_key(tmp_path, monkeypatch):
    # a socket exists but cannot be opened (as root too, which reads any file whatever its
    # mode): the OS error is said as the key's, not raised as a traceback
    monkeypatch.chdir(tmp_path)  # a short relative name: socket paths have a length limit
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("gt.sock")
        with pytest.raises(ConfigError, match=r"^ground_truth\.path=gt\.sock: "):
            validate(nb201_job(Path("gt.sock")))


def test_a_table_of_another_space_is_refused(tmp_path):
    # a table that says it measured the embedded space is not NAS-Bench-201's accuracies
    table = tmp_path / "gt.csv"
    table.write_text("# unit: fraction\n# space: embedded\nkey,accuracy\n" + ROW)
    with pytest.raises(ConfigError, match="holds architectures of search_space=embedded, not of"):
        validate(nb201_job(table))


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (".", "experiment.name='.'"),  # runs/sweeps itself
        ("a/b", "experiment.name='a/b'"),  # a folder below another sweep's
        ("ok..", None),  # dots inside a name are a name
    ],
)
def test_an_experiment_name_is_one_folder_name(gt_file, name, said):
    job = changed(nb201_job(gt_file), {"experiment.name": name})
    if said is None:
        validate(job)
        return
    with pytest.raises(ConfigError, match=re.escape(said)):
        validate(job)


@pytest.mark.parametrize("factor", ["seed.x", "protocol.lr.x", "supernet.nonesuch"])
def test_an_experiment_factor_is_a_key_of_the_config(gt_file, factor):
    # seed and protocol.lr are values: nothing lies below them
    job = changed(nb201_job(gt_file), {"experiment.factors": [factor]})
    with pytest.raises(ConfigError, match=re.escape(f"experiment.factors={factor!r}")):
        validate(job)


# --- where a job's ground truth comes from --------------------------------------------------


@pytest.mark.parametrize(
    ("space", "variable"),
    [
        ("nb101", "NASHEUR_GT_NB101"),
        ("nb201", "NASHEUR_GT_NB201"),
        ("darts_nds", "NASHEUR_GT_DARTS_NDS"),
    ],
)
def test_each_space_reads_its_own_variable(space, variable, monkeypatch):
    # README: NASHEUR_GT_<SPACE>, the space's name in capitals
    monkeypatch.setenv(variable, "/gt/table.csv")
    assert resolve_ground_truth(space, None) == "/gt/table.csv"
    assert resolve_ground_truth(space, "/given.csv") == "/given.csv"  # the key wins


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_variable_names_no_file(value, monkeypatch):
    # site.env's empty line: the space's own table (embedded), else none
    from nasheur.groundtruth.embedded import TABLE

    monkeypatch.setenv("NASHEUR_GT_NB201", value)
    monkeypatch.setenv("NASHEUR_GT_EMBEDDED", value)
    assert resolve_ground_truth("nb201", None) is None
    assert resolve_ground_truth("embedded", None) == str(TABLE)


def test_a_path_under_home_is_expanded_wherever_it_is_given(tmp_path, monkeypatch):
    # a path given as `~/...` (quoted, so no shell expanded it) names the file under $HOME
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_ground_truth("nb201", "~/a.csv") == str(tmp_path / "a.csv")
    monkeypatch.setenv("NASHEUR_GT_NB201", "~/b.csv")
    assert resolve_ground_truth("nb201", None) == str(tmp_path / "b.csv")


# --- identity: a job's folder and its trained super-net -------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"eval.bn": EvalBN.batch},
        {"eval.pool_size": 100},
        {"metrics.top_n": 5},
        {"metrics.skdt_threshold": 0.01},
        {"ground_truth.path": "/elsewhere/gt.csv"},
    ],
)
def test_evaluation_only_keys_change_the_job_but_not_its_training(gt_file, changes):
    # the super-net is the same step for step: another job may evaluate it (trained twins)
    base = plain(nb201_job(gt_file))
    other = plain(changed(nb201_job(gt_file), changes))
    assert config_hash(other) != config_hash(base)
    assert training_hash(other) == training_hash(base)


@pytest.mark.parametrize(
    "changes",
    [{"protocol.lr": 0.05}, {"seed": 1}, {"supernet.wsbn": True}, {"fidelity.channels": 8}],
)
def test_what_training_reads_changes_the_training(gt_file, changes):
    base = plain(nb201_job(gt_file))
    assert training_hash(plain(changed(nb201_job(gt_file), changes))) != training_hash(base)


def test_a_recorded_change_of_an_added_key_changes_the_identity(gt_file):
    # supernet.random_subspace is left out only at its default (jobs run before it existed)
    base = plain(nb201_job(gt_file))
    on = plain(changed(nb201_job(gt_file), {"supernet.random_subspace": True}))
    assert config_hash(on) != config_hash(base)
    assert training_hash(on) != training_hash(base)


@pytest.mark.parametrize("dataset", [DatasetName.synthetic, DatasetName.procedural])
@pytest.mark.parametrize(
    ("key", "value"),
    [("dataset.num_images", 400), ("dataset.image_size", 32), ("dataset.num_classes", 5)],
)
def test_generated_image_sizes_make_the_training_but_not_on_cifar10(gt_file, dataset, key, value):
    # a generated set is made from these: another size is other data; CIFAR-10 reads none
    generated = changed(nb201_job(gt_file), {"dataset.name": dataset})
    other = changed(generated, {key: value})
    assert training_hash(plain(other)) != training_hash(plain(generated))
    cifar10 = nb201_job(gt_file)
    assert config_hash(plain(changed(cifar10, {key: value}))) == config_hash(plain(cifar10))


@pytest.mark.parametrize("bn", list(EvalBN))
def test_recalibration_batches_count_only_where_evaluation_recalibrates(gt_file, bn):
    # eval.recalibrate_batches is read by eval.bn=recalibrate alone (spec section 4)
    job = changed(nb201_job(gt_file), {"eval.bn": bn})
    more = changed(job, {"eval.recalibrate_batches": 3})
    assert (config_hash(plain(more)) != config_hash(plain(job))) == (bn is EvalBN.recalibrate)


def test_a_record_from_before_an_added_key_keeps_its_identity(gt_file):
    # ADDED_KEYS: a job recorded before supernet.random_subspace existed has no such key; it is
    # the same job as one that has it at its default, and so keeps its folder
    base = plain(nb201_job(gt_file))
    older = copy.deepcopy(base)
    del older["supernet"]["random_subspace"]
    assert config_hash(older) == config_hash(base)
    assert training_hash(older) == training_hash(base)
    # said as such, not only hashed alike: a missing added key is at its default
    assert "supernet.random_subspace" in inactive_keys(older)
    assert "supernet.random_subspace" in inactive_keys(base)


# --- WSBN that cannot act --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "inert"),
    [
        ({}, None),  # off: nothing to say
        ({"supernet.wsbn": True}, "ops on edges"),  # NB201's edges: one input per op set
        ({"supernet.wsbn": True, "supernet.ops_on": OpsOn.node}, None),  # affine slots differ
        # no affine parameters; eval.bn=auto without tracking is batch: nothing tells slots apart
        (
            {"supernet.wsbn": True, "supernet.ops_on": OpsOn.node, "protocol.bn_affine": False},
            "protocol.bn_affine=false",
        ),
        # ... but with tracking, auto is running, which reads each slot's own statistics
        (
            {
                "supernet.wsbn": True,
                "supernet.ops_on": OpsOn.node,
                "protocol.bn_affine": False,
                "protocol.bn_track": True,
            },
            None,
        ),
    ],
)
def test_wsbn_is_said_to_be_unused_only_where_it_cannot_act(changes, inert):
    said = wsbn_unused(changed(nb201_job(None), changes))
    assert said is None if inert is None else inert in said


# --- the groups a job takes ------------------------------------------------------------------

NB201_CHOICES = {
    "dataset": "cifar10",
    "eval_speed": "packed",
    "search_space": "nb201",
    "supernet": "nb201",
    "fidelity": "nb201",
    "protocol": "nb201",
    "sampler": "fairnas",
}


@pytest.mark.parametrize("group", list(NB201_CHOICES))
def test_no_group_may_be_removed(group):
    with pytest.raises(ConfigError, match=f"^~{group}: the {group} group cannot be removed"):
        check_groups({**NB201_CHOICES, group: None})


@pytest.mark.parametrize("group", ["supernet", "fidelity", "protocol"])
def test_a_jobs_paper_defaults_are_its_own_spaces(group):
    # another space's Table 14 row under this space's name; a sweep's choices are its jobs'
    other = {**NB201_CHOICES, group: "darts_nds"}
    with pytest.raises(ConfigError, match=f"^{group}=darts_nds holds the defaults of"):
        check_groups(other)
    check_groups(other, spaces=False)
    check_groups(NB201_CHOICES)


# --- the typed config from plain data ---------------------------------------------------------


def test_keys_the_schema_does_not_hold_are_named(gt_file):
    # Hydra's `+key=` adds them to the typed config it composed (OmegaConf would refuse them
    # in a merge), where nothing would read them
    data = OmegaConf.merge(OmegaConf.structured(Config), plain(nb201_job(gt_file)))
    OmegaConf.update(data, "supernet.wbsn", True, force_add=True)
    OmegaConf.update(data, "fidelity.baseline.depth", 3, force_add=True)
    with pytest.raises(
        ConfigError, match=r"^unknown keys fidelity\.baseline\.depth, supernet\.wbsn: not in"
    ):
        to_config(data)


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"protocol.lr": "abc"}, "protocol.lr"), ({"dataset.name": "imagenet"}, "dataset.name")],
)
def test_a_value_of_the_wrong_type_names_its_key(gt_file, changes, key):
    data = OmegaConf.create(plain(nb201_job(gt_file)))
    for dotted, value in changes.items():
        OmegaConf.update(data, dotted, value)
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: "):
        to_config(data)
