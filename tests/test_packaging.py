"""The package ships its configs: `pkg://nasheur.conf` must resolve from a wheel too."""

from __future__ import annotations

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
