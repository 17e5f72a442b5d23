"""Every experiment of the paper composes, and its sweep has the jobs the paper's tables need:
their number (settings x spaces x 3 seeds, worked out from the paper here, not by the code)
and the overrides of each."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from nasheur.config import register_configs, register_resolvers
from nasheur.sweep.plan import expand
from tests.conftest import REPO

register_configs()
register_resolvers()

ALL = ("nb101", "nb201", "darts_nds")
# experiment -> (settings per space, the spaces): from Tables 4, 5-7, 9-14 and spec section 2
EXPECTED: dict[str, tuple[dict[str, int], tuple[str, ...]]] = {
    "bn_ablation": ({s: 4 for s in ALL}, ALL),
    "lr_ablation": ({s: 7 for s in ALL}, ALL),
    "epochs_ablation": ({"nb101": 7, "nb201": 11, "darts_nds": 7}, ALL),
    "wd_ablation": ({"nb101": 5, "nb201": 5, "darts_nds": 4}, ALL),
    "sampler_ablation": ({"nb101": 3, "nb201": 3}, ("nb101", "nb201")),
    "layers_ablation": ({s: 3 for s in ALL}, ALL),
    "portion_ablation": ({s: 4 for s in ALL}, ALL),
    "batch_size_ablation": ({s: 3 for s in ALL}, ALL),
    "channels_ablation": ({s: 3 for s in ALL}, ALL),
    "ofa_ablation": ({s: 2 for s in ALL}, ALL),
    "wsbn_ablation": ({s: 2 for s in ALL}, ALL),
    "path_dropout_ablation": ({s: 4 for s in ALL}, ALL),
    "global_dropout_ablation": ({s: 2 for s in ALL}, ALL),
    "ops_on_ablation": ({"nb201": 2, "darts_nds": 2}, ("nb201", "darts_nds")),
    "low_fidelity_budget": ({"nb201": 12}, ("nb201",)),
    # Table 5: 3 strategies + 4 sub-spaces; Table 7: 4 size-matched random subsets (which
    # Table 6 also tests on their sub-space, in the same jobs)
    "dynamic_channels_ablation": ({"nb101": 3 + 4 + 4}, ("nb101",)),
    "best": ({s: 1 for s in ALL}, ALL),
    "final_search": ({s: 2 for s in ALL}, ALL),
}
# baselines of Table 14: (layers, channels, batch size)
BASE = {"nb101": (3, 128, 256), "nb201": (5, 16, 128), "darts_nds": (12, 36, 256)}


def compose_experiment(name: str, extra: list[str] | None = None):
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        return compose(
            config_name="config",
            overrides=[f"+experiment={name}", *(extra or [])],
            return_hydra_config=True,
        )


def baselines(spaces) -> dict:
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        return {
            s: OmegaConf.to_container(
                compose(config_name="config", overrides=[f"search_space={s}"]).fidelity.baseline
            )
            for s in spaces
        }


def plan(name: str) -> list[list[str]]:
    cfg = compose_experiment(name)
    sw = cfg.hydra.sweeper
    assert sw._target_.endswith("AblationSweeper")
    spaces = list(sw.spaces)
    return expand(spaces, list(sw.seeds), OmegaConf.to_container(sw.blocks), baselines(spaces))


def test_every_experiment_file_is_tested():
    files = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sweep_size_and_overrides(name):
    per_space, spaces = EXPECTED[name]
    jobs = plan(name)
    counts = Counter(
        next(i.split("=")[1] for i in job if i.startswith("search_space=")) for job in jobs
    )
    assert dict(counts) == {s: 3 * per_space[s] for s in spaces}
    for job in jobs:
        assert job[0].startswith("search_space=") and any(i.startswith("seed=") for i in job)
    seeds = Counter(next(i for i in job if i.startswith("seed=")) for job in jobs)
    assert set(seeds) == {"seed=0", "seed=1", "seed=2"} and len(set(seeds.values())) == 1
    cfg = compose_experiment(name)
    assert cfg.experiment.name == name and cfg.experiment.table
    # each table it names shows it (the sweep's closing lines print one command per table)
    from nasheur.results.tables import TABLES

    for table in cfg.experiment.table.split(","):
        assert name in [n for n, _ in TABLES[table]], (name, table)


def test_the_final_search_keeps_100_architectures_on_nb201_only():
    # Table 10's note: on NAS-Bench-201 the search samples 100 final architectures
    for job in plan("final_search"):
        pool = [i for i in job if i.startswith("eval.pool_size=")]
        assert pool == (["eval.pool_size=100"] if job[0] == "search_space=nb201" else [])


def test_relative_fidelity_values_follow_each_space():
    jobs = plan("layers_ablation")
    layers = {(j[0], j[1]) for j in jobs}
    for space, (n, _, _) in BASE.items():
        assert {v for s, v in layers if s == f"search_space={space}"} == {
            f"fidelity.layers={n - k}" for k in range(3)
        }
    batches = {(j[0], j[1]) for j in plan("batch_size_ablation")}
    for space, (_, _, b) in BASE.items():
        assert {v for s, v in batches if s == f"search_space={space}"} == {
            f"fidelity.batch_size={b // k}" for k in (1, 2, 4)
        }


def test_table_4_takes_the_paper_s_nb201_channels_and_halves_another_space_s():
    nb201 = {o for j in plan("low_fidelity_budget") for o in j if o.startswith("fidelity.ch")}
    assert nb201 == {"fidelity.channels=16", "fidelity.channels=8", "fidelity.channels=4"}
    sw = compose_experiment("low_fidelity_budget").hydra.sweeper
    blocks = OmegaConf.to_container(sw.blocks)
    family = {"embedded": "nb201"}
    embedded = expand(["embedded"], ["0"], blocks, baselines(["embedded"]), paper_space=family)
    assert {o for j in embedded for o in j if o.startswith("fidelity.ch")} == {
        "fidelity.channels=8",  # the embedded baseline's 8, not twice it
        "fidelity.channels=4",
        "fidelity.channels=2",
    }


def test_command_line_restricts_spaces_and_seeds_and_adds_its_own_overrides():
    sw = compose_experiment("bn_ablation").hydra.sweeper
    jobs = expand(
        ["nb201"],
        ["0"],
        OmegaConf.to_container(sw.blocks),
        baselines(["nb201"]),
        [["protocol.epochs=2"]],
    )
    assert len(jobs) == 4 and all(j[-1] == "protocol.epochs=2" and "seed=0" in j for j in jobs)


def test_the_embedded_space_takes_the_blocks_of_nb201():
    from nasheur.spaces import space_info

    sw = compose_experiment("epochs_ablation").hydra.sweeper
    blocks = OmegaConf.to_container(sw.blocks)
    family = {"embedded": space_info("embedded").paper_space}
    jobs = expand(["embedded"], ["0"], blocks, baselines(["embedded"]), paper_space=family)
    assert len(jobs) == EXPECTED["epochs_ablation"][0]["nb201"]  # 11, with nb201's extra block
    assert len(expand(["embedded"], ["0"], blocks, baselines(["embedded"]))) == 7
    layers = plan_for("layers_ablation", ["embedded"])
    assert {j[1] for j in layers} == {"fidelity.layers=3", "fidelity.layers=2", "fidelity.layers=1"}


def plan_for(name: str, spaces: list[str]) -> list[list[str]]:
    sw = compose_experiment(name).hydra.sweeper
    return expand(spaces, list(sw.seeds), OmegaConf.to_container(sw.blocks), baselines(spaces))


def _sweeper(name: str, extra: list[str] | None = None):
    from hydra_plugins.nasheur_ablation.ablation_sweeper import AblationSweeper

    cfg = compose_experiment(name, extra)
    sw = cfg.hydra.sweeper
    sweeper = AblationSweeper(list(sw.spaces), list(sw.seeds), OmegaConf.to_container(sw.blocks))
    sweeper.config = cfg
    return sweeper


def test_a_sweep_without_any_ground_truth_runs_on_the_embedded_default(
    tmp_path: Path, monkeypatch, caplog
):
    from hydra.errors import HydraException

    with caplog.at_level("WARNING"):
        assert _sweeper("bn_ablation")._spaces_with_ground_truth() == ["embedded"]
    assert "NASHEUR_GT_NB101" in caplog.text and "search_space=embedded" in caplog.text
    with pytest.raises(HydraException, match="NASHEUR_GT_NB101"):  # NB101 only: no stand-in
        _sweeper("dynamic_channels_ablation")._spaces_with_ground_truth()
    gt = tmp_path / "gt.csv"
    gt.write_text("x")
    for space in ("nb101", "nb201"):
        monkeypatch.setenv(f"NASHEUR_GT_{space.upper()}", str(gt))
    # some spaces have GT and one has not: a forgotten variable stops the sweep, named
    with pytest.raises(HydraException, match="NASHEUR_GT_DARTS_NDS"):
        _sweeper("bn_ablation")._spaces_with_ground_truth()
    assert _sweeper("sampler_ablation")._spaces_with_ground_truth() == ["nb101", "nb201"]
    monkeypatch.setenv("NASHEUR_GT_DARTS_NDS", str(gt))
    assert _sweeper("bn_ablation")._spaces_with_ground_truth() == list(ALL)
    monkeypatch.delenv("NASHEUR_GT_NB101")
    explicit = _sweeper("bn_ablation", [f"ground_truth.path={gt}"])
    assert explicit._spaces_with_ground_truth() == list(ALL)  # validation checks the file


def test_experiment_configs_validate_for_every_space(tmp_path: Path):
    from nasheur.config import to_config, validate

    gt = tmp_path / "gt.csv"
    gt.write_text("# unit: fraction\nkey,accuracy\nx,0.5\n")
    for name in sorted(EXPECTED):
        for job in plan(name)[:: max(1, len(plan(name)) // 6)]:
            cfg = compose_experiment(name, [*job, f"ground_truth.path={gt}"])
            OmegaConf.set_struct(cfg, False)
            cfg.pop("hydra")
            validate(to_config(cfg))


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"dynamic_channels_ablation"}))
def test_every_experiment_runs_on_the_embedded_benchmark(name):
    """`+experiment=<name> search_space=embedded` (or no GT at all): every job validates.
    (Dynamic channels is NB101's alone: on embedded the sweep stops, naming the key.)"""
    from nasheur.config import to_config, validate
    from nasheur.spaces import space_info

    sw = compose_experiment(name).hydra.sweeper
    family = {"embedded": space_info("embedded").paper_space}
    blocks = OmegaConf.to_container(sw.blocks)
    jobs = expand(["embedded"], ["0"], blocks, baselines(["embedded"]), paper_space=family)
    assert jobs
    for job in jobs[:: max(1, len(jobs) // 4)]:
        cfg = compose_experiment(name, job)
        OmegaConf.set_struct(cfg, False)
        cfg.pop("hydra")
        validate(to_config(cfg))


FAKE_PYTHON = """#!/usr/bin/env bash
# stands for python: notes its arguments; the experiment named in FAIL fails
echo "$*" >> "$CALLS"
[[ " $* " == *" +experiment=$FAIL "* ]] && exit 3
exit 0
"""


@pytest.mark.parametrize(
    "table, blocks, launcher",
    [("3", ("11", "12", "13"), "local"), ("11", ("11",), "slurm"), ("13", ("13",), "local")],
)
def test_each_tables_make_target_sweeps_its_experiments(tmp_path, table, blocks, launcher):
    import os
    import subprocess

    from nasheur.results.tables import TABLES

    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    names = [name for t in blocks for name, _ in TABLES[t]]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NASHEUR_")},
        "CALLS": str(tmp_path / "calls"),
        "FAIL": names[0],  # the first fails: the others still run
        "NASHEUR_RUNS": str(tmp_path / "runs"),
        "NASHEUR_SITE_ENV": str(tmp_path / "site.env"),
    }
    (tmp_path / "site.env").write_text("")
    proc = subprocess.run(
        ["make", "-s", f"sweep-{table}", f"PYTHON={fake}", f"LAUNCHER={launcher}", "ARGS=seed=0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert sorted(calls) == sorted(
        f"-m nasheur +experiment={n} hydra/launcher={launcher} seed=0 -m" for n in names
    )
    assert f"sweep {names[0]}: failed (exit status 3)" in proc.stderr
    assert f"sweep {names[-1]}: done" in proc.stdout
    if launcher != "local":  # started at once, each sweep's output in its own log
        assert (tmp_path / "runs" / "sweeps" / f"{names[0]}.launch.log").is_file()


def test_the_tables_targets_read_the_runs_folder_of_site_env(tmp_path):
    import os
    import subprocess

    (tmp_path / "site.env").write_text(f"NASHEUR_RUNS={tmp_path / 'site-runs'}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NASHEUR_")},
        "NASHEUR_SITE_ENV": str(tmp_path / "site.env"),
    }
    proc = subprocess.run(
        ["make", "-n", "table-11", "figures"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp_path / "site-runs"
    assert f'table "{runs}/sweeps" --table 11' in proc.stdout
    assert f'figures "{runs}" --out' in proc.stdout


def test_the_tables_targets_take_folders_with_spaces(tmp_path):
    # `make sweep-11 RUNS="/data/my runs"` quotes the folder: the targets that read it too
    import os
    import subprocess

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@" >> "$CALLS"; echo >> "$CALLS"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASHEUR_")}
    env.update(CALLS=str(tmp_path / "calls"), NASHEUR_SITE_ENV="")
    runs, out = tmp_path / "my runs", tmp_path / "my tables"
    folders = [f"RUNS={runs}", f"TABLES={out}", f"FIGURES={out}"]
    proc = subprocess.run(
        ["make", "-s", "table-11", "figures", f"PYTHON={fake}", *folders],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"-m|nasheur.results|table|{runs}/sweeps|--table|11|--out|{out}|",
        f"-m|nasheur.results|figures|{runs}|--out|{out}|",
    ]


def test_a_file_named_like_a_pattern_target_does_not_stop_it(tmp_path):
    # sweep-% and table-% are pattern rules, which .PHONY cannot cover: a file `table-11` in
    # the folder make runs in would make the target "up to date" and do nothing
    import os
    import subprocess

    for name in ("table-11", "sweep-11"):
        (tmp_path / name).write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASHEUR_")}
    env["NASHEUR_SITE_ENV"] = ""
    for target, says in (("table-11", "--table 11"), ("sweep-11", "sweep_experiments.sh")):
        proc = subprocess.run(
            ["make", "-n", "-f", str(REPO / "Makefile"), target],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and says in proc.stdout, (proc.stdout, proc.stderr)


def test_make_tables_writes_every_table_it_can_and_fails_on_errors_only(tmp_path):
    # status 1 of `results table` (no runs of the table yet) is a skip; another status fails
    # the target, after every table was tried
    import os
    import subprocess

    from nasheur.results.tables import TABLES

    fake = tmp_path / "python"
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\n'
        'case "$*" in *"--table 4 "*) echo "nothing to merge (no runs)" >&2; exit 1;;\n'
        '*"--table 9 "*) exit "$NINE";; esac\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "CALLS": str(tmp_path / "calls")}

    def tables(nine: int) -> subprocess.CompletedProcess:
        (tmp_path / "calls").unlink(missing_ok=True)
        return subprocess.run(
            ["make", "-s", "tables", f"PYTHON={fake}", "SWEEPS=sw", "TABLES=out"],
            cwd=REPO,
            env={**env, "NINE": str(nine)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    every = ["3", *TABLES]  # Table 3 merges the runs of Tables 11 to 13
    proc = tables(0)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert sorted(calls) == sorted(
        f"-m nasheur.results table sw --table {t} --out out" for t in every
    )
    assert "table 4: skipped" in proc.stdout
    assert f"{len(every) - 1} of {len(every)} tables written to out/" in proc.stdout
    proc = tables(2)
    assert proc.returncode != 0
    assert len((tmp_path / "calls").read_text().splitlines()) == len(every)
    # a crash (a traceback, a module that cannot be imported) exits with status 1 too, without
    # "nothing to merge": a failure, not a table without runs
    proc = tables(1)
    assert proc.returncode != 0 and "table 9: skipped" not in proc.stdout
    assert "table 4: skipped" in proc.stdout


def test_table_4_runs_at_twice_each_spaces_batch_size():
    # paper Table 4: NB201 at batch 256 (twice Table 14's 128), halved twice in its batch block;
    # the embedded fallback at twice its own 32, not at NB201's 256 (8 steps per epoch)
    def batches(jobs):
        return Counter(o for j in jobs for o in j if o.startswith("fidelity.batch_size"))

    assert batches(plan("low_fidelity_budget")) == {
        "fidelity.batch_size=256": 3 * 10,  # the reference and the 9 other reductions, 3 seeds
        "fidelity.batch_size=128": 3,
        "fidelity.batch_size=64": 3,
    }
    sw = compose_experiment("low_fidelity_budget").hydra.sweeper
    blocks = OmegaConf.to_container(sw.blocks)
    embedded = expand(
        ["embedded"], ["0"], blocks, baselines(["embedded"]), paper_space={"embedded": "nb201"}
    )
    assert batches(embedded) == {
        "fidelity.batch_size=64": 10,
        "fidelity.batch_size=32": 1,
        "fidelity.batch_size=16": 1,
    }


# Paper Table 14 (spec section 2), written out here: (dynamic channels, OFA, WSBN, path and
# global dropout, ops on, layers, portion, batch, channels, BN track, BN affine, lr, epochs, wd)
TABLE_14 = {
    "nb101": ("interpolate", False, False, 0, 0, "node", 3, 0.75, 256, 128, False, True, 0.025, 400, 1e-3),
    "nb201": ("fixed", False, False, 0, 0, "edge", 5, 0.9, 128, 16, False, True, 0.025, 1000, 3e-3),
    "darts_nds": ("fixed", False, True, 0, 0, "edge", 12, 0.9, 256, 36, False, False, 0.025, 400, 0.0),
}  # fmt: skip


@pytest.mark.parametrize("space", ALL)
def test_each_space_defaults_to_its_table_14_row_and_best_adds_fairnas(space):
    from tests.conftest import compose_job

    cfg = compose_job([f"search_space={space}"])
    s, f, p = cfg.supernet, cfg.fidelity, cfg.protocol
    row = (s.dynamic_channels.value, s.ofa_kernel, s.wsbn, s.path_dropout, s.global_dropout)
    row += (s.ops_on.value, f.layers, f.train_portion, f.batch_size, f.channels)
    row += (p.bn_track, p.bn_affine, p.lr, p.epochs, p.weight_decay)
    assert row == TABLE_14[space]
    # the ablations' baseline is Random-NAS; Table 14's sampler is +experiment=best's
    assert cfg.sampler.name.value == "random_nas"
    assert {tuple(j) for j in plan_for("best", [space])} == {
        (f"search_space={space}", "sampler=fairnas", f"seed={k}") for k in range(3)
    }


def every(spaces: tuple[str, ...], values: tuple) -> dict[str, tuple]:
    return {s: values for s in spaces}


EPOCHS = (100, 200, 300, 400, 600, 800, 1000)
WD = (0, 1e-4, 3e-4, 5e-4)
# Spec section 2 (Tables 11-13): the values each one-factor ablation sweeps, per space
SETTINGS: dict[str, tuple[str, dict[str, tuple]]] = {
    "lr_ablation": ("protocol.lr", every(ALL, (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2))),
    "epochs_ablation": (
        "protocol.epochs",
        {"nb101": EPOCHS, "nb201": (*EPOCHS, 1200, 1400, 1600, 1800), "darts_nds": EPOCHS},
    ),
    # with each space's best value where it is not among the four
    "wd_ablation": (
        "protocol.weight_decay",
        {"nb101": (*WD, 1e-3), "nb201": (*WD, 3e-3), "darts_nds": WD},
    ),
    "portion_ablation": ("fidelity.train_portion", every(ALL, (0.25, 0.5, 0.75, 0.9))),
    "path_dropout_ablation": ("supernet.path_dropout", every(ALL, (0, 0.05, 0.15, 0.2))),
    "global_dropout_ablation": ("supernet.global_dropout", every(ALL, (0, 0.2))),
    "ofa_ablation": ("supernet.ofa_kernel", every(ALL, (False, True))),
    "wsbn_ablation": ("supernet.wsbn", every(ALL, (False, True))),
    "ops_on_ablation": ("supernet.ops_on", every(("nb201", "darts_nds"), ("edge", "node"))),
    "sampler_ablation": (
        "sampler",
        every(("nb101", "nb201"), ("random_nas", "random_a", "fairnas")),
    ),
    "channels_ablation": (
        "fidelity.channels",
        {s: (c, c // 2, c // 4) for s, (_, c, _) in BASE.items()},
    ),
}


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_ablation_sweeps_the_papers_values(name):
    key, per_space = SETTINGS[name]
    swept: dict[str, set] = {}
    for job in plan(name):
        space = job[0].removeprefix("search_space=")
        values = [_value(o.split("=", 1)[1]) for o in job if o.split("=", 1)[0] == key]
        assert len(values) == 1, job
        swept.setdefault(space, set()).add(values[0])
    assert swept == {s: set(v) for s, v in per_space.items()}


def test_the_bn_ablation_crosses_tracking_and_affine_in_every_space():
    pairs: dict[str, set] = {}
    for job in plan("bn_ablation"):
        o = dict(i.split("=", 1) for i in job)
        pairs.setdefault(o["search_space"], set()).add(
            (o["protocol.bn_track"], o["protocol.bn_affine"])
        )
    both = {(t, a) for t in ("true", "false") for a in ("true", "false")}
    assert pairs == dict.fromkeys(ALL, both)
