"""Search spaces: encodings, canonical keys, sampling, enumeration and f_proxy.

Importing a space module is cheap (no torch): config validation reads what each space
supports from the class attributes ``ops_on``, ``dynamic_channels`` and ``samplers``.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

# name -> "module:Class"; the names are the values of `search_space=`
_REGISTRY: dict[str, str] = {
    "nb101": "nasheur.spaces.nb101:NB101Space",
    "nb201": "nasheur.spaces.nb201:NB201Space",
    "darts_nds": "nasheur.spaces.darts:DartsSpace",
    "embedded": "nasheur.spaces.embedded:EmbeddedSpace",
}


def space_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def _space_class(name: str) -> type:
    if name not in _REGISTRY:
        raise KeyError(f"unknown search space {name!r}; known: {', '.join(_REGISTRY)}")
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def space_info(name: str) -> Any:
    """The class of a space: what it supports, without building anything."""
    return _space_class(name)


@cache
def get_space(name: str) -> Any:
    """The search space called `name` (one shared instance; spaces are stateless)."""
    return _space_class(name)()
