"""The shipped ground truth of the embedded space (the fresh-machine default).

``embedded-gt.csv`` holds the mean top-1 test accuracy over seeds of a seeded sample of unique
NB201 cells trained stand-alone at the embedded macro size on the procedural image set;
``embedded-gt.per-seed.csv`` holds every seed's accuracy. The table's ``# regenerate:`` line
is the command (:mod:`nasheur.groundtruth.builder`) that rebuilds both from scratch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PER_SEED", "TABLE", "table_path"]

_HERE = Path(__file__).resolve().parent
TABLE = _HERE / "embedded-gt.csv"
PER_SEED = _HERE / "embedded-gt.per-seed.csv"


def table_path() -> str:
    """The shipped table's path (for ``ground_truth.path``)."""
    return str(TABLE)
