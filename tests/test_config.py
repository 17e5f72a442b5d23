"""The Hydra app's composition and validation: bad input fails fast, naming the key."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nasheur.config import Config, ConfigError, config_hash, plain, to_config, validate
from tests.conftest import PYTHON, REPO, compose_job, run_env


def compose_config(overrides: list[str], gt: Path | None = None) -> Config:
    """NB201 unless ``overrides`` name another space (the app's own default is embedded)."""
    if not any(o.startswith("search_space=") for o in overrides):
        overrides = ["search_space=nb201", *overrides]
    if gt is not None:
        overrides = [*overrides, f"ground_truth.path={gt}"]
    return compose_job(overrides)


@pytest.fixture
def gt_file(tmp_path: Path) -> Path:
    path = tmp_path / "gt.csv"
    path.write_text(
        "# unit: fraction\nkey,accuracy\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.1\n"
    )
    return path


@pytest.mark.parametrize(
    ("overrides", "graphs", "streams", "pack"),
    [  # README, "Device and speed": each space's eval_speed, and a choice over it
        (["search_space=nb201"], False, 1, 16),
        (["search_space=embedded"], False, 1, 16),
        (["search_space=nb101"], True, 4, 1),
        (["search_space=darts_nds"], True, 4, 1),
        (["search_space=nb201", "eval_speed=graphs"], True, 4, 1),
        (["search_space=nb101", "eval_speed=packed"], False, 1, 16),
        (["search_space=nb201", "eval_speed=graphs", "run.eval_pack=8"], True, 4, 8),
    ],
)
def test_eval_speed_sets_how_the_pool_is_evaluated(overrides, graphs, streams, pack):
    run = compose_config(overrides).run
    assert (run.eval_graphs, run.eval_streams, run.eval_pack) == (graphs, streams, pack)


def test_nb201_defaults_follow_table_14(gt_file):
    cfg = compose_config([], gt_file)
    validate(cfg)
    assert cfg.search_space.name.value == "nb201"
    assert (cfg.fidelity.layers, cfg.fidelity.channels, cfg.fidelity.batch_size) == (5, 16, 128)
    assert cfg.fidelity.train_portion == 0.9
    p = cfg.protocol
    assert (p.lr, p.epochs, p.weight_decay, p.bn_track, p.bn_affine) == (
        0.025,
        1000,
        0.003,
        False,
        True,
    )
    assert (p.momentum, p.grad_clip) == (0.9, 5.0)
    assert cfg.supernet.ops_on.value == "edge"
    assert (
        cfg.eval.pool_size == 200 and cfg.metrics.skdt_threshold == 0.001 and cfg.metrics.top_n == 3
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["sampler=random_a"],
        ["sampler=fairnas"],
        ["supernet.ofa_kernel=true", "supernet.wsbn=true"],
        ["supernet.path_dropout=0.2", "supernet.global_dropout=0.2"],
        ["fidelity.compensate_epochs=true", "fidelity.channels=8"],
        ["sampler=random_nas", "supernet.ops_on=node"],
        ["dataset=synthetic"],
        ["eval.bn=batch"],
        ["eval.bn=recalibrate"],
        ["eval.bn=running", "protocol.bn_track=true"],
        ["device=cpu", "seed=3"],
        ["run.eval_graphs=false", "run.eval_streams=4", "run.channels_last=true"],
        ["run.eval_pack=1"],
        ["experiment.name=my_sweep-2.b", "experiment.factors=[sampler.name,supernet.subspace]"],
    ],
)
def test_every_offered_option_validates(overrides, gt_file):
    validate(compose_config(overrides, gt_file))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["fidelity.train_portion=1.5"], "fidelity.train_portion"),
        (["fidelity.train_portion=0"], "fidelity.train_portion"),
        (["fidelity.batch_size=1"], "fidelity.batch_size"),
        (["protocol.lr=-0.1"], "protocol.lr"),
        (["protocol.epochs=0"], "protocol.epochs"),
        (["protocol.weight_decay=-1"], "protocol.weight_decay"),
        (["eval.pool_size=2", "metrics.top_n=3"], "eval.pool_size"),
        (["metrics.skdt_threshold=0"], "metrics.skdt_threshold"),
        (["eval.bn=running"], "protocol.bn_track"),
        (["dataset.val_portion=1.0"], "dataset.val_portion"),
        (["seed=-1"], "seed"),
        (["supernet.dynamic_channels=shuffle"], "supernet.dynamic_channels"),
        (["supernet.subspace=2"], "supernet.subspace"),
        (["supernet.random_subspace=true"], "supernet.random_subspace=true needs sub-spaces"),
        (["supernet.path_dropout=1.0"], "supernet.path_dropout"),
        (["supernet.global_dropout=-0.1"], "supernet.global_dropout"),
        (["run.eval_streams=0"], "run.eval_streams"),
        (["run.eval_pack=0"], "run.eval_pack"),
        (["dataset=procedural", "dataset.num_classes=11"], "dataset.num_classes"),
        # beyond int64, torch's sizes and seeds: its error was a C++ traceback
        (["fidelity.channels=100000000000000000000"], "fidelity.channels=100000000000000000000 is"),
        (
            ["seed=9223372036854775808"],
            "seed=9223372036854775808 is out of range: expected a whole",
        ),
        (["dataset.split_seed=18446744073709551616"], "dataset.split_seed=18446744073709551616 is"),
        # the sweep's folder, runs/sweeps/<name>: not the sweeps' root, not a path out of it
        (["experiment.name="], "experiment.name='' is no plain folder name: expected"),
        (["experiment.name=../../escape"], "experiment.name='../../escape' is no plain folder"),
        (["experiment.name=.."], "experiment.name='..'"),
        (
            ["experiment.factors=[protocol.lr,no.such.key]"],
            "experiment.factors='no.such.key' is no key of the config",
        ),
    ],
)
def test_out_of_range_values_name_the_key(overrides, key, gt_file):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_config(overrides, gt_file))


def test_the_default_is_the_embedded_benchmark_with_its_shipped_table():
    from nasheur.config import ground_truth_path
    from nasheur.groundtruth.embedded import TABLE

    cfg = compose_job([])
    validate(cfg)
    assert cfg.search_space.name.value == "embedded" and cfg.dataset.name.value == "procedural"
    assert cfg.ground_truth.path is None and ground_truth_path(cfg) == str(TABLE)
    # the baseline is the size of its GT networks; the default super-net is one cell deep
    base = cfg.fidelity.baseline
    assert (base.channels, base.layers, base.batch_size) == (8, 3, 32)
    assert (cfg.fidelity.channels, cfg.fidelity.layers, cfg.fidelity.batch_size) == (8, 1, 32)
    assert (cfg.dataset.image_size, cfg.dataset.num_classes) == (12, 10)


@pytest.mark.parametrize(
    ("overrides", "dataset"),
    [
        (["search_space=nb201"], "cifar10"),
        (["search_space=nb101"], "cifar10"),
        (["search_space=darts_nds"], "cifar10"),
        (["search_space=embedded"], "procedural"),
        (["search_space=nb201", "dataset=synthetic"], "synthetic"),  # the command line wins
        (["search_space=embedded", "dataset=synthetic"], "synthetic"),
        (["dataset=cifar10"], "cifar10"),
    ],
)
def test_each_space_brings_its_dataset(overrides, dataset):
    assert compose_job(overrides).dataset.name.value == dataset


def test_ground_truth_per_space_from_the_environment(gt_file, tmp_path, monkeypatch):
    from nasheur.config import ground_truth_path

    embedded = compose_job([])
    before = config_hash(plain(embedded))
    monkeypatch.setenv("NASHEUR_GT_NB201", str(gt_file))
    assert config_hash(plain(embedded)) == before  # another space's variable changes nothing
    cfg = compose_config([])
    validate(cfg)  # no ground_truth.path: $NASHEUR_GT_NB201 names the file
    assert ground_truth_path(cfg) == str(gt_file)
    other = tmp_path / "other.csv"
    other.write_text(gt_file.read_text())
    assert ground_truth_path(compose_config([], other)) == str(other)  # the key wins
    with pytest.raises(ConfigError, match="NASHEUR_GT_NB101"):  # one variable per space
        validate(compose_config(["search_space=nb101"]))
    # the file is part of a job's identity however it is named
    by_env = config_hash(plain(cfg))
    assert by_env == config_hash(plain(compose_config([], gt_file)))
    monkeypatch.setenv("NASHEUR_GT_NB201", str(other))
    assert config_hash(plain(compose_config([]))) not in (by_env, config_hash(plain(embedded)))
    monkeypatch.setenv("NASHEUR_GT_NB201", str(tmp_path / "absent.csv"))
    with pytest.raises(ConfigError, match="no such file"):
        validate(compose_config([]))


def test_missing_ground_truth_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"ground_truth\.path.*NASHEUR_GT_NB201"):
        validate(compose_config([]))
    with pytest.raises(ConfigError, match="no such file"):
        validate(compose_config([f"ground_truth.path={tmp_path / 'absent.csv'}"]))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["protocol.lr=abc"], "protocol.lr"),
        (["protocol.bn_track=maybe"], "protocol.bn_track"),
        (["eval.bn=foo"], "auto, batch, running, recalibrate"),
        (["supernet.nonesuch=1"], "nonesuch"),
        (["sampler=nonesuch"], "random_a"),
        (["search_space=nonesuch"], "nb201"),
    ],
)
def test_compose_errors_name_the_key_and_allowed_values(overrides, expected):
    with pytest.raises(Exception) as info:
        compose_config(overrides)
    message = f"{info.value} {info.value.__cause__}"  # Hydra wraps OmegaConf's error
    assert expected in message


def test_config_hash_ignores_device_but_not_results(gt_file):
    base = plain(compose_config([], gt_file))
    assert config_hash(base) == config_hash(plain(compose_config(["device=cpu"], gt_file)))
    # the speed knobs change no accuracy (channels_last: float rounding, as the device does)
    speed = [
        "run.eval_graphs=false",
        "run.eval_streams=4",
        "run.eval_pack=2",
        "run.channels_last=true",
    ]
    assert config_hash(base) == config_hash(plain(compose_config(speed, gt_file)))
    assert config_hash(base) != config_hash(plain(compose_config(["seed=1"], gt_file)))
    assert config_hash(base) != config_hash(plain(compose_config(["protocol.lr=0.05"], gt_file)))


def test_keys_added_later_keep_the_identity_of_jobs_run_before_them(gt_file):
    base = plain(compose_config([], gt_file))
    older = json.loads(json.dumps(base))  # a config written before the keys existed
    del older["supernet"]["random_subspace"]
    assert config_hash(older) == config_hash(base)
    changed = {**base, "supernet": {**base["supernet"], "random_subspace": True}}
    assert config_hash(base) != config_hash(changed)


def test_schema_round_trips_through_plain_data(gt_file):
    cfg = compose_config(["sampler=random_a"], gt_file)
    again = to_config(OmegaConf.create(plain(cfg)))
    assert plain(again) == plain(cfg)


def nasheur_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m nasheur ARGS`` as a user runs it, with runs under `tmp_path`."""
    return subprocess.run(
        [PYTHON, "-m", "nasheur", *args],
        cwd=REPO,
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sampler=nonesuch", "sampler"),
        ("protocol.lr=abc", "protocol.lr"),
        ("fidelity.train_portion=1.5", "fidelity.train_portion"),
        ("dataset.split_seed=-1", "dataset.split_seed"),
    ],
)
def test_command_line_fails_fast_naming_the_key(override, key, tmp_path):
    """The acceptance commands: a non-zero exit whose message names the key (no data read)."""
    proc = nasheur_cli([override], tmp_path)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr or key in proc.stderr
    # nothing is left behind: no run folder for a job that never started
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*"))


@pytest.mark.parametrize(
    "arg", ["hydra.sweeper.dry_run=2", "hydra.sweeper.check_data=5", "hydra.launcher.mps=2"]
)
def test_a_number_for_a_yes_no_key_of_the_sweep_is_refused(arg):
    """OmegaConf read `hydra.sweeper.dry_run=2` as true without a word, as it would the
    job's `supernet.wsbn=2`."""
    from nasheur.config import check_command_line

    with pytest.raises(ConfigError, match=re.escape(f"{arg} is not a yes/no value")):
        check_command_line(["-m", arg])
    check_command_line(["-m", arg.replace("=5", "=0").replace("=2", "=true")])


def test_the_yes_no_keys_of_the_sweep_are_those_of_its_schemas():
    import typing
    from dataclasses import fields

    from hydra_plugins.nasheur_ablation.ablation_sweeper import AblationSweeperConf
    from hydra_plugins.nasheur_ablation.packed_launcher import (
        LocalParallelConf,
        PackedSlurmQueueConf,
    )
    from nasheur.config import HYDRA_BOOL_KEYS

    found = {
        f"hydra.{where}.{f.name}"
        for where, schema in (
            ("sweeper", AblationSweeperConf),
            ("launcher", LocalParallelConf),
            ("launcher", PackedSlurmQueueConf),
        )
        for f in fields(schema)
        if typing.get_type_hints(schema)[f.name] is bool
    }
    assert found == HYDRA_BOOL_KEYS


@pytest.mark.parametrize(
    "args", [["dataset.name=synthetic"], ["-m", "+dataset.name=procedural,synthetic"]]
)
def test_the_dataset_key_alone_is_refused_for_its_group(args):
    """`dataset.name=synthetic` kept the group's other keys (the embedded space's procedural
    sizes, split and augmentation): another image set than `dataset=synthetic` gives."""
    from nasheur.config import check_command_line

    with pytest.raises(ConfigError, match=r"dataset\.name=.*choose the images with dataset="):
        check_command_line(args)
    check_command_line(["dataset=synthetic", "dataset.num_images=3000"])  # the group: fine


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["+experiment=bn_ablation"], "config error: +experiment=bn_ablation is a sweep: add -m"),
        (
            ["hydra/launcher=slurm"],
            "config error: hydra/launcher=slurm takes effect in a sweep only; without -m this job "
            "would run here, not through it. Add -m to submit it",
        ),
        (
            ["hydra/launcher=local_parallel"],
            "config error: hydra/launcher=local_parallel takes effect in a sweep only; without -m "
            "this job would run here, not through it. Add -m to launch it (a sweep of one job)",
        ),
        (["experiment.table=11"], "config error: experiment.table=11 marks a job of an experim"),
        # a key Hydra lets into a typed node (`+`) that nothing would read, a group removed
        (
            ["+preset=debug", "+supernet.wbsn=true"],
            "config error: unknown key supernet.wbsn: not in the config; did you mean "
            "supernet.wsbn?",
        ),
        # a misspelt key without '+': not Hydra's advice to append it, which fails as above
        (
            ["+preset=debug", "protocol.lrr=0.1"],
            "config error: unknown key protocol.lrr: not in the config; did you mean protocol.lr?",
        ),
        # a misspelt group, a key of another section
        (
            ["+preset=debug", "protcol=nb201"],
            "config error: unknown key protcol: not in the config; did you mean protocol? ",
        ),
        (
            ["+preset=debug", "fidelity.epochs=3"],
            "config error: unknown key fidelity.epochs: not in the config; did you mean "
            "protocol.epochs?",
        ),
        (
            ["+preset=debug", "hydra.job.chdr=true"],
            "config error: unknown key hydra.job.chdr: not in the config (python -m nasheur "
            "--cfg hydra shows the keys)",
        ),
        # a key of another launcher profile than the one composed: that profile is named
        (
            ["-m", "+preset=debug", "hydra.launcher.jobs_at_once=2"],
            "config error: unknown key hydra.launcher.jobs_at_once: a key of "
            "hydra/launcher=local_parallel, not of the launcher chosen (choose it: "
            "hydra/launcher=local_parallel hydra.launcher.jobs_at_once=...)",
        ),
        (
            [
                "-m",
                "+preset=debug",
                "hydra/launcher=local_parallel",
                "hydra.launcher.partition=gpu",
            ],
            "config error: unknown key hydra.launcher.partition: a key of hydra/launcher=slurm",
        ),
        (
            ["+preset=debug", "protocol.zzzz=1"],
            "config error: unknown key protocol.zzzz: not in the config (python -m nasheur --cfg",
        ),
        # a key added under a plugin of the sweep that it does not take: its settings named
        (
            ["-m", "+preset=debug", "+hydra.sweeper.dryrun=true"],
            "config error: unknown key hydra.sweeper.dryrun: not a setting of hydra.sweeper "
            "(AblationSweeper: spaces, seeds, blocks, max_batch_size, reuse, check_data, "
            "dry_run); did you mean hydra.sweeper.dry_run?",
        ),
        (
            [
                "-m",
                "+preset=debug",
                "hydra/launcher=local_parallel",
                "+hydra.launcher.jobs_at_onec=2",
                "hydra.sweeper.dry_run=true",
            ],
            "config error: unknown key hydra.launcher.jobs_at_onec: not a setting of "
            "hydra.launcher (LocalParallelLauncher: jobs_at_once, mps); did you mean "
            "hydra.launcher.jobs_at_once?",
        ),
        # the SLURM launcher takes any key: submitit would refuse it only as the sweep submits
        (
            [
                "-m",
                "+preset=debug",
                "hydra/launcher=slurm",
                "+hydra.launcher.tiemout_min=5",
                "hydra.sweeper.dry_run=true",
            ],
            "config error: unknown key hydra.launcher.tiemout_min: not a setting of "
            "hydra.launcher (PackedSlurmLauncher: submitit_folder, timeout_min,",
        ),
        (["+preset=debug", "~sampler"], "config error: ~sampler: the sampler group cannot be"),
        (["+preset=debug", "~supernet"], "config error: ~supernet: the supernet group cannot"),
        # another space's paper defaults, under this space's name
        (
            ["+preset=debug", "fidelity=nb201"],
            "config error: fidelity=nb201 holds the defaults of search_space=nb201, but this job "
            "searches search_space=embedded: leave fidelity at its default",
        ),
        # before Hydra composes: its own errors were a traceback (null) and an interpolation
        (["sampler=null"], "config error: sampler=null: the sampler group cannot be removed"),
        (["search_space="], "config error: search_space=: the search_space group cannot be"),
        (["~search_space"], "config error: ~search_space: the search_space group cannot be"),
        (
            ["-m", "~eval_speed"],  # its keys are under run.
            "config error: ~eval_speed: the eval_speed group cannot be removed (every job "
            "takes one of its options); choose one with eval_speed=<option>, or set its keys "
            "(run.<key>=...)",
        ),
        (["ground_truth.path="], "config error: ground_truth.path='' names no file"),
        (["hydra.run.dir="], "config error: hydra.run.dir= names the current folder"),
        (["-m", "hydra.sweep.dir=."], "config error: hydra.sweep.dir=. names the current folder"),
        (["hydra.run.dir=./"], "config error: hydra.run.dir=./ names the current folder"),
        (
            ["-m", f"hydra.sweep.dir={REPO}"],
            f"config error: hydra.sweep.dir={REPO} names the current folder",
        ),
        # the key without its group: the embedded space's settings under NB201's name
        (
            ["search_space.name=nb201"],
            "config error: search_space.name=nb201: choose the search space with "
            "search_space=<space>",
        ),
        # OmegaConf reads a number as a yes/no (2 is true): a typo would train another config
        (["supernet.ofa_kernel=2"], "config error: supernet.ofa_kernel=2 is not a yes/no value"),
        (["-m", "supernet.wsbn=true,2"], "config error: supernet.wsbn=2 is not a yes/no value"),
        # a sweep function is expanded by the sweeper, which checks each job's values too
        (
            ["-m", "supernet.wsbn=choice(2)", "supernet.ops_on=node"],
            "config error: 1 of 1 jobs have a bad config; nothing was launched:\n  "
            "search_space=embedded seed=0 supernet.wsbn=2 supernet.ops_on=node: "
            "supernet.wsbn=2 is not a yes/no value",
        ),
        # Hydra's own composition errors, said in one line too (they were 5 to 20 lines)
        (
            ["protocol.epochs=1.5"],
            "config error: Error merging override protocol.epochs=1.5; Value '1.5' of type "
            "'float' could not be converted to Integer",
        ),
        (
            ["sampler=foo"],
            "config error: In 'config': Could not find 'sampler/foo'; Available options in "
            "'sampler': fairnas, random_a, random_nas",
        ),
        # a batch larger than a share of the split, from the config alone (a sweep too)
        (
            ["-m", "seed=0,1", "dataset.num_images=100"],
            "config error: 2 of 2 jobs have a bad config; nothing was launched:\n"
            "  fidelity.batch_size=32 exceeds the 25 validation images of the split",
        ),
        (
            ["+preset=debug", "eval.pool_size=500"],
            "input error: eval.pool_size=500 exceeds the 300 architectures of the space "
            "searched (embedded) that have ground truth in ",
        ),
        (["+preset=debug", "device=cuda"], "input error: device=cuda but torch sees no CUDA"),
        # Hydra's parser: which override, and how to write it
        (
            ["dataset.root=/x=y"],
            "config error: override 'dataset.root=/x=y': mismatched input '=' expecting <EOF> "
            "(a value with '=', ',', spaces or brackets in it goes in quotes: key='a=b')",
        ),
        # under -m a comma sweeps a value, and Hydra's own keys cannot be swept
        (
            ["-m", "hydra.sweep.dir=/tmp/a,b"],
            "config error: Sweeping over Hydra's configuration is not supported : "
            "'hydra.sweep.dir=/tmp/a,b': a ',' in a value sweeps it; a value with ',' goes in "
            "quotes: key='a,b'",
        ),
    ],
)
def test_what_a_single_run_cannot_do_is_said_in_one_line(overrides, said, tmp_path):
    if "device=cuda" in overrides:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is here")
    proc = nasheur_cli([*overrides], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"nasheur: {said}" in proc.stderr and "Traceback" not in proc.stderr
    runs = tmp_path / "runs"  # found before training: nothing left behind
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*")), [
        str(p) for p in runs.rglob("*")
    ]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["hydra.run.dir={file}"], "cannot make the output folder {file}: File exists"),
        (["hydra.run.dir={file}/job"], "cannot make the output folder {file}/job: Not a dir"),
        (["-m", "seed=0,1", "hydra.sweep.dir={file}/s"], "cannot make the sweep's folder"),
    ],
)
def test_an_output_folder_that_cannot_be_made_is_said_in_one_line(args, said, tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    proc = nasheur_cli(["+preset=debug", *(a.format(file=file) for a in args)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"nasheur: config error: {said.format(file=file)}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_output_folder_that_cannot_be_written_names_no_none(tmp_path):
    # a full disk as Hydra writes its record: the write names no file
    folder = tmp_path / "job"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").symlink_to("/dev/full")
    proc = nasheur_cli(["+preset=debug", f"hydra.run.dir={folder}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write the output folder: No space left on device" in proc.stderr
    assert "None" not in proc.stderr


def test_a_log_file_that_cannot_be_opened_is_said_in_one_line(tmp_path):
    # Hydra opens nasheur.log before the job starts (another user's log in a shared runs
    # folder, a read-only one); a folder in its place fails the same way, even for root
    folder = tmp_path / "job"
    (folder / "nasheur.log").mkdir(parents=True)
    proc = nasheur_cli(["+preset=debug", f"hydra.run.dir={folder}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"nasheur: cannot open the job's log file {folder / 'nasheur.log'}: " in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "launch",
    [[], ["seed=0", "hydra/launcher=local_parallel", "-m"]],  # the job in a process of its own
    ids=["run", "sweep"],
)
def test_the_jobs_log_keeps_its_summary_whatever_bytes_its_path_holds(tmp_path, launch):
    # a runs folder named in another encoding (an old share's latin-1 name): the log lines
    # that name it are written, escaped, not dropped with a "Logging error" on stderr
    env = run_env(tmp_path)
    env["NASHEUR_RUNS"] = runs = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")
    env["PYTHONIOENCODING"] = "utf-8"  # strict, as under en_US.UTF-8 (C.UTF-8 escapes)
    proc = subprocess.run(
        [PYTHON, "-m", "nasheur", "+preset=debug", *launch],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Logging error" not in said, proc.stderr[-2000:]
    (log,) = Path(runs).rglob("nasheur.log")
    assert "sparse Kendall tau" in log.read_text(encoding="utf-8")
    assert "sparse Kendall tau" in proc.stdout  # the summary on the console too


@pytest.mark.parametrize("flag", ["-m", "--multirun"])
def test_the_multirun_flag_may_stand_among_the_overrides(flag, tmp_path):
    # Hydra's parser alone stops at the override after the flag ("unrecognized arguments");
    # here the sweep sees every override: its own error names the one after the flag
    args = ["+experiment=bn_ablation", flag, "protocol.lr=-1", "search_space=embedded"]
    proc = nasheur_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unrecognized arguments" not in proc.stderr
    assert "nasheur: config error: 12 of 12 jobs have a bad config" in proc.stderr
    assert "protocol.lr=-1.0 is out of range" in proc.stderr


def test_flags_first_moves_only_the_multirun_flag():
    from nasheur.__main__ import flags_first

    argv = ["nasheur", "a=1", "-m", "b=2", "--cfg", "job", "--multirun"]
    assert flags_first(argv) == ["nasheur", "-m", "--multirun", "a=1", "b=2", "--cfg", "job"]
    assert flags_first(["nasheur", "a=-m"]) == ["nasheur", "a=-m"]  # a value, not the flag


def test_one_level_of_a_fidelity_key_in_a_multirun_is_a_sweep_of_it():
    # Hydra checks a plain value's type before the sweeper could resolve the level
    from nasheur.__main__ import levels_as_sweeps

    args = ["-m", "fidelity.channels=base/2", "'fidelity.layers=base-1'", "protocol.lr=0.1"]
    assert levels_as_sweeps(args) == [
        "-m",
        "fidelity.channels=choice(base/2)",
        "'fidelity.layers=base-1'",  # quoted as a whole by the shell's user: left to Hydra
        "protocol.lr=0.1",
    ]
    kept = ["-m", "fidelity.channels=base/2,base", "fidelity.baseline.channels=base", "a=base"]
    assert levels_as_sweeps(kept) == kept  # a list already, a baseline, not a fidelity key
    assert levels_as_sweeps(["--multirun", "fidelity.layers='base+1'"])[1] == (
        "fidelity.layers=choice(base+1)"
    )
    with pytest.raises(ConfigError, match=r"fidelity.layers=base-1: a level .* add -m"):
        levels_as_sweeps(["fidelity.layers=base-1"])


def test_a_level_is_refused_in_a_single_run_and_swept_in_a_multirun(tmp_path):
    single = nasheur_cli(["fidelity.channels=base/2"], tmp_path)
    assert single.returncode == 2
    assert single.stderr.startswith(
        "nasheur: config error: fidelity.channels=base/2: a level of the space's baseline "
        "(fidelity.baseline.channels)"
    )
    dry = ["fidelity.channels=base/2", "-m", "hydra.sweeper.dry_run=true"]
    swept = nasheur_cli(dry, tmp_path)
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert "fidelity.channels=4 " in swept.stdout  # the embedded space's 8, halved
    assert not (tmp_path / "runs").exists()


def test_a_job_folder_spells_values_as_the_command_line_and_is_found_by_its_hash(
    tmp_path, monkeypatch
):
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers

    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path))
    register_configs()
    register_resolvers()
    sweep = ["+experiment=wsbn_ablation", "supernet.wsbn=true", "supernet.ops_on=node", "seed=1"]
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = compose("config", overrides=sweep, return_hydra_config=True)
        name, chash = str(cfg.hydra.sweep.subdir).split("/")[1].rsplit("-", 1)
        assert name == "wsbn=true,ops_on=node,seed=1"  # not wsbn=True,ops_on=OpsOn.node
        # a folder of the same config under another name (an older version's) is the job's
        old = tmp_path / "sweeps" / "wsbn_ablation" / "embedded" / f"wsbn=True,seed=1-{chash}"
        old.mkdir(parents=True)
        cfg = compose("config", overrides=sweep, return_hydra_config=True)
        assert str(cfg.hydra.sweep.subdir) == f"embedded/{old.name}"
        # a single run: the same config spelt otherwise on the command line
        cfg = compose("config", overrides=["protocol.lr=0.05"], return_hydra_config=True)
        first = Path(str(cfg.hydra.run.dir))
        assert first.name.startswith("lr=0.05-")
        (first.parent / f"x-{first.name.rsplit('-', 1)[1]}").mkdir(parents=True)
        cfg = compose("config", overrides=["protocol.lr=0.050"], return_hydra_config=True)
        assert Path(str(cfg.hydra.run.dir)) == first.parent / f"x-{first.name.rsplit('-', 1)[1]}"


def test_the_first_run_of_a_config_reserves_its_folder_name_for_every_spelling(tmp_path):
    import threading

    from nasheur.config import NAMES, _reserved_name

    space = tmp_path / "nb201"
    assert _reserved_name(space, "abc123", "lr=0.05-abc123") == "lr=0.05-abc123"
    assert (space / NAMES / "abc123").read_text() == "lr=0.05-abc123\n"
    assert _reserved_name(space, "abc123", "lr=0.050-abc123") == "lr=0.05-abc123"
    assert _reserved_name(space, "def456", "lr=0.1-def456") == "lr=0.1-def456"  # its own
    # many spellings at once: one wins the O_EXCL creation, every other reads its name
    got: list[str] = []
    names = [f"lr={0.2:.{d}f}-fff999" for d in range(1, 9)]
    threads = [
        threading.Thread(target=lambda n=n: got.append(_reserved_name(space, "fff999", n)))
        for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 8 and len(set(got)) == 1 and got[0] in names


@pytest.mark.parametrize("reserved", ["../x-abc123", "/tmp/x-abc123", "other-zzz", ".."])
def test_a_reserved_name_that_is_no_folder_name_of_the_config_is_not_followed(tmp_path, reserved):
    from nasheur.config import NAMES, _reserved_name

    (tmp_path / NAMES).mkdir()
    (tmp_path / NAMES / "abc123").write_text(reserved)
    assert _reserved_name(tmp_path, "abc123", "lr=0.05-abc123") == "lr=0.05-abc123"


def test_a_runs_folder_where_nothing_can_be_written_keeps_the_runs_own_name(tmp_path):
    from nasheur.config import _reserved_name

    (tmp_path / "file").write_text("")  # no folder can be made under a file
    assert _reserved_name(tmp_path / "file", "abc123", "a-abc123") == "a-abc123"


def test_a_reservation_that_cannot_be_written_is_not_left_empty(tmp_path, monkeypatch):
    # a full disk: the run keeps its own name (Hydra then says the folder cannot be made),
    # and no empty reservation is left for each later run of the config to wait on
    import errno
    import os

    import nasheur.config as config

    def full(fd, *args, **kwargs):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config.os, "fdopen", full)
    assert config._reserved_name(tmp_path, "abc123", "a-abc123") == "a-abc123"
    assert not (tmp_path / config.NAMES / "abc123").exists()


def test_two_spellings_resolved_before_either_folder_is_made_name_one_folder(tmp_path, monkeypatch):
    # the race of two runs started at once: each resolves hydra.run.dir before Hydra makes it
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers

    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path))
    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        dirs = [
            str(
                compose(
                    "config", [f"protocol.lr={lr}", *mode], return_hydra_config=True
                ).hydra.run.dir
            )
            for lr, mode in [
                ("0.05", ["hydra.mode=RUN"]),
                ("0.050", ["hydra.mode=RUN"]),
                ("0.0500", []),
            ]
        ]
    assert dirs[0] == dirs[1] and Path(dirs[0]).name.startswith("lr=0.05-")
    assert not Path(dirs[0]).exists()  # only its name is reserved; Hydra makes the folder
    # a look at names outside a single run (a sweep's plan, a dry run) reserves nothing
    assert Path(dirs[2]).name.startswith("lr=0.0500-")


def test_two_spellings_of_one_run_started_at_once_train_it_once(tmp_path):
    # both find no folder of their config yet; the name the first reserved sends the second
    # to the same folder, whose lock refuses it (or which it finds completed)
    from tests.conftest import start_nasheur

    tiny = ["search_space=embedded", "+preset=debug", "eval.pool_size=8"]
    procs = [
        start_nasheur([*tiny, f"protocol.lr={lr}"], run_env(tmp_path), tmp_path / f"{i}.log")
        for i, lr in enumerate(["0.05", "0.050"])
    ]
    codes = [p.wait(timeout=300) for p in procs]
    logs = [(tmp_path / f"{i}.log").read_text() for i in range(2)]
    folders = [p for p in (tmp_path / "runs" / "embedded").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1, (folders, logs)
    assert sum("epoch 1/1" in log for log in logs) == 1, logs  # trained once
    assert 0 in codes and (folders[0] / "metrics.json").is_file()
    for code, log in zip(codes, logs, strict=True):
        if code != 0:
            assert "is in use by a running job" in log, log


def test_a_command_line_sweep_is_checked_whole_before_any_job_runs(tmp_path):
    # no experiment: the command line's own sweep, through the same sweeper
    proc = nasheur_cli(["+preset=debug", "protocol.lr=0.07,-1,0.06", "-m"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "1 of 3 jobs have a bad config; nothing was launched" in proc.stderr
    assert "protocol.lr=-1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))


def test_the_procedural_class_limit_is_its_number_of_textures():
    from nasheur.config import PROCEDURAL_CLASSES
    from nasheur.data.procedural import TEXTURES

    assert len(TEXTURES) == PROCEDURAL_CLASSES


@contextlib.contextmanager
def slurm_profile(monkeypatch, value: str | None, *names: str):
    """The config with hydra/launcher=slurm, NASHEUR_SLURM_<name> set to `value` (None: unset)."""
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers

    for name in names:
        monkeypatch.delenv(f"NASHEUR_SLURM_{name}", raising=False)
        if value is not None:
            monkeypatch.setenv(f"NASHEUR_SLURM_{name}", value)
    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        yield compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)


@pytest.mark.parametrize(
    "value, expected",
    [(None, 4), ("", 4), (" ", 4), ("null", None), ("7", 7), ("seven", "not a whole number")],
)
def test_the_slurm_profile_reads_site_counts(value, expected, monkeypatch):
    # an empty value takes the default however the file was sourced (by hand too); null
    # leaves the option out where submitit allows it, and is named where it does not
    from omegaconf.errors import InterpolationResolutionError

    with slurm_profile(monkeypatch, value, "CPUS", "TIME_MIN") as cfg:
        if isinstance(expected, str):
            with pytest.raises(InterpolationResolutionError, match="NASHEUR_SLURM_CPUS='seven'"):
                _ = cfg.hydra.launcher.cpus_per_task
            return
        assert cfg.hydra.launcher.cpus_per_task == expected
        if value == "null":
            with pytest.raises(InterpolationResolutionError, match="NASHEUR_SLURM_TIME_MIN=null"):
                _ = cfg.hydra.launcher.timeout_min
        else:
            assert cfg.hydra.launcher.timeout_min == (1440 if expected == 4 else expected)


@pytest.mark.parametrize(
    "value, expected",
    [(None, False), ("", False), ("true", True), ("Yes", True), ("1", True), ("off", False)],
)
def test_the_slurm_profile_reads_the_mps_flag(value, expected, monkeypatch):
    with slurm_profile(monkeypatch, value, "MPS") as cfg:
        assert cfg.hydra.launcher.mps is expected


@pytest.mark.parametrize("multirun", [False, True])
def test_hydras_full_error_is_the_commands_only_while_it_composes(tmp_path, multirun):
    # set so that Hydra raises its composition errors to the command; gone once the job runs,
    # so that its errors are reported as Hydra reports them and no job process inherits it
    script = (
        "import os, nasheur.__main__ as m\n"
        "m._run = lambda *a, **k: print('in the job:', os.environ.get('HYDRA_FULL_ERROR'))\n"
        "m.cli()\n"
    )
    args = ["-m", f"hydra.sweep.dir={tmp_path / 's'}"] if multirun else []
    env = {k: v for k, v in run_env(tmp_path).items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [PYTHON, "-c", script, "+preset=debug", f"hydra.run.dir={tmp_path / 'r'}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "in the job: None" in proc.stdout, proc.stderr[-2000:]


def test_the_yes_no_keys_are_the_schemas_booleans():
    from nasheur.config import BOOL_KEYS

    assert {"supernet.wsbn", "protocol.bn_track", "run.bf16", "dataset.augment"} <= BOOL_KEYS
    assert not {"supernet.path_dropout", "seed", "supernet"} & BOOL_KEYS


def test_a_bad_mps_flag_names_the_variable(monkeypatch):
    from omegaconf.errors import InterpolationResolutionError

    with (
        slurm_profile(monkeypatch, "maybe", "MPS") as cfg,
        pytest.raises(
            InterpolationResolutionError, match="NASHEUR_SLURM_MPS='maybe' is not true or false"
        ),
    ):
        _ = cfg.hydra.launcher.mps


@pytest.mark.parametrize(
    "value, expected",
    [(None, None), ("", None), ("null", None), ("proj_7", "proj_7"), ("a,b", "a,b")],
)
def test_the_slurm_profile_reads_site_values_as_text_and_null_as_left_out(
    value, expected, monkeypatch
):
    # `null` in launch/site.env leaves an sbatch option out, for the text options too (a
    # literal "null" would reach sbatch as --account=null); a partition list stays text
    with slurm_profile(monkeypatch, value, "ACCOUNT", "PARTITION") as cfg:
        assert cfg.hydra.launcher.account == expected
        assert cfg.hydra.launcher.partition == ("gpu" if not value else expected)


@pytest.mark.parametrize(
    ("space", "published"),
    [
        ("nb101", "nasbench_only108.tfrecord"),
        ("nb201", "NAS-Bench-201-v1_1-096897.pth"),
        ("darts_nds", "DARTS.json"),
    ],
)
def test_a_missing_ground_truth_names_the_spaces_own_file(space, published, monkeypatch):
    # spec section 6: each benchmark's published file; an NB201 file named for NB101 misleads
    monkeypatch.delenv(f"NASHEUR_GT_{space.upper()}", raising=False)
    with pytest.raises(ConfigError, match=f"ground_truth.path=/data/{published}"):
        validate(compose_config([f"search_space={space}"]))


def test_a_rejected_run_in_a_fresh_folder_leaves_no_runs_folder(tmp_path):
    # the default ./runs is Hydra's doing: a command line refused before the job started
    # leaves neither it nor runs/<space>/ behind; a root the user named stays
    env = {k: v for k, v in run_env(tmp_path).items() if k != "NASHEUR_RUNS"}
    args = [PYTHON, "-m", "nasheur", "search_space=nb101"]  # no ground truth: refused
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "ground_truth.path is not set" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    named = tmp_path / "mine"
    named.mkdir()
    env["NASHEUR_RUNS"] = str(named)
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and named.is_dir() and list(named.iterdir()) == []


def test_a_runs_folder_whose_name_holds_an_interpolation_is_refused_by_name(tmp_path):
    # Hydra reads "${" in each path made from it as an interpolation: its error named neither
    # the variable nor the folder (and a folder of that name was made first)
    env = {**run_env(tmp_path), "NASHEUR_RUNS": str(tmp_path / "a${b}")}
    args = [PYTHON, "-m", "nasheur", "protocol.epochs=1"]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"NASHEUR_RUNS='{tmp_path}/a${{b}}'" in proc.stderr and "'${'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_keys_nothing_reads_are_not_part_of_a_jobs_identity(gt_file):
    # a generated data set reads no folder ($NASHEUR_DATA exported for CIFAR-10 must not move
    # every embedded job to a new folder); recalibration batches count only under recalibrate
    def identity(overrides, gt=None):
        return config_hash(plain(compose_config(overrides, gt) if gt else compose_job(overrides)))

    embedded = identity([])
    assert identity(["dataset.root=/elsewhere"]) == embedded
    assert identity(["eval.recalibrate_batches=3"]) == embedded
    recal = identity(["eval.bn=recalibrate"])
    assert identity(["eval.bn=recalibrate", "eval.recalibrate_batches=3"]) != recal
    # nor where CIFAR-10 lies: data moved (or the folder spelt another way) is the same job
    for root in ("/elsewhere", "/data/", "/data/cifar-10-batches-py"):
        assert identity([f"dataset.root={root}"], gt_file) == identity([], gt_file)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["dataset.num_images=50"], "dataset.num_images=50 applies to generated images"),
        (["fidelity.baseline.batch_size=-1"], "fidelity.baseline.batch_size=-1 is out of range"),
        (["fidelity.baseline.train_portion=2"], "fidelity.baseline.train_portion=2.0 is out"),
        (["fidelity.baseline.layers=0"], "fidelity.baseline.layers=0 is out of range"),
        (["metrics.skdt_threshold=10"], "metrics.skdt_threshold=10.0 is out of range"),
    ],
)
def test_values_that_would_be_ignored_or_meaningless_are_refused(gt_file, overrides, said):
    with pytest.raises(ConfigError, match=re.escape(said)):
        validate(compose_config(overrides, gt_file))


def test_an_embedded_table_must_say_its_space(tmp_path):
    # embedded keys are NB201 cells: a table that does not say its space could be NB201's
    table = tmp_path / "gt.csv"
    rows = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.1\n"
    table.write_text("# unit: fraction\nkey,accuracy\n" + rows)
    with pytest.raises(ConfigError, match="'# space: embedded' line"):
        validate(compose_job([f"ground_truth.path={table}"]))
    table.write_text("# unit: fraction\n# space: embedded\nkey,accuracy\n" + rows)
    validate(compose_job([f"ground_truth.path={table}"]))


@pytest.mark.parametrize("held", [True, False])
def test_a_refused_command_leaves_another_jobs_folder_and_record_alone(tmp_path, held):
    # a running job's folder looks like a never-started one while the job loads its data
    # (held); a finished job's holds its results (not held): a refused command line removes
    # neither and puts the owner's Hydra record back
    from nasheur.jobguard import hold_folder

    folder = tmp_path / "job"
    record = folder / ".hydra"
    (record / "claimed").mkdir(parents=True)
    for name in ("config.yaml", "overrides.yaml"):
        for where in (record, record / "claimed"):
            (where / name).write_text(f"owner's {name}\n")
    (folder / "nasheur.log").write_text("loading\n")
    if not held:
        (folder / "metrics.json").write_text("{}")
    args = ["fidelity.train_portion=1.5", f"hydra.run.dir={folder}"]
    with hold_folder(folder) if held else contextlib.nullcontext():
        proc = nasheur_cli(args, tmp_path)
    assert proc.returncode == 2 and "fidelity.train_portion" in proc.stderr
    assert (folder / "nasheur.log").read_text() == "loading\n"
    for name in ("config.yaml", "overrides.yaml"):
        assert (record / name).read_text() == f"owner's {name}\n"


def test_a_refused_command_leaves_a_folder_the_user_named_in_place(tmp_path):
    # hydra.run.dir naming a folder the user made (the working folder, even): only what the
    # refused command wrote there goes, not the folder
    mine = tmp_path / "mine"
    mine.mkdir()
    proc = nasheur_cli(["fidelity.train_portion=2", f"hydra.run.dir={mine}"], tmp_path)
    assert proc.returncode == 2 and "fidelity.train_portion" in proc.stderr
    assert mine.is_dir() and list(mine.iterdir()) == []


def test_a_share_of_a_generated_set_without_an_image_is_refused_before_the_job():
    with pytest.raises(ConfigError, match=r"fidelity\.train_portion=0\.01 is out of range"):
        validate(
            compose_job(
                ["dataset=synthetic", "dataset.num_images=10", "fidelity.train_portion=0.01"]
            )
        )


def test_a_ground_truth_file_is_named_where_it_was_given(tmp_path, monkeypatch, gt_file):
    # from the environment: the message names the variable, not a key the user never set
    monkeypatch.setenv("NASHEUR_GT_NB201", str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match=r"^\$NASHEUR_GT_NB201=.*missing.pth: no such file"):
        validate(compose_config([]))
    # a path under the home folder, as a shell would have expanded it
    monkeypatch.setenv("HOME", str(gt_file.parent))
    validate(compose_config([f"ground_truth.path='~/{gt_file.name}'"]))


def test_a_ground_truth_path_is_one_identity_however_it_is_spelt(gt_file, monkeypatch):
    # a relative path names the file it reaches from where the job starts: not one job for
    # every folder's gt.csv; ./ and // spell the same file as the plain path
    def identity(path):
        return config_hash(plain(compose_config([f"ground_truth.path='{path}'"])))

    folder = gt_file.parent
    monkeypatch.chdir(folder)
    here = identity(gt_file.name)
    assert here == identity(f"./{gt_file.name}") == identity(str(gt_file))
    assert identity(str(folder) + "//" + gt_file.name) == here
    other = folder / "elsewhere"
    other.mkdir()
    (other / gt_file.name).write_text(gt_file.read_text())
    monkeypatch.chdir(other)
    assert identity(gt_file.name) != here


@pytest.mark.parametrize("space", ["embedded", "nb201"])
def test_the_image_sides_a_space_accepts_are_those_its_network_takes(space, gt_file):
    # two reductions, each a stride-2 conv beside a 2x2 average pool: an odd side at either
    # gives outputs a pixel apart, found only in the first forward of a queued job
    import numpy as np
    import torch

    from nasheur.spaces import get_space
    from nasheur.supernet import build_supernet, spec_from_config

    base = [f"search_space={space}", "dataset=synthetic", "fidelity.channels=2"]
    gt = gt_file if space == "nb201" else None
    net = build_supernet(space, spec_from_config(compose_config(base, gt), num_classes=10))
    path = get_space(space).sample(np.random.default_rng(0))
    for side in range(8, 17):
        config = compose_config([*base, f"dataset.image_size={side}"], gt)
        x = torch.zeros(2, 3, side, side)
        if side % 4:
            with pytest.raises(ConfigError, match=f"dataset.image_size={side} is not supported"):
                validate(config)
            with pytest.raises(RuntimeError, match="size of tensor"):
                net.eval()(x, path)
        else:
            validate(config)
            assert net.eval()(x, path).shape == (2, 10)


def test_the_stop_line_names_a_checkpoint_only_where_one_exists(tmp_path):
    from nasheur.__main__ import _resumes

    assert "before its first checkpoint" in _resumes(tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert _resumes(tmp_path) == f"resumes from the last checkpoint in {tmp_path}"


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_site_variable_takes_the_default_folder(value, monkeypatch):
    # `NASHEUR_RUNS=` (site.env's empty line, sourced by hand) must not put runs under /
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers

    monkeypatch.setenv("NASHEUR_RUNS", value)
    monkeypatch.setenv("NASHEUR_DATA", value)
    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = compose("config", overrides=["dataset=cifar10"], return_hydra_config=True)
        assert str(cfg.hydra.run.dir).startswith("runs/embedded/")
        assert str(cfg.hydra.sweep.dir) == "runs/sweeps/multirun"
        assert cfg.dataset.root == "data"
    assert compose_job(["dataset=cifar10"]).dataset.root == "data"


def test_hydras_own_node_prints_resolved(tmp_path):
    # `--cfg hydra` shows Hydra's node without the job's keys that the folders are made of
    proc = subprocess.run(
        [PYTHON, "-m", "nasheur", "--cfg", "hydra", "--resolve", "hydra/launcher=slurm"],
        cwd=REPO,
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    shown = " ".join(proc.stdout.split())  # YAML folds long lines
    assert "sweeps/<experiment name>" in shown and "partition:" in shown


# --- range edges and derived values (mutation audit) ------------------------------------------


@pytest.fixture
def nb201_cfg(gt_file):
    """One composed NB201 job (Table 14's settings, a CSV table): the tests below change
    attributes of a copy instead of composing a config each (Hydra takes a second each)."""
    cfg = compose_config([], gt_file)
    validate(cfg)
    return cfg


def _with(cfg, **changes):
    """A copy of `cfg` with its keys set, each written with ``__`` for its dots."""
    from tests.test_config_rules import changed

    return changed(cfg, {key.replace("__", "."): value for key, value in changes.items()})


@pytest.mark.parametrize(
    "changes",
    [
        {"fidelity__train_portion": 1.0},  # the whole training set (overlapping validation)
        {"eval__pool_size": 3, "metrics__top_n": 3},  # pool_size >= max(2, top_n): equal
        {"eval__pool_size": 2, "metrics__top_n": 1},
        {"protocol__lr_min": 0.025},  # lr_min <= lr: a constant schedule
        {"protocol__weight_decay": 0.0},
        {"protocol__momentum": 0.0},
        {"supernet__path_dropout": 0.0, "supernet__global_dropout": 0.0},
        {"run__max_steps_per_epoch": 1, "run__log_every": 0, "run__checkpoint_every_s": 0.0},
        {"run__checkpoint_every_s": math.inf},  # after the last epoch only
        {"eval__recalibrate_batches": 1},
        {"fidelity__batch_size": 5000},  # the validation share holds exactly one batch
    ],
)
def test_the_edges_of_each_documented_range_are_accepted(nb201_cfg, changes):
    """Each key's own edge value is allowed (the ranges in validate's messages: ``0 < value
    <= 1``, ``>= max(2, metrics.top_n)``, ``0 <= value <= protocol.lr``, ``>= 0``,
    ``>= 1``, a batch no larger than the 5,000 CIFAR-10 validation images)."""
    validate(_with(nb201_cfg, **changes))


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"protocol__momentum": 1.0}, "protocol.momentum"),  # never forgets: no SGD
        ({"metrics__skdt_threshold": 1.0}, "metrics.skdt_threshold"),  # one bin holds all
        ({"protocol__lr_min": 0.03}, "protocol.lr_min"),  # above lr: a rising "decay"
        ({"protocol__lr_min": -0.001}, "protocol.lr_min"),
        ({"protocol__lr": math.inf}, "protocol.lr"),
        ({"protocol__lr": math.nan}, "protocol.lr"),
        ({"protocol__grad_clip": math.inf}, "protocol.grad_clip"),  # no clipping at all
        ({"protocol__weight_decay": math.nan}, "protocol.weight_decay"),
        ({"run__max_steps_per_epoch": 0}, "run.max_steps_per_epoch"),  # epochs of no step
        ({"eval__recalibrate_batches": 0}, "eval.recalibrate_batches"),  # BN left reset
        ({"metrics__top_n": 0}, "metrics.top_n"),
        ({"fidelity__batch_size": 5001}, "fidelity.batch_size"),  # above the 5,000 val images
        ({"run__log_every": -1}, "run.log_every"),
        ({"run__checkpoint_every_s": -1.0}, "run.checkpoint_every_s"),
        ({"run__checkpoint_every_s": math.nan}, "run.checkpoint_every_s"),
    ],
)
def test_just_past_each_edge_is_refused_naming_the_key(nb201_cfg, changes, key):
    """The first value past an edge is refused before any data is read, naming its key."""
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate(_with(nb201_cfg, **changes))


def test_procedural_data_takes_up_to_its_ten_textures(nb201_cfg):
    """dataset=procedural has 10 textures, one class each: 10 classes are allowed, 11 not."""
    from nasheur.config import DatasetName

    procedural = _with(nb201_cfg, dataset__name=DatasetName.procedural)
    validate(_with(procedural, dataset__num_classes=10))
    with pytest.raises(ConfigError, match=r"dataset\.num_classes"):
        validate(_with(procedural, dataset__num_classes=11))


def test_split_sizes_round_and_never_overlap_shares_that_fit():
    """README 'Validation share': the last round(val_portion * N) images validate, the first
    train_portion of the same permutation train, and shares whose portions add up to at most
    1 never share an image. Hand count for 15 images at 0.9 / 0.1: round(1.5) = 2 validate,
    round(13.5) = 14 would reach into them, so 13 train; 5 images at 0.7 / 0.3 (which add up
    to exactly 1.0): 2 validate, 3 train."""
    from nasheur.config import split_sizes

    assert split_sizes(15, 0.9, 0.1) == (13, 2)
    assert 0.7 + 0.3 == 1.0 and split_sizes(5, 0.7, 0.3) == (3, 2)
    for n in range(10, 80):
        for t, v in ((0.7, 0.3), (0.5, 0.5), (0.25, 0.75), (0.9, 0.1), (0.45, 0.15)):
            n_train, n_val = split_sizes(n, t, v)
            assert n_train + n_val <= n and n_val == round(v * n)
    # portions above 1 overlap on purpose (the paper's validation on training images)
    assert split_sizes(10, 1.0, 0.2) == (10, 2)


def test_wsbn_is_inert_only_where_the_docstring_reasons_it():
    """WSBN (one BN per input of a shared op) changes nothing with ops on edges (one input
    each), or without affine parameters where evaluation reads no statistics (batch mode);
    with affine parameters, or with statistics that running/recalibrate read, it can."""
    from nasheur.config import wsbn_inert

    assert wsbn_inert("edge", True, "running") is not None
    assert wsbn_inert("node", False, "batch") is not None
    assert wsbn_inert("node", True, "batch") is None
    assert wsbn_inert("node", False, "running") is None
    assert wsbn_inert("node", False, "recalibrate") is None


def test_a_jobs_identity_is_the_sha256_of_its_config_without_the_excluded_keys(nb201_cfg):
    """The folder hash stays what earlier runs were filed under: the first 12 hex digits of
    the sha256 of the resolved config as compact, key-sorted JSON, without the keys the README
    names as no part of it (device, speed options, where the data lies, the experiment, the
    cache folder) and those nothing reads here (generated-image sizes on CIFAR-10,
    recalibration batches outside recalibrate, random_subspace at its default). Derived here
    from that description, not from config_hash."""
    import hashlib

    data = plain(nb201_cfg)
    expected = json.loads(json.dumps(data))
    for dotted in (
        "device",
        "dataset.root",
        "run.log_every",
        "run.checkpoint_every_s",
        "run.eval_graphs",
        "run.eval_streams",
        "run.eval_pack",
        "run.channels_last",
        "experiment",
        "ground_truth.cache_dir",
        "dataset.num_images",
        "dataset.image_size",
        "dataset.num_classes",
        "eval.recalibrate_batches",
        "supernet.random_subspace",
    ):
        *parents, last = dotted.split(".")
        node = expected
        for p in parents:
            node = node[p]
        del node[last]
    text = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert config_hash(data) == hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.parametrize("site_setup", [None, ["set -u", "module load cuda/12.4"]])
def test_the_slurm_launcher_hands_srun_the_cpus_per_task(site_setup, monkeypatch, tmp_path):
    # SLURM 22.05 stopped srun from inheriting sbatch's --cpus-per-task: under CPU binding a
    # job would get one CPU. The launcher's first setup line, in the sbatch script before
    # srun, exports SRUN_CPUS_PER_TASK from the job's count and does nothing where it has
    # none; a site's own lines (launch/README.md: 'hydra.launcher.setup=[...]') come after
    # it, a `set -u` of theirs included
    import os
    import subprocess

    from hydra.utils import instantiate
    from submitit.slurm.slurm import _make_sbatch_string

    from hydra_plugins.nasheur_ablation.packed_launcher import SRUN_CPUS_SETUP

    with slurm_profile(monkeypatch, "6", "CPUS") as cfg:
        if site_setup is not None:
            cfg.hydra.launcher.setup = site_setup
        launcher = instantiate(cfg.hydra.launcher)
    setup = launcher.params["setup"]
    assert setup == [SRUN_CPUS_SETUP, *(site_setup or [])]
    script = _make_sbatch_string(
        command="echo SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-unset}",
        folder=tmp_path,
        cpus_per_task=launcher.params["cpus_per_task"],
        setup=[line for line in setup if not line.startswith("module ")],  # no modules here
        use_srun=False,
    )
    assert "#SBATCH --cpus-per-task=6" in script
    for cpus, said in (("6", "SRUN_CPUS_PER_TASK=6"), (None, "SRUN_CPUS_PER_TASK=unset")):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SRUN_"))}
        env.update({"SLURM_CPUS_PER_TASK": cpus} if cpus else {})
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert done.returncode == 0 and said in done.stdout, done.stderr


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("eval.seed", "; did you mean seed?"),  # a top-level key under a section
        ("run.epochs", "; did you mean protocol.epochs?"),
        ("supernet.wsbm", "; did you mean supernet.wsbn?"),
        ("expriment", "; did you mean experiment?"),
        ("sampler", ""),  # never the name typed
        ("zzzz.qqqq", ""),
        ("protocol.foo", ""),  # a key under a group: the group itself is no suggestion
        # Hydra's own keys: a leaf close to one of nasheur's is no suggestion
        ("hydra.job.nme", ""),
        ("hydra.launcher.sed", ""),
    ],
)
def test_did_you_mean_names_the_closest_known_key_or_group(key, said):
    from nasheur.config import did_you_mean

    assert did_you_mean([key]) == said


def test_a_key_set_that_nothing_reads_is_said(gt_file, caplog):
    from nasheur.__main__ import _warn_unread

    cfg = compose_config(["dataset=synthetic", "dataset.root=/x", "eval.bn=batch"], gt_file)
    overrides = ["dataset=synthetic", "+dataset.root=/x", "eval.recalibrate_batches=3", "seed=2"]
    with caplog.at_level("WARNING", logger="nasheur"):
        _warn_unread(overrides, cfg)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "+dataset.root=/x is not read: dataset=synthetic generates its images; only cifar10 "
        "reads a folder",
        "eval.recalibrate_batches=3 is not read: eval.bn=batch: only eval.bn=recalibrate reads it",
    ]
    caplog.clear()
    cifar = compose_config(["dataset=cifar10", "eval.bn=recalibrate"], gt_file)
    with caplog.at_level("WARNING", logger="nasheur"):
        _warn_unread(
            ["dataset.root=/x", "eval.recalibrate_batches=3", "dataset.image_size=8"], cifar
        )
    assert [r.getMessage().split(" is not read")[0] for r in caplog.records] == [
        "dataset.image_size=8"
    ]
