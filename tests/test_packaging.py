"""The package ships its configs: `pkg://nasheur.conf` must resolve from a wheel too."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO / "src").parts)
        for p in (REPO / "src").rglob("__init__.py")
    }
    assert found | {"nasheur.conf"} == listed
    assert "hydra_plugins.nasheur_ablation" in found


def _release(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))  # 1.24 is 1.24.0


def test_make_test_oldest_pins_the_lower_bounds_pyproject_allows():
    """`make test-oldest` tests what pyproject.toml promises: each dependency's lower bound."""
    project = _pyproject()["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["test"]
    bounds = {}
    for dep in deps:
        name, _, rest = dep.partition(">=")
        assert rest, f"{dep}: every dependency has a lower bound"
        bounds[name.strip().lower()] = _release(rest.split(",")[0].strip())
    pins = {}
    for line in (REPO / "tests" / "oldest-requirements.txt").read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if version:
            pins[name.lower()] = _release(version)
    assert {n: pins.get(n) for n in bounds} == bounds
    assert project["requires-python"].startswith(">=3.10,")
    assert "PYTHON_OLDEST ?= python3.10" in (REPO / "Makefile").read_text()


def test_hydras_plugin_scan_can_check_every_name_of_the_plugin_modules():
    """Hydra imports every module under hydra_plugins (where the plugins are installed as plain
    files: a wheel, `pip install .`) and asks of each name that `inspect.isclass` takes for a
    class whether it subclasses Plugin. On Python 3.10 a generic alias such as
    ``tuple[Any, ...]`` passes `isclass`, and `issubclass` then raises: every run failed there
    when one stood among a plugin module's names."""
    import importlib
    import inspect
    import pkgutil
    import types

    from hydra.plugins.plugin import Plugin

    import hydra_plugins.nasheur_ablation as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    assert len(names) == 2  # the sweeper and the launchers; their machinery: nasheur.sweep
    for name in names:
        for attr, value in vars(importlib.import_module(name)).items():
            # what Python 3.10 takes for a class (typing's aliases, hydra's TaskFunction, are not)
            assert not isinstance(value, types.GenericAlias), f"{name}.{attr} is a generic alias"
            if inspect.isclass(value):
                issubclass(value, Plugin)  # Hydra's own check (hydra.core.plugins)


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
def test_the_wheelhouse_writes_a_relative_folder_where_it_was_asked(tmp_path):
    # `cd /scratch; bash ~/nasheur/launch/wheelhouse.sh wheels`: /scratch/wheels, not the
    # checkout's wheels/ (whose *.whl it would remove first)
    made = subprocess.run(
        ["bash", str(REPO / "launch" / "wheelhouse.sh"), "rel-wheels"],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    assert len(list((tmp_path / "rel-wheels").glob("*.whl"))) == 6
    assert not (REPO / "rel-wheels").exists()


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


def test_make_clean_cleans_the_checkout_not_the_folder_make_runs_in(tmp_path):
    # `make -f path/to/Makefile` works from another folder (ROOT); clean must not delete
    # that folder's own build/ and dist/ (a copy of the Makefile stands for the checkout)
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    for root in (checkout, elsewhere):
        (root / "build").mkdir(parents=True)
        (root / "dist").mkdir()
    (checkout / "Makefile").write_text((REPO / "Makefile").read_text())
    env = {**os.environ, "MAKEFLAGS": "", "NASHEUR_SITE_ENV": ""}
    out = subprocess.run(
        ["make", "-s", "-f", str(checkout / "Makefile"), "clean"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert (elsewhere / "build").is_dir() and (elsewhere / "dist").is_dir()
    assert not (checkout / "build").exists() and not (checkout / "dist").exists()
