"""The embedded space: NB201 cells in a small network, the fresh-machine default.

No benchmark file, CIFAR-10 or GPU is needed: the architectures are NAS-Bench-201 cells (same
encodings, keys, isomorphism rule and samplers), but f_proxy is the NB201 network at a small
macro setting (8 initial channels, three cells per stage) trained on the procedural image set
(:mod:`nasheur.data.procedural`). Its ground truth is built by the project itself
(:mod:`nasheur.groundtruth.builder`) and shipped in ``nasheur/groundtruth/embedded/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from nasheur.spaces.nb201 import NB201Space


class EmbeddedSpace(NB201Space):
    """NB201 cells at the embedded macro size; keys are the official NB201 strings."""

    name = "embedded"
    paper_space = "nb201"  # a sweep's blocks for nb201 apply here too (same cells, same ops)
    ops_on = ("edge", "node")
    dynamic_channels = ("fixed",)
    samplers = ("random_nas", "random_a", "fairnas")
    # f_proxy of the shipped ground truth: C=8 initial channels, N=3 cells per stage (9 cells,
    # so that the cell rather than the fixed stem and reductions decides how well a network
    # learns) and the procedural set's 10 classes
    macro_defaults: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"channels": 8, "layers": 3, "num_classes": 10}
    )

    @staticmethod
    def shipped_ground_truth() -> Path:
        """The table this space ships with: ``ground_truth.path`` when that is null."""
        from nasheur.groundtruth.embedded import TABLE

        return TABLE
