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
import contextlib
import contextvars
import importlib
import io
import math
import operator
import os
import pickle
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

__all__ = [
    "LATIN1_BYTES_GLOBALS",
    "NUMPY_ARRAY_GLOBALS",
    "Deferred",
    "PickleMemoryError",
    "Placeholder",
    "UnpickledArray",
    "UnsafePickleError",
    "checking_numpy",
    "out_of_memory",
    "safe_load",
    "torch_refusal",
    "torch_save_objects",
]

_IMPORT = object()  # marker: resolve the global by importing it


class UnsafePickleError(ValueError):
    """A pickle referenced a global that is not on the allow-list."""

    #: (module, name) of the global refused, where that was the refusal
    refused: tuple[str, str] | None = None


class PickleMemoryError(UnsafePickleError):
    """The unpickler ran out of memory: a length field or memo index far beyond what the file
    holds (damage or a crafted file), or a file too large for this machine."""


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


@dataclass
class Deferred:
    """Globals of ``package`` (a top-level name, e.g. ``"torch"``) and persistent references
    that :func:`safe_load` leaves to another reader: each loads as an inert
    :class:`Placeholder`, so that the read goes on to the end and meets every other global
    the file names. ``seen`` lists those deferred."""

    package: str
    seen: list[str] = field(default_factory=list)


class Placeholder:
    """What a deferred global (and whatever it makes) stands for: takes any call, BUILD or
    item, and holds nothing (BUILD and APPEND on the class itself too: ``*args``)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder()

    def __setstate__(*args: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(*args: Any) -> None:
        pass

    def extend(*args: Any) -> None:
        pass


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(
        self,
        fileobj: IO[bytes],
        table: dict[tuple[str, str], Any],
        source: str,
        defer: Deferred | None = None,
        **kwargs: Any,
    ):
        super().__init__(fileobj, **kwargs)
        self._table = table
        self._source = source
        self._defer = defer

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        deferred = self._defer is not None and module.split(".")[0] == self._defer.package
        if key not in self._table and deferred:
            self._defer.seen.append(f"{module}.{name}")  # type: ignore[union-attr]
            return Placeholder
        if key not in self._table:
            err = UnsafePickleError(
                f"{self._source}: refusing to load the global {module}.{name} "
                "(not on the allow-list of this file type; it was not executed)"
            )
            err.refused = key
            raise err
        obj = self._table[key]
        if obj is _IMPORT:
            obj = _import_global(module, name)
            self._table[key] = obj
        return obj

    def persistent_load(self, pid: Any) -> Any:
        if self._defer is not None:
            self._defer.seen.append("a persistent reference")
            return Placeholder()
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
    defer: Deferred | None = None,
) -> Any:
    """Unpickle ``fileobj`` resolving only the globals in ``allowed``.

    ``source`` names the file in error messages. ``encoding`` is passed to
    :class:`pickle.Unpickler` (use ``"bytes"`` for Python 2 pickles such as CIFAR-10's, or
    ``"latin1"`` for Python 2 pickles holding numpy arrays that should decode strings).
    Raises :class:`UnsafePickleError` for any global not allowed; the global is never imported
    or called; ``defer`` (a :class:`Deferred`) loads another reader's globals as placeholders.
    Other malformed input raises what :mod:`pickle` raises.
    """
    table = _normalise(allowed)
    try:
        with checking_numpy(source):
            return _AllowListUnpickler(fileobj, table, source, defer, encoding=encoding).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(f"{source}:"):
            raise
        # raised by a restricted stand-in (e.g. LATIN1_BYTES_GLOBALS): add the file's name
        raise UnsafePickleError(f"{source}: {exc}") from None
    except MemoryError:  # the allocation that failed is gone by now
        raise out_of_memory(source) from None


def out_of_memory(source: str) -> PickleMemoryError:
    """What to raise for a MemoryError from unpickling the file `source` (the stdlib's own
    says nothing at all)."""
    try:
        size = f"the file has {os.path.getsize(source):,} bytes"
    except (OSError, ValueError):
        size = "its size unknown"
    return PickleMemoryError(
        f"{source}: unpickling ran out of memory ({size}): a length field or memo index asks "
        "for far more than the file holds (a damaged or crafted file), or the file is too "
        "large for this machine's memory"
    )


def zip_inflation(path: str | os.PathLike[str]) -> str | None:
    """What makes a zip-format ``torch.save`` file unsafe to hand to ``torch.load``, or None.

    ``torch.save`` stores its entries as they are, while torch would inflate a deflated entry
    whatever its size (a 2 MB file can ask for gigabytes); so compressed entries, or sizes
    beyond the file's own, are refused, and so is a zip directory that Python cannot read
    (torch's own reader might read it otherwise). A file that is not a zip is left to the
    loader."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return None
    except Exception as exc:  # e.g. an entry flagged UTF-8 whose name is not (UnicodeError)
        return f"an unreadable zip directory: {type(exc).__name__}: {exc}"
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        return f"compressed entries: {', '.join(packed[:3])}"
    if sum(e.file_size for e in entries) > os.path.getsize(path):
        return "entries larger than the file"
    return None


_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # opens a legacy (pre-zip) torch.save file


def torch_save_objects(
    path: str | os.PathLike[str], allowed: Mapping[Any, Any], *, defer: Deferred
) -> list[Any]:
    """The objects pickled in a ``torch.save`` file, read through :func:`safe_load` with
    ``defer``'s globals (torch's) as placeholders, so that every other global the file names
    is met and refused before ``torch.load``, whose own list takes some that no file should
    (``bytearray(n)`` allocates n bytes the file does not hold). A zip container gives one
    object per ``data.pkl`` entry: each is read, as of two of one name torch reads the other;
    a legacy container its one object after the header. ``ValueError`` for a file that is
    neither. Refuse compressed zip entries first (:func:`zip_inflation`)."""
    source = str(path)
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":  # torch >= 1.6: <name>/data.pkl in a zip
            f.seek(0)
            objs = []
            with zipfile.ZipFile(f) as archive:
                for entry in archive.infolist():
                    if entry.filename.rsplit("/", 1)[-1] == "data.pkl":
                        with archive.open(entry) as pkl:
                            stream = io.BufferedReader(pkl, 1 << 20)  # type: ignore[arg-type]
                            objs.append(safe_load(stream, allowed, source=source, defer=defer))
            return objs
        # the legacy container: magic number, protocol, sys_info, then the object
        f.seek(0)
        if safe_load(f, {}, source=source) != _TORCH_MAGIC:
            raise ValueError(f"{source}: not a torch.save file")
        safe_load(f, {}, source=source)
        safe_load(f, {}, source=source)
        return [safe_load(f, allowed, source=source, defer=defer)]


def zip_damage(path: str | os.PathLike[str]) -> str | None:
    """Where a zip-format ``torch.save`` file's bytes are not those written, or None: the
    first entry whose CRC-32 fails (a bit flipped on disk or on the way; ``torch.load`` reads
    tensors without checking). Entries stored without a CRC (torch's ``compute_crc32`` off)
    and files that are not zips are left to the loader."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception:  # not a zip, or one zip_inflation refuses: not for this check to say
        return None
    with archive:
        try:
            for info in archive.infolist():
                if info.CRC == 0:  # not computed (or, once in 2**32, a CRC of 0)
                    continue
                with archive.open(info) as entry:
                    while entry.read(1 << 24):
                        pass
        except zipfile.BadZipFile as exc:  # "Bad CRC-32 for file 'checkpoint/data/3'"
            return str(exc)
        except (OSError, EOFError, ValueError):  # cut short, unreadable: the loader says so
            return None
    return None


def torch_refusal(exc: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused, from its UnpicklingError: the line that
    names the global or opcode, without torch's advice to load the file unsafely."""
    detail = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in detail:
        detail = detail.split(marker, 1)[1].strip().splitlines()[0]
        return detail.split(" Please use", 1)[0]
    # other refusals (a blocked module, torch >= 2.6) put the reason on a line of its own,
    # between the advice to load unsafely and a pointer to the documentation
    # (where a module must be imported first, the reason follows torch's opening words)
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    said = [
        reason
        for line in lines
        if (reason := line.removeprefix("Weights only load failed.").strip())
        and not reason.startswith("Check the documentation")
        and "weights_only" not in reason
    ]
    return said[0] if said else type(exc).__name__


# --------------------------------------------------------------------------------------------
# numpy
#
# numpy's own unpickling trusts the file: BUILD runs ``dtype.__setstate__`` with file-supplied
# state (flags, fields, offsets, subarray), and ``scalar`` / ``_frombuffer`` / ``ndarray`` BUILD
# then interpret raw file bytes through that dtype, so a crafted dtype (an object dtype whose
# flags were cleared, a field offset far outside the item) makes reads crash or touch arbitrary
# memory. The stand-ins below admit only plain dtypes (no pointers, fields or subarrays), make
# every array or scalar from a fresh copy of a checked dtype (never the file's dtype object,
# which a later BUILD could change), and re-check each dtype the file made when the load ends.

_PLAIN_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes, str
# An item of size 0 lets an array of any length stand on no bytes (a 166-byte file held an
# S0 array of 10**18 items, and iterating it never ended); numpy never pickles one.
_ZERO_ITEMSIZE = (
    "refusing the numpy dtype {!r}: its items have size 0, so an array of any length would "
    "need no data"
)
# An array with no elements still has its extents: shape (10**18, 0) iterates 10**18 times
# over nothing. Its nonzero extents may multiply to this much at most.
_MAX_EMPTY_EXTENT = 1 << 20


def _check_backed(shape: Any, dtype: np.dtype, nbytes: int) -> tuple[int, ...]:
    """``shape`` as ints, if the ``nbytes`` of data the file supplies hold exactly its
    elements (and an empty shape stays small); refuses any array bigger than its bytes."""
    try:
        dims = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise UnsafePickleError(
            f"refusing the array shape {shape!r} (not a tuple of ints)"
        ) from None
    if any(n < 0 for n in dims):
        raise UnsafePickleError(f"refusing the array shape {dims} (a negative extent)")
    count = math.prod(dims)
    if dtype.itemsize == 0 or count * dtype.itemsize != nbytes:
        raise UnsafePickleError(
            f"refusing an array of shape {dims} and dtype {dtype}: its {count:,} elements "
            f"need {count * dtype.itemsize:,} bytes, the file gives {nbytes:,}"
        )
    if count == 0 and math.prod(n for n in dims if n) > _MAX_EMPTY_EXTENT:
        raise UnsafePickleError(
            f"refusing the empty array of shape {dims}: extents that large with no element "
            f"(more than {_MAX_EMPTY_EXTENT:,}) are never pickled by numpy"
        )
    return dims


_made_dtypes: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "_made_dtypes", default=None
)


class _Guarded:
    """A stand-in a pickle may call but never modify (BUILD on it would set attributes)."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]):
        self._name = name
        self._fn = fn

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refusing to modify the global {self._name} (BUILD on it)")

    def __repr__(self) -> str:
        return f"<restricted stand-in for {self._name}>"


def _plain_dtype(dt: Any) -> np.dtype:
    """A fresh dtype equal to ``dt`` if ``dt`` is a plain, unaltered dtype; refuses anything else."""
    if not isinstance(dt, np.dtype):
        raise UnsafePickleError(f"refusing {type(dt).__name__} where a numpy dtype belongs")
    try:
        fresh = np.dtype(dt.str)
    except (TypeError, ValueError):
        fresh = None
    # equal reduce states: same kind, byte order, size, alignment, flags; no fields or subarray
    if fresh is None or fresh.kind not in _PLAIN_KINDS or dt.__reduce__() != fresh.__reduce__():
        raise UnsafePickleError(
            f"refusing the numpy dtype {dt!r} (only plain bool/int/float/complex/bytes/str "
            "dtypes are allowed; object, structured and altered dtypes are not)"
        )
    if fresh.itemsize == 0:
        raise UnsafePickleError(_ZERO_ITEMSIZE.format(dt))
    return fresh


def _make_dtype(spec: Any, *_align_copy: Any) -> np.dtype:
    """Stand-in for ``numpy.dtype(spec, align, copy)``, the first half of a pickled dtype."""
    if isinstance(spec, bytes):  # Python 2 pickles read with encoding="bytes"
        spec = spec.decode("latin-1")
    try:
        kind = np.dtype(spec).kind if isinstance(spec, str) else None
    except (TypeError, ValueError):
        kind = None
    if kind is None or kind not in _PLAIN_KINDS:
        raise UnsafePickleError(
            f"refusing the numpy dtype {spec!r} (only plain bool/int/float/complex/bytes/str "
            "dtypes are allowed)"
        )
    if np.dtype(spec).itemsize == 0:
        raise UnsafePickleError(_ZERO_ITEMSIZE.format(spec))
    # a private copy: the BUILD that follows must never reach numpy's shared dtype objects
    dt = np.dtype(spec, False, True)
    made = _made_dtypes.get()
    if made is not None:
        made.append(dt)
    return dt


@contextlib.contextmanager
def checking_numpy(source: str) -> Iterator[None]:
    """Refuse (``UnsafePickleError``) a load whose dtypes a BUILD altered; wraps every load.

    Arrays and scalars never hold the file's dtype objects, but a dtype the file left in its
    data (e.g. a dict value) is returned as is, so each one is checked once the load is done.
    """
    made: list[Any] = []
    reset = _made_dtypes.set(made)
    try:
        yield
        for dt in made:
            try:
                _plain_dtype(dt)
            except UnsafePickleError as exc:
                raise UnsafePickleError(f"{source}: {exc}") from None
    finally:
        _made_dtypes.reset(reset)


class UnpickledArray(np.ndarray):
    """What :func:`safe_load` gives for a pickled array.

    A plain ``ndarray`` subclass whose BUILD state is checked before numpy sees it, and that
    takes one BUILD at most: a second one would free the data that views made meanwhile (by
    ``_frombuffer``, say) still point into. Nothing else differs. Pickling it writes a plain
    ``ndarray``; ``np.asarray`` gives a plain view.
    """

    def __setstate__(self, state: Any) -> None:
        if self.__dict__.get("_built"):
            raise UnsafePickleError("refusing to set an array's state twice (BUILD on it again)")
        # (version, shape, dtype, is_fortran, raw bytes); old numpy wrote it without the version
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError("refusing an ndarray state that is not numpy's")
        *head, shape, dtype, fortran, raw = state
        if not isinstance(raw, (bytes, bytearray, str)):  # a list: an object array
            raise UnsafePickleError(
                f"refusing ndarray data of type {type(raw).__name__} (object arrays are not "
                "allowed)"
            )
        plain = _plain_dtype(dtype)
        # a str payload (Python 2 pickles read as latin-1) stands for one byte per character
        shape = _check_backed(shape, plain, len(raw))
        self.__dict__["_built"] = True
        super().__setstate__((*head, shape, plain, fortran, raw))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.view(np.ndarray).__reduce_ex__(protocol)


def _numpy_array_globals() -> dict[tuple[str, str], Any]:
    # numpy >= 2 keeps its internals in numpy._core (numpy.core is a deprecated alias that warns);
    # numpy 1.x has only numpy.core. Resolve whichever exists without touching the other.
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
        numeric = importlib.import_module("numpy._core.numeric")
    except ImportError:  # numpy 1.x before the rename
        multiarray = importlib.import_module("numpy.core.multiarray")
        numeric = importlib.import_module("numpy.core.numeric")

    def refuse_ndarray(*args: Any) -> Any:
        raise UnsafePickleError(
            "refusing to call numpy.ndarray (pickled arrays name it only as _reconstruct's "
            "first argument)"
        )

    ndarray_ref = _Guarded("numpy.ndarray", refuse_ndarray)

    def reconstruct(subtype: Any, *_shape_typecode: Any) -> UnpickledArray:
        # numpy writes _reconstruct(ndarray, (0,), b"b"); the BUILD that follows sets everything
        if subtype is not ndarray_ref:
            raise UnsafePickleError(f"refusing _reconstruct of {subtype!r} (only numpy.ndarray)")
        return UnpickledArray((0,), dtype=np.int8)

    def scalar(dtype: Any, *data: Any) -> Any:
        plain = _plain_dtype(dtype)
        # numpy pickles a scalar with its item's bytes (a str: Python 2's, read as latin-1);
        # without them numpy allocates and zeroes the item itself, up to 2 GB per call
        raw = data[0] if len(data) == 1 else None
        if not isinstance(raw, (bytes, bytearray, str)) or len(raw) != plain.itemsize:
            given = f"{len(raw):,} bytes" if isinstance(raw, (bytes, bytearray, str)) else "none"
            raise UnsafePickleError(
                f"refusing a numpy scalar of dtype {plain}: its item needs "
                f"{plain.itemsize:,} bytes, the file gives {given}"
            )
        return multiarray.scalar(plain, raw)

    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> UnpickledArray:
        # the file's own bytes only (another array's memory could be freed under the view),
        # copied into an array that owns them and that a later BUILD cannot change
        if not isinstance(buffer, (bytes, bytearray)):
            raise UnsafePickleError(
                f"refusing _frombuffer of a {type(buffer).__name__} (only bytes are pickled so)"
            )
        plain = _plain_dtype(dtype)
        shape = _check_backed(shape, plain, len(buffer))
        view = numeric._frombuffer(bytes(buffer), plain, shape, order)
        array = view.copy(order="K").view(UnpickledArray)
        array.__dict__["_built"] = True
        return array

    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): ndarray_ref,
        ("numpy", "dtype"): _Guarded("numpy.dtype", _make_dtype),
    }
    for prefix in ("numpy.core", "numpy._core"):
        # protocol <= 4 arrays: _reconstruct(ndarray, (0,), b"b") then BUILD
        table[(f"{prefix}.multiarray", "_reconstruct")] = _Guarded(
            f"{prefix}.multiarray._reconstruct", reconstruct
        )
        # numpy scalars (e.g. a float64 stored in a dict)
        table[(f"{prefix}.multiarray", "scalar")] = _Guarded(f"{prefix}.multiarray.scalar", scalar)
        # protocol 5 arrays: _frombuffer(buffer, dtype, shape, order)
        table[(f"{prefix}.numeric", "_frombuffer")] = _Guarded(
            f"{prefix}.numeric._frombuffer", frombuffer
        )
    return table


#: Globals needed for plain numpy arrays, dtypes and scalars as pickled by numpy 1.x and 2.x
#: (protocols 2 to 5), mapped onto restricted stand-ins (see above) over the installed numpy.
#: Only plain dtypes (bool, integers, floats, complex, bytes, str) load; object and structured
#: dtypes, dtypes a BUILD altered or of item size 0, and arrays whose shape the file's bytes do
#: not hold, raise :class:`UnsafePickleError` before any element is read.
NUMPY_ARRAY_GLOBALS: Mapping[tuple[str, str], Any] = _numpy_array_globals()


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` limited to what pickle protocol <= 2 uses for bytes."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}): only the latin-1 "
            "encoding of a str (how Python 3 pickles bytes at protocol <= 2) is allowed"
        )
    return obj.encode("latin-1", errors)


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes()``; with arguments it could allocate any size, so none are taken."""
    if args:
        raise UnsafePickleError("refusing bytes() with arguments (only b'' is pickled so)")
    return b""


#: Python 3 writes ``bytes`` at pickle protocol <= 2 as ``_codecs.encode(str, "latin1")``, and
#: ``b""`` as ``__builtin__.bytes()``; this maps those globals onto stand-ins that accept
#: nothing but those uses.
LATIN1_BYTES_GLOBALS: Mapping[tuple[str, str], Any] = {
    ("_codecs", "encode"): _Guarded("_codecs.encode", _latin1_encode),
    ("__builtin__", "bytes"): _Guarded("__builtin__.bytes", _empty_bytes),
}
