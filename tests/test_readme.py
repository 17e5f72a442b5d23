"""The README's quick start, command by command, so that it cannot rot.

Every command of its ``bash`` blocks runs here in order, in a fresh folder, as a newcomer would
type it: the local ones in the slow suite, the SLURM ones in the SLURM suite, and the two
``make`` lines in CI (``.ci/run``). ``export`` lines set the variables to the test's own small
files (a fake CIFAR-10 release and an NB201 table), since the README's paths are examples.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_env, write_fake_cifar, write_nb201_gt
from tests.test_slurm import TEST_PROFILE, cluster, job_ids  # noqa: F401 (cluster: a fixture)

CI_ONLY = ("make install", "make test")


def quick_start() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Quick start")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def commands() -> list[str]:
    """The commands of the quick start's bash blocks: continuations joined, comments cut."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", quick_start(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def is_slurm(command: str) -> bool:
    return "hydra/launcher=slurm" in command or "site.env" in command


def test_the_quick_start_is_what_the_tests_run():
    cmds = commands()
    assert cmds[:2] == list(CI_ONLY)
    ci = (REPO / ".ci" / "run").read_text()
    assert all(c in ci for c in CI_ONLY)  # CI runs the install and the tests
    exports = [c for c in cmds if c.startswith("export ")]
    assert {c.split()[1].split("=")[0] for c in exports} <= set(_test_values(Path("x")))
    # the steps the issue asks for are all there: default, local sweep + table, GPU, SLURM
    assert "python -m nasheur" in cmds
    assert any("+experiment=" in c and c.endswith("-m") and not is_slurm(c) for c in cmds)
    assert any(c.startswith("python -m nasheur.results table") for c in cmds)
    assert any(c.startswith("python -m nasheur.results figures") for c in cmds)
    assert any(is_slurm(c) and "+experiment=" in c for c in cmds)


def _test_values(tmp: Path) -> dict[str, str]:
    return {"NASHEUR_DATA": str(tmp / "data"), "NASHEUR_GT_NB201": str(tmp / "gt.csv")}


def _run_in_order(cmds: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict:
    """Run ``cmds`` one after the other as a shell would; their outputs by command."""
    outputs = {}
    for command in cmds:
        if command.startswith("export "):
            name = command.split()[1].split("=")[0]
            env[name] = _test_values(cwd)[name]
            continue
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}\n{text[-3000:]}"
        outputs[command] = text
    return outputs


def _newcomer_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    # 1,280 images: a validation share (10%) as large as NB201's batch of 128
    write_fake_cifar(tmp_path / "data" / "cifar-10-batches-py", n_per_batch=256)
    write_nb201_gt(tmp_path / "gt.csv", n=40)
    shutil.copytree(REPO / "launch", tmp_path / "launch")  # the site profile and its wrapper
    env = run_env(tmp_path)
    env.pop("NASHEUR_RUNS")  # runs/ of the folder the newcomer is in, as the README says
    return tmp_path, env


@pytest.mark.slow
def test_the_local_quick_start_runs(tmp_path):
    cwd, env = _newcomer_folder(tmp_path)
    local = [c for c in commands() if c not in CI_ONLY and not is_slurm(c)]
    out = _run_in_order(local, cwd, env, timeout=1500)

    # the default: a progress line per epoch, the summary, and a super-net that learned a ranking
    default = out["python -m nasheur"]
    assert "epoch 12/12" in default and "sparse Kendall tau" in default
    (record,) = [json.loads(p.read_text()) for p in (cwd / "runs" / "embedded").rglob("*.json")
                 if p.name == "metrics.json"]  # fmt: skip
    assert record["status"] == "completed" and len(record["archs"]) == 200
    assert record["metrics"]["sparse_kendall_tau"] >= 0.2
    header = record["ground_truth"]["header"]  # the shipped table, named in the record
    assert header["space"] == "embedded" and float(header["seed_kendall_tau"]) >= 0.6
    assert "sparse Kendall tau" in out["python -m nasheur.results show runs/embedded"]

    # the local sweep ran on the embedded benchmark, and its table and figure were made
    sweep = cwd / "runs" / "sweeps" / "bn_ablation"
    records = [json.loads(p.read_text()) for p in sweep.rglob("metrics.json")]
    assert len(records) == 12 and {r["status"] for r in records} == {"completed"}
    assert {r["config"]["search_space"]["name"] for r in records} == {"embedded"}
    table = next(v for k, v in out.items() if k.startswith("python -m nasheur.results table"))
    assert "**Batch norm**" in table and "bn_track=true, bn_affine=false" in table
    assert (cwd / "tables" / "table-11.md").is_file()
    assert list((cwd / "figures").glob("*.png")) and list((cwd / "figures").glob("*.pdf"))

    # the CIFAR-10 debugging run read the exported data and ground truth
    (debug,) = [json.loads(p.read_text()) for p in (cwd / "runs" / "nb201").rglob("metrics.json")]
    assert debug["status"] == "completed"
    assert debug["ground_truth"]["path"] == str(cwd / "gt.csv")


@pytest.mark.slurm
@pytest.mark.usefixtures("cluster")  # skips where no cluster answers
def test_the_slurm_quick_start_runs(tmp_path):
    cwd, env = _newcomer_folder(tmp_path)
    env.update(TEST_PROFILE)  # the test cluster's profile wins over the copied site.env
    slurm = [c for c in commands() if is_slurm(c)]
    sweep = cwd / "runs" / "sweeps" / "bn_ablation"
    try:
        _run_in_order(slurm, cwd, env, timeout=900)
    finally:
        ids = job_ids(sweep / ".submitit")
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, check=False)
    assert (cwd / "launch" / "site.env").is_file()
    records = [json.loads(p.read_text()) for p in sweep.rglob("metrics.json")]
    assert len(records) == 12 and {r["status"] for r in records} == {"completed"}
    assert job_ids(sweep / ".submitit")  # they went through SLURM


def test_site_env_values_yield_to_the_callers(tmp_path):
    site = tmp_path / "site.env"
    site.write_text(
        "NASHEUR_SLURM_CPUS=8\nNASHEUR_GT_NB201=/site/gt.pth\nNASHEUR_SLURM_QOS=\nNASHEUR_DATA=\n"
    )
    env = {**run_env(tmp_path), "NASHEUR_SITE_ENV": str(site), "NASHEUR_GT_NB201": "/mine.csv"}
    env["NASHEUR_SLURM_CPUS"] = ""  # exported but empty: says nothing, the file's value holds
    proc = subprocess.run(
        ["bash", str(REPO / "launch" / "with_site_env.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    lines = set(proc.stdout.splitlines())
    assert "NASHEUR_SLURM_CPUS=8" in lines  # from the file
    assert "NASHEUR_GT_NB201=/mine.csv" in lines  # the caller's value wins
    for name in ("NASHEUR_SLURM_QOS", "NASHEUR_DATA"):  # empty: unset, the default
        assert not any(line.startswith(f"{name}=") for line in lines)


def test_a_callers_value_is_kept_as_it_is(tmp_path):
    # the caller's values are put back whole: one that ends in "=" keeps it, and one that
    # holds a line like a variable's sets nothing else
    site = tmp_path / "site.env"
    site.write_text("NASHEUR_DATA=/site/data\nNASHEUR_SLURM_QOS=site-qos\n")
    env = {
        **run_env(tmp_path),
        "NASHEUR_SITE_ENV": str(site),
        "NASHEUR_DATA": "/data/x=",
        "NASHEUR_GT_NB201": "/gt.csv\nNASHEUR_SLURM_QOS=mine",
    }
    show = 'printf "%s|%s|%s" "$NASHEUR_DATA" "$NASHEUR_SLURM_QOS" "$NASHEUR_GT_NB201"'
    proc = subprocess.run(
        ["bash", str(REPO / "launch" / "with_site_env.sh"), "bash", "-c", show],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "/data/x=|site-qos|/gt.csv\nNASHEUR_SLURM_QOS=mine"


def test_the_recalibration_example_sweeps_beside_the_finished_sweep(tmp_path, monkeypatch):
    # the README's example of a sweep whose jobs only evaluate bn_ablation's super-nets: its
    # folder must lie beside bn_ablation's, under $NASHEUR_RUNS/sweeps, where trained twins
    # are looked for, not under a runs/ of wherever the command runs
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    example = re.search(r"eval\.bn=recalibrate '?hydra\.sweep\.dir=([^ '`]+)", text)
    assert example is not None
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers

    register_configs()
    register_resolvers()
    monkeypatch.setenv("NASHEUR_RUNS", str(tmp_path / "shared"))
    monkeypatch.chdir(tmp_path)
    overrides = ["+experiment=bn_ablation", f"hydra.sweep.dir={example.group(1)}"]
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert Path(str(cfg.hydra.sweep.dir)).parent == tmp_path / "shared" / "sweeps"
