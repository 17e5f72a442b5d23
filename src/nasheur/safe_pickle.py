"""Unpickling with an allow-list of globals.

Benchmark files (CIFAR-10 batches, NAS-Bench-201 / NATS-Bench pickles) are pickles that users
download from third parties. A plain ``pickle.load`` would run whatever callable such a file
names; :func:`safe_load` instead resolves only the ``module.name`` pairs a caller lists and
refuses everything else *before* it can be called.

The allow-list may be given as

* ``{"module": {"name", ...}, ...}``: each listed global is imported when the pickle asks for it;
* ``{("module", "name"): obj, ...}``: the pickle's reference resolves to ``obj`` (this is how
  :data:`NUMPY_ARRAY_GLOBALS` maps the numpy 1.x and 2.x spellings onto the installed numpy, and
  how a caller substitutes a restricted stand-in for a dangerous callable);
* a collection of ``("module", "name")`` pairs: imported like the first form.

Allow-lists combine with dict unpacking, e.g. ``{**NUMPY_ARRAY_GLOBALS, **LATIN1_BYTES_GLOBALS}``.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from collections.abc import Collection, Mapping
from typing import IO, Any

__all__ = [
    "LATIN1_BYTES_GLOBALS",
    "NUMPY_ARRAY_GLOBALS",
    "UnsafePickleError",
    "safe_load",
]

_IMPORT = object()  # marker: resolve the global by importing it


class UnsafePickleError(ValueError):
    """A pickle referenced a global that is not on the allow-list."""


def _normalise(allowed: Any) -> dict[tuple[str, str], Any]:
    """Turn any accepted allow-list form into ``{(module, name): obj or _IMPORT}``."""
    table: dict[tuple[str, str], Any] = {}
    if isinstance(allowed, Mapping):
        for key, value in allowed.items():
            if isinstance(key, str):
                if isinstance(value, str):
                    raise TypeError(
                        f"allow-list entry for module {key!r} must be a collection of names, "
                        f"not the string {value!r}"
                    )
                for name in value:
                    table[(key, str(name))] = _IMPORT
            elif isinstance(key, tuple) and len(key) == 2:
                table[(str(key[0]), str(key[1]))] = value
            else:
                raise TypeError(f"bad allow-list key {key!r}")
    else:
        for pair in allowed:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(f"bad allow-list entry {pair!r}; expected (module, name)")
            table[(str(pair[0]), str(pair[1]))] = _IMPORT
    return table


def _import_global(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(
        self, fileobj: IO[bytes], table: dict[tuple[str, str], Any], source: str, **kwargs: Any
    ):
        super().__init__(fileobj, **kwargs)
        self._table = table
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in self._table:
            raise UnsafePickleError(
                f"{self._source}: refusing to load the global {module}.{name} "
                "(not on the allow-list of this file type; it was not executed)"
            )
        obj = self._table[key]
        if obj is _IMPORT:
            obj = _import_global(module, name)
            self._table[key] = obj
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self._source}: refusing a persistent reference {pid!r} (not supported)"
        )


def safe_load(
    fileobj: IO[bytes],
    allowed: Mapping[str, Collection[str]]
    | Mapping[tuple[str, str], Any]
    | Collection[tuple[str, str]],
    *,
    source: str,
    encoding: str = "ASCII",
) -> Any:
    """Unpickle ``fileobj`` resolving only the globals in ``allowed``.

    ``source`` names the file in error messages. ``encoding`` is passed to
    :class:`pickle.Unpickler` (use ``"bytes"`` for Python 2 pickles such as CIFAR-10's, or
    ``"latin1"`` for Python 2 pickles holding numpy arrays that should decode strings).
    Raises :class:`UnsafePickleError` for any global not allowed; the global is never imported
    or called. Other malformed input raises what :mod:`pickle` raises.
    """
    table = _normalise(allowed)
    try:
        return _AllowListUnpickler(fileobj, table, source, encoding=encoding).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(f"{source}:"):
            raise
        # raised by a restricted stand-in (e.g. LATIN1_BYTES_GLOBALS): add the file's name
        raise UnsafePickleError(f"{source}: {exc}") from None


# --------------------------------------------------------------------------------------------
# numpy


def _numpy_array_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    # numpy >= 2 keeps its internals in numpy._core (numpy.core is a deprecated alias that warns);
    # numpy 1.x has only numpy.core. Resolve whichever exists without touching the other.
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
        numeric = importlib.import_module("numpy._core.numeric")
    except ImportError:  # numpy 1.x before the rename
        multiarray = importlib.import_module("numpy.core.multiarray")
        numeric = importlib.import_module("numpy.core.numeric")

    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for prefix in ("numpy.core", "numpy._core"):
        # protocol <= 4 arrays: _reconstruct(ndarray, (0,), b"b") then __setstate__
        table[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # numpy scalars (e.g. a float64 stored in a dict)
        table[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
        # protocol 5 arrays: _frombuffer(buffer, dtype, shape, order)
        table[(f"{prefix}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


#: Globals needed for plain numpy arrays, dtypes and scalars as pickled by numpy 1.x and 2.x
#: (protocols 2 to 5), mapped onto the installed numpy's objects. Object arrays are not covered:
#: their elements are ordinary pickled objects and need their own entries.
NUMPY_ARRAY_GLOBALS: Mapping[tuple[str, str], Any] = _numpy_array_globals()


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` limited to what pickle protocol <= 2 uses for bytes."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}): only the latin-1 "
            "encoding of a str (how Python 3 pickles bytes at protocol <= 2) is allowed"
        )
    return obj.encode("latin-1", errors)


#: Python 3 writes ``bytes`` at pickle protocol <= 2 as ``_codecs.encode(str, "latin1")``; this
#: maps that global onto a stand-in that accepts nothing but that use.
LATIN1_BYTES_GLOBALS: Mapping[tuple[str, str], Any] = {("_codecs", "encode"): _latin1_encode}
