"""The package ships its configs: `pkg://nasheur.conf` must resolve from a wheel too."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO / "src").parts)
        for p in (REPO / "src").rglob("__init__.py")
    }
    assert found | {"nasheur.conf"} == listed
    assert "hydra_plugins.nasheur_ablation" in found


def test_conf_is_the_installed_nasheur_conf():
    import nasheur.conf

    assert Path(nasheur.conf.__file__).parent.resolve() == (REPO / "conf").resolve()


@pytest.mark.slow
def test_the_wheel_carries_every_config(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("nasheur-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml in (REPO / "conf").rglob("*.yaml"):
        assert "nasheur/conf/" + yaml.relative_to(REPO / "conf").as_posix() in names
    # the embedded benchmark's ground truth, so that `python -m nasheur` runs from a wheel
    for table in ("embedded-gt.csv", "embedded-gt.per-seed.csv"):
        assert f"nasheur/groundtruth/embedded/{table}" in names


@pytest.mark.slow
def test_the_wheelhouse_runs_the_benchmark_without_an_install(tmp_path):
    # a GPU node without a package index: the wheels, unpacked into a folder on PYTHONPATH
    wheels, site = tmp_path / "whl", tmp_path / "site"
    made = subprocess.run(
        ["bash", str(REPO / "launch" / "wheelhouse.sh"), str(wheels)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    names = {p.name.split("-")[0] for p in wheels.glob("*.whl")}
    assert names == {
        "nasheur",
        "hydra_core",
        "omegaconf",
        "antlr4_python3_runtime",
        "submitit",
        "hydra_submitit_launcher",
    }
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    installed = subprocess.run(
        [*pip, "--target", str(site), *map(str, wheels.glob("*.whl"))],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    probe = (
        "import nasheur, hydra_plugins.nasheur_ablation as p; "
        "from nasheur.bench import paper_settings; "
        "print(nasheur.__file__, p.__file__, paper_settings('nb201').batch_size)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    nasheur, plugin, batch = proc.stdout.split()
    assert nasheur.startswith(str(site)) and plugin.startswith(str(site)) and batch == "128"
