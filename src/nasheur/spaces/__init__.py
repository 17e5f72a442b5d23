"""Search spaces: encodings, canonical keys, sampling, enumeration and f_proxy.

Importing a space module is cheap (no torch): config validation reads what each space
supports from the class attributes ``ops_on``, ``dynamic_channels`` and ``samplers``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from numbers import Integral
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


# the macro settings of f_proxy that count something: an integer >= 1 each
COUNTED_MACRO = ("channels", "layers", "num_classes")


def macro_settings(
    space: str, defaults: Mapping[str, Any], macro: Mapping[str, Any]
) -> dict[str, Any]:
    """A space's f_proxy settings: `defaults` overridden by `macro`, refused where `macro`
    names a setting the space lacks (TypeError) or a count that is not an integer >= 1
    (ValueError: a network of 0 layers would build and fail only in its forward pass)."""
    unknown = set(macro) - set(defaults)
    if unknown:
        raise TypeError(
            f"unknown {space} macro settings {sorted(unknown)}; known: {sorted(defaults)}"
        )
    for name in COUNTED_MACRO:
        value = macro.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{space} {name} must be an integer >= 1, not {value!r}")
    return {**defaults, **macro}
