from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_NB201 = REPO.parent / "shared" / "data" / "nb201-cifar10-valid-200ep.csv"


@pytest.fixture
def shared_nb201_csv() -> Path:
    if not SHARED_NB201.is_file():
        pytest.skip(f"{SHARED_NB201} is absent")
    return SHARED_NB201


def run_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `python -m nasheur` subprocess writing under tmp_path."""
    env = dict(os.environ)
    env["NASHEUR_RUNS"] = str(tmp_path / "runs")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


PYTHON = sys.executable
