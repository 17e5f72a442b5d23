"""f_ws: super-nets whose single paths are the architectures of a search space."""

from __future__ import annotations

from typing import Any

from torch import nn


def build_supernet(space: str, *, num_classes: int, cfg: Any) -> nn.Module:
    """The super-net of `space` for a validated :class:`nasheur.config.Config`."""
    if space == "nb201":
        from nasheur.supernet.nb201 import NB201SuperNet

        return NB201SuperNet(
            channels=cfg.fidelity.channels,
            layers=cfg.fidelity.layers,
            num_classes=num_classes,
            ops_on=cfg.supernet.ops_on.value,
            bn_affine=cfg.protocol.bn_affine,
            bn_track=cfg.protocol.bn_track,
        )
    raise KeyError(f"no super-net for search space {space!r}")
