"""Path samplers of P_ws: which architectures one training step trains.

A sampler returns, for one batch, the list of architectures whose gradients are averaged
into that step: one for Random-NAS and Random-A, one per op for FairNAS. Samplers return new immutable specs and
never edit a stored one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Sampler(Protocol):
    def step_archs(self, rng: np.random.Generator) -> list[Any]: ...


class RandomNAS:
    """Each choice uniform and independent (the space's own `sample`)."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def step_archs(self, rng: np.random.Generator) -> list[Any]:
        return [self.space.sample(rng)]


class RandomA:
    """Uniform over unique architectures (the space's `sample_unique`)."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def step_archs(self, rng: np.random.Generator) -> list[Any]:
        return [self.space.sample_unique(rng)]


class FairNAS:
    """Per batch one topology, then o paths in which every op position takes every op exactly
    once (the space's `fair_paths`); their gradients are averaged into one step, as the
    paper's text says (the authors' code summed them)."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def step_archs(self, rng: np.random.Generator) -> list[Any]:
        return self.space.fair_paths(rng)


SAMPLERS: dict[str, Callable[[Any], Sampler]] = {
    "random_nas": RandomNAS,
    "random_a": RandomA,
    "fairnas": FairNAS,
}


def build_sampler(name: str, space: Any) -> Sampler:
    if name not in SAMPLERS:
        raise KeyError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    offered = getattr(space, "samplers", tuple(SAMPLERS))
    if name not in offered:  # else it fails at the first step, on a missing method
        raise ValueError(
            f"sampler {name!r} is not offered in the {getattr(space, 'name', space)} space "
            f"(it offers {', '.join(offered)})"
        )
    return SAMPLERS[name](space)
