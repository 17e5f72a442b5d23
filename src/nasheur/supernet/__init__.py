"""f_ws: super-nets whose single paths are the architectures of a search space.

Every super-net is built from one :class:`SupernetSpec`, the mapping factors of the paper's
Table 1 plus the size the fidelity chose. Each factor has its own module here:
``batchnorm.py`` (BN track/affine, and WSBN's slots, which every space's op sets use),
``ofa.py`` (OFA kernel: ``OFAKernel``; NB201 and NB101 group their convs with ``ConvOps``,
DARTS-NDS in its op set), ``dropout.py`` (path dropout; global dropout is ``nn.Dropout`` before
each classifier), ``channels.py`` (NB101's dynamic channels); ops on node or edge is each
space's own position map (``nb201.POSITION_OF_EDGE``, ``darts.position_of``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from torch import nn

# search space -> "module:Class" of its super-net; the class takes a SupernetSpec
_REGISTRY: dict[str, str] = {
    "nb101": "nasheur.supernet.nb101:NB101SuperNet",
    "nb201": "nasheur.supernet.nb201:NB201SuperNet",
    "darts_nds": "nasheur.supernet.darts:DartsSuperNet",
    "embedded": "nasheur.supernet.nb201:NB201SuperNet",  # NB201 cells at a small size
}


@dataclass(frozen=True)
class SupernetSpec:
    channels: int
    layers: int
    num_classes: int
    ops_on: str = "edge"
    dynamic_channels: str = "fixed"
    subspace: int | None = None
    ofa_kernel: bool = False
    wsbn: bool = False
    path_dropout: float = 0.0
    global_dropout: float = 0.0
    bn_affine: bool = True
    bn_track: bool = False

    def require_fixed_widths(self, net: str) -> None:
        """For super-nets whose widths never vary (NB201, DARTS-NDS): dynamic channels and
        sub-spaces are NB101's, and are refused here rather than silently ignored."""
        if self.dynamic_channels != "fixed" or self.subspace is not None:
            raise ValueError(
                f"the {net} super-net has fixed widths: dynamic_channels must be 'fixed' and "
                f"subspace None, got {self.dynamic_channels!r}, {self.subspace!r}"
            )


def spec_from_config(cfg: Any, num_classes: int) -> SupernetSpec:
    """The spec of a validated :class:`nasheur.config.Config`."""
    s, p = cfg.supernet, cfg.protocol
    return SupernetSpec(
        channels=cfg.fidelity.channels,
        layers=cfg.fidelity.layers,
        num_classes=num_classes,
        ops_on=s.ops_on.value,
        dynamic_channels=s.dynamic_channels.value,
        # the super-net of a sub-space; a random subset as large (random_subspace) has them all
        subspace=None if s.random_subspace else s.subspace,
        ofa_kernel=s.ofa_kernel,
        wsbn=s.wsbn,
        path_dropout=s.path_dropout,
        global_dropout=s.global_dropout,
        bn_affine=p.bn_affine,
        bn_track=p.bn_track,
    )


def build_supernet(space: str, spec: SupernetSpec) -> nn.Module:
    if space not in _REGISTRY:
        raise KeyError(f"no super-net for search space {space!r}; known: {', '.join(_REGISTRY)}")
    module, _, cls = _REGISTRY[space].partition(":")
    return getattr(importlib.import_module(module), cls)(spec)
