"""NAS-Bench-201 / NATS-Bench topology ground truth from the official files.

Three containers are read, none of them with a plain ``pickle.load``:

* ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``: a ``torch.save``d
  dict. Its pickle (in either torch container, zip or legacy) is read with the C unpickler under
  the allow-list below when it holds plain data only; otherwise (tensors: torch's globals) with
  ``torch.load(weights_only=True)`` (numpy scalars and arrays allow-listed), once the
  allow-list has read it through (torch's globals as placeholders) and met no other global.
  torch's own ``weights_only`` unpickler is pure Python and about ten times slower, which for
  a multi-GB file means tens of minutes. It holds ``meta_archs`` (the 15,625 arch strings, index = position) and
  ``arch2infos`` ``{index: {'less': <12-epoch>, 'full': <200-epoch>}}``.
* NATS-Bench ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` (one bz2-compressed pickle): the same dict,
  except that each architecture's entry is keyed by the training budget ``'12'`` / ``'200'``.
* the NATS-Bench ``NATS-tss-v1_0-3ffb9-simple/`` folder: ``meta.pickle.pbz2`` (a dict with
  ``meta_archs``) and one ``{index:06d}.pickle.pbz2`` per architecture holding its
  ``{'12': ..., '200': ...}``.

The pickles go through :func:`nasheur.safe_pickle.safe_load` with an allow-list of
``collections.OrderedDict``, ``set``/``frozenset``, the latin-1 bytes stand-in and numpy
scalars/arrays; any other global is refused (never imported or called) with
:class:`~nasheur.safe_pickle.UnsafePickleError` naming the file.

Only the 200-epoch entry is used (``'full'``, or ``'200'``), never the 12-epoch one; an entry
that does not say 200 is refused. It is an ``ArchResults`` state dict: ``all_results`` maps
``(dataset, seed)`` to a ``ResultsCount`` state dict whose ``eval_acc1es`` maps names such as
``'ori-test@199'`` and ``'x-valid@199'`` to accuracies in percent, and whose ``epochs`` is the
training budget; ``dataset_seed`` maps each dataset to its seeds.

Ground truth: the mean over seeds of ``eval_acc1es['ori-test@199']`` of dataset ``cifar10``
(metric ``test``, the default), ``eval_acc1es['x-valid@199']`` of dataset ``cifar10-valid``
(metric ``valid``, the default for that dataset), or ``eval_acc1es['ori-test@199']`` of
``cifar10-valid`` (``dataset="cifar10-valid", metric="test"``), stored as fractions. A seed
listed twice in ``dataset_seed`` is refused (its run would count twice), and so is a run's
value below half the dataset's chance level (5% on CIFAR-10): a fraction among percentages.

Assumptions made tolerant because the exact nesting could not be checked against every
release:

* the budget's value may be the ``ArchResults`` state dict itself, or a dict wrapping it one
  level down (any value that has ``all_results``);
* the budget keys may be strings or ints (``'200'`` / ``200``), and ``'full'`` is accepted in the
  NATS files and ``'200'`` in the ``.pth``;
* seeds are those of ``dataset_seed[dataset]`` when present, else every ``(dataset, seed)`` key
  of ``all_results``;
* ``epochs`` is checked where a ``ResultsCount`` has it (it must be 200); the ``@199`` entry must
  exist either way;
* an ``arch_str`` inside the entry, where present, must equal ``meta_archs[index]``.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import gc
import io
import os
import pickle
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasheur.groundtruth.table import (
    FractionAmongPercent,
    GroundTruth,
    GroundTruthError,
    brief,
    chance_floor,
    half_chance_percent,
)
from nasheur.safe_pickle import (
    LATIN1_BYTES_GLOBALS,
    NUMPY_ARRAY_GLOBALS,
    Deferred,
    UnpickledArray,
    UnsafePickleError,
    checking_numpy,
    out_of_memory,
    safe_load,
    torch_refusal,
    torch_save_objects,
    zip_inflation,
)

__all__ = [
    "DATASETS",
    "NB201GroundTruth",
    "load_pbz2",
    "load_pth",
    "read_nats_folder",
    "read_nats_pbz2",
    "read_nb201",
    "read_nb201_pth",
]

DATASETS = ("cifar10", "cifar10-valid")
EPOCHS = 200
# (dataset, metric) -> the eval_acc1es name (before '@<last epoch>')
_EVAL_NAME = {
    ("cifar10", "test"): "ori-test",
    ("cifar10-valid", "valid"): "x-valid",
    ("cifar10-valid", "test"): "ori-test",
}
_DEFAULT_METRIC = {"cifar10": "test", "cifar10-valid": "valid"}
_FULL_KEYS: tuple[Any, ...] = ("full", "200", 200)
_SHORT_KEYS: tuple[Any, ...] = ("less", "12", 12)
META_FILE = "meta.pickle.pbz2"

_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_ARRAY_GLOBALS,
    **LATIN1_BYTES_GLOBALS,  # bytes at pickle protocol <= 2 (torch.save writes protocol 2)
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,  # sets at protocol <= 3
    ("builtins", "frozenset"): frozenset,
    # protocol 2 spells builtins "__builtin__"; find_class sees the raw name
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


def resolve_protocol(dataset: str | None, metric: str | None) -> tuple[str, str, str]:
    """``(dataset, metric, eval name)``; defaults: ``cifar10`` and the dataset's own metric."""
    dataset = "cifar10" if dataset is None else dataset
    if dataset not in DATASETS:
        raise GroundTruthError(
            f"NAS-Bench-201 dataset {brief(dataset)} is not supported; one of {', '.join(DATASETS)}"
        )
    metric = _DEFAULT_METRIC[dataset] if metric is None else metric
    name = _EVAL_NAME.get((dataset, metric))
    if name is None:
        ok = ", ".join(f"{d}/{m}" for d, m in _EVAL_NAME)
        raise GroundTruthError(
            f"NAS-Bench-201 has no metric {brief(metric)} for dataset {brief(dataset)} (supported "
            f"dataset/metric pairs: {ok})"
        )
    return dataset, metric, name


# --------------------------------------------------------------------------------------------
# loading the containers


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Unpickling millions of small dicts is several times faster without the cyclic GC."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_NOT_PLAIN = object()


def _load_pth_plain(path: str | os.PathLike[str]) -> Any:
    """The object of a ``torch.save`` file that holds no tensors, through the allow-list.

    torch's ``weights_only`` unpickler is written in Python and takes minutes per GB; a file
    of plain dicts and numbers (what the NAS-Bench-201 files are) is read here with the C
    unpickler under the same kind of allow-list instead. Returns ``_NOT_PLAIN`` when the file
    names torch's globals (a tensor's): the caller then uses ``torch.load(weights_only=True)``,
    on a file whose every other global the allow-list has read and allowed, torch's loading as
    placeholders here: torch's own list takes some that no file should (``bytearray(n)``
    allocates n bytes the file does not hold). Raises :class:`UnsafePickleError` for any such
    global and :class:`GroundTruthError` for a file the allow-list cannot read through (never
    left to torch.load, whose reader is another). Nothing is executed. The caller has refused
    compressed zip entries already (``zip_inflation``).
    """
    deferred = Deferred("torch")
    try:
        objs = torch_save_objects(path, _PICKLE_GLOBALS, defer=deferred)
    except (UnsafePickleError, FileNotFoundError):
        raise
    except Exception as exc:  # a damaged zip or pickle, not a torch.save file
        raise GroundTruthError(
            f"{path}: not a readable torch.save file (corrupt: {type(exc).__name__}: {exc})"
        ) from None
    if len(objs) != 1 or deferred.seen:  # tensors (or a zip of two objects): torch.load's
        return _NOT_PLAIN
    return objs[0]


def load_pth(path: str | os.PathLike[str]) -> Any:
    """A ``torch.save`` file, never with a plain unpickler.

    Plain data (dicts, lists, numbers, strings, numpy scalars/arrays) is read through the
    allow-list (:func:`_load_pth_plain`); anything else goes to ``torch.load(weights_only=True,
    map_location="cpu")`` with numpy scalars/arrays allowed. A file that asks for any other
    global raises :class:`UnsafePickleError` naming it; nothing in it is executed.
    """
    # before either reader: both would inflate a compressed entry whatever its size
    packed = zip_inflation(path)
    if packed:
        raise UnsafePickleError(
            f"{path}: refused, not as torch.save writes it ({packed}); nothing in it was read"
        )
    with _gc_paused():
        obj = _load_pth_plain(path)
    if obj is not _NOT_PLAIN:
        return obj

    import torch

    try:
        with (
            _gc_paused(),
            checking_numpy(str(path)),
            torch.serialization.safe_globals(_torch_numpy_globals()),
        ):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except MemoryError:
        raise out_of_memory(str(path)) from None
    except UnsafePickleError as exc:  # from a numpy stand-in, or checking_numpy
        if str(exc).startswith(f"{path}:"):
            raise
        raise UnsafePickleError(f"{path}: {exc}") from None
    except pickle.UnpicklingError as exc:
        detail = torch_refusal(exc)
        if detail.startswith("Unsupported operand"):  # an opcode torch's reader lacks
            raise GroundTruthError(  # damage
                f"{path}: not a readable torch.save file (corrupt pickle: {detail})"
            ) from None
        raise UnsafePickleError(
            f"{path}: refused by torch.load(weights_only=True): {detail} (nothing in it was "
            "executed; nasheur never loads benchmark files with weights_only=False)"
        ) from None
    except Exception as exc:  # a damaged zip or stream (torch says RuntimeError, EOFError ...)
        raise GroundTruthError(
            f"{path}: not a readable torch.save file ({type(exc).__name__}: {exc})"
        ) from None


# torch's allow-list serves two ends: the names a pickle may look up, and the types whose
# instances it may BUILD (or NEWOBJ). The types below must be BUILT (a dtype made by the
# `numpy.dtype` stand-in, an array made by `_reconstruct`) but never looked up: under their
# own names a file could make one directly, past the stand-ins' checks (a dtype with fields
# at any offset, read out of bounds). So they go in under a name no file can know.
_BUILD_ONLY = f"nasheur-build-only-{secrets.token_hex(16)}"


def _torch_numpy_globals() -> list[Any]:
    allowed: list[Any] = []
    for (module, name), obj in NUMPY_ARRAY_GLOBALS.items():
        if isinstance(obj, type) or callable(obj):
            allowed.append((obj, f"{module}.{name}"))
    # every plain dtype's class (the stand-ins and checking_numpy refuse a dtype such a
    # BUILD altered), and what _reconstruct gives, whose BUILD checks the state
    for i, cls in enumerate([*(type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSU"), UnpickledArray]):
        allowed.append((cls, f"{_BUILD_ONLY}.{i}"))
    # b"" at protocol 2 (an empty array's data); torch reads "__builtin__" as "builtins"
    allowed.append((LATIN1_BYTES_GLOBALS[("__builtin__", "bytes")], "builtins.bytes"))
    return allowed


# A bz2 stream may inflate a millionfold (a "bomb" of a few hundred bytes asks for gigabytes
# before the unpickler sees a byte): a stream that yields more than BZ2_RATIO times its file,
# and more than BZ2_FLOOR bytes, is refused as it is read. Pickled benchmark data compresses
# a few times over; a NATS-Bench file stays far below both bounds.
BZ2_RATIO = 100
BZ2_FLOOR = 1 << 30
_CHUNK = 1 << 22  # the most decompressed per read, so that the count stops a bomb early


class _BoundedStream(io.RawIOBase):
    """The decompressed bytes of a bz2 file, refused once they pass `limit`."""

    def __init__(self, inner: bz2.BZ2File, limit: int, source: str) -> None:
        super().__init__()
        self._inner, self._limit, self._source, self._total = inner, limit, source, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")[:_CHUNK]
        n = self._inner.readinto(view)
        self._total += n
        if self._total > self._limit:
            raise UnsafePickleError(
                f"{self._source}: its bz2 stream inflates beyond {self._limit:,} bytes "
                f"({BZ2_RATIO} times the file, or {BZ2_FLOOR:,}): not a benchmark pickle "
                "(a decompression bomb?)"
            )
        return n


def load_pbz2(path: str | os.PathLike[str]) -> Any:
    """Unpickle a bz2-compressed pickle through the allow-list (``UnsafePickleError`` else),
    its decompressed size bounded (:data:`BZ2_RATIO`, :data:`BZ2_FLOOR`)."""
    limit = max(BZ2_FLOOR, BZ2_RATIO * os.path.getsize(path))
    try:
        with bz2.open(path, "rb") as f, _gc_paused():
            stream = io.BufferedReader(_BoundedStream(f, limit, str(path)), 1 << 20)
            return safe_load(stream, _PICKLE_GLOBALS, source=str(path))
    except (UnsafePickleError, FileNotFoundError):
        raise
    except Exception as exc:  # bad bz2 data, or a damaged pickle inside (UnpicklingError ...)
        raise GroundTruthError(
            f"{path}: not a readable bz2-compressed pickle ({type(exc).__name__}: {exc})"
        ) from None


# --------------------------------------------------------------------------------------------
# the 200-epoch entry of one architecture


def _find_arch_results(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        if "all_results" in value:
            return value
        for inner in value.values():
            if isinstance(inner, Mapping) and "all_results" in inner:
                return inner
    return None


def _full_entry(infos: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(infos, Mapping):
        raise GroundTruthError(f"{where}: expected a dict of training budgets, got {type(infos)}")
    for key in _FULL_KEYS:
        if key in infos:
            found = _find_arch_results(infos[key])
            if found is None:
                raise GroundTruthError(
                    f"{where}: the {brief(key)} entry has no 'all_results' (not an ArchResults "
                    "state dict)"
                )
            return found
    only_short = [k for k in infos if k in _SHORT_KEYS]
    hint = " (only the 12-epoch entry is there, which is never used)" if only_short else ""
    raise GroundTruthError(
        f"{where}: no 200-epoch entry ('full' or '200'); keys: {sorted(map(str, infos))}{hint}"
    )


def _seeds_of(results: Mapping[str, Any], dataset: str, where: str) -> list[Any]:
    all_results = results["all_results"]
    if not isinstance(all_results, Mapping):
        raise GroundTruthError(f"{where}: 'all_results' is not a dict")
    listed = results.get("dataset_seed")
    if isinstance(listed, Mapping) and dataset in listed:
        if not isinstance(listed[dataset], (list, tuple, set, frozenset)):
            raise GroundTruthError(
                f"{where}: dataset_seed[{brief(dataset)}] = {brief(listed[dataset])} is not a list of seeds"
            )
        seeds = list(listed[dataset])
        seen: set[Any] = set()
        for seed in seeds:  # an unhashable seed raises TypeError: a malformed file (convert)
            if seed in seen:  # its run would be averaged in twice
                raise GroundTruthError(
                    f"{where}: dataset_seed[{brief(dataset)}] = {brief(listed[dataset])} lists "
                    f"seed {brief(seed)} twice"
                )
            seen.add(seed)
    else:
        seeds = [
            k[1]
            for k in all_results
            if isinstance(k, (tuple, list)) and len(k) == 2 and k[0] == dataset
        ]
    if not seeds:
        have = sorted(
            {str(k[0]) for k in all_results if isinstance(k, (tuple, list)) and len(k) == 2}
        )
        raise GroundTruthError(
            f"{where}: no results for dataset {brief(dataset)} (datasets: {', '.join(have)})"
        )
    return seeds


def _number(kind: type, value: Any, what: str) -> Any:
    """`value` as `kind` (int or float), or a GroundTruthError naming ``what``.

    Only numbers pass: the benchmark stores floats and ints, so a bool or a text ("93.5")
    is a damaged or foreign file, not a value to convert; an int must be whole."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise GroundTruthError(f"{what} = {brief(value)} is not a number")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise GroundTruthError(f"{what} = {brief(value)} is not a number") from None
    if kind is int and number != value:
        raise GroundTruthError(f"{what} = {brief(value)} is not a whole number")
    return number


def _arch_accuracy(
    results: Mapping[str, Any],
    dataset: str,
    eval_name: str,
    where: str,
    chance: FractionAmongPercent | None = None,
) -> tuple[float, list[Any]]:
    """Mean accuracy (percent) over seeds and the seeds used; each run's value is shown to
    `chance` (a run in fractions among percent ones would drag the mean down unseen)."""
    all_results = results["all_results"]
    seeds = _seeds_of(results, dataset, where)
    values = []
    for seed in seeds:
        run = all_results.get((dataset, seed))
        if run is None:
            raise GroundTruthError(
                f"{where}: dataset_seed lists seed {seed} of {brief(dataset)}, "
                "but all_results has no such run"
            )
        here = f"{where}, {dataset} seed {seed}"
        if not isinstance(run, Mapping):
            raise GroundTruthError(f"{here}: the run is not a ResultsCount state dict")
        epochs = run.get("epochs")
        if epochs is not None:
            epochs = _number(int, epochs, f"{here}: epochs")
            if epochs != EPOCHS:
                raise GroundTruthError(
                    f"{here}: trained for {epochs} epochs, not {EPOCHS} (a 12-epoch entry?)"
                )
        last = EPOCHS - 1
        evals = run.get("eval_acc1es")
        key = f"{eval_name}@{last}"
        if not isinstance(evals, Mapping) or key not in evals:
            have = sorted(evals, key=str)[:8] if isinstance(evals, Mapping) else []
            raise GroundTruthError(f"{here}: no eval_acc1es[{brief(key)}] (has {have} ...)")
        v = _number(float, evals[key], f"{here}: eval_acc1es[{brief(key)}]")
        if not 0.0 <= v <= 100.0:
            raise GroundTruthError(
                f"{here}: eval_acc1es[{brief(key)}] = {brief(v)} is not a percentage"
            )
        if chance is not None:
            chance.see(v, f"{here}: eval_acc1es[{brief(key)}]")
        values.append(v)
    return float(np.mean(values)), seeds


# --------------------------------------------------------------------------------------------
# ground truth


@dataclass(frozen=True, eq=False)
class NB201GroundTruth:
    """Ground truth plus the number of seeds averaged per architecture (aligned with keys)."""

    gt: GroundTruth
    seeds: np.ndarray  # int64: runs averaged per architecture
    seed_values: tuple[Any, ...]  # every seed that occurs, sorted


def _build(
    source: str,
    meta_archs: Sequence[str],
    entries: Iterator[tuple[int, Any]],
    *,
    dataset: str | None,
    metric: str | None,
    benchmark: str,
) -> NB201GroundTruth:
    dataset, metric, eval_name = resolve_protocol(dataset, metric)
    from nasheur.spaces.nb201 import parse

    n = len(meta_archs)
    acc = np.full(n, np.nan)
    counts = np.zeros(n, dtype=np.int64)
    seen_seeds: set[Any] = set()
    floor = half_chance_percent(dataset)
    chance = chance_floor(dataset, floor) if floor is not None else None
    for index, infos in entries:
        where = f"{source}: architecture {index}"
        if not 0 <= index < n:
            raise GroundTruthError(f"{where}: index outside meta_archs (0..{n - 1})")
        results = _full_entry(infos, where)
        arch_str = results.get("arch_str")
        if arch_str is not None and arch_str != meta_archs[index]:
            raise GroundTruthError(
                f"{where}: arch_str {brief(arch_str)} differs from meta_archs[{index}] "
                f"{brief(meta_archs[index])}"
            )
        mean, seeds = _arch_accuracy(results, dataset, eval_name, where, chance)
        acc[index] = mean / 100.0
        counts[index] = len(seeds)
        seen_seeds.update(seeds)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise GroundTruthError(
            f"{source}: {missing.size} of {n} architectures have no results "
            f"(first: index {int(missing[0])})"
        )
    if acc.max() <= 0.01:  # even the 341 cells without a path score 10%: not percent
        raise GroundTruthError(
            f"{source}: every eval_acc1es[{eval_name}@{EPOCHS - 1}] is at most 1: these look "
            "like fractions, but NAS-Bench-201 stores accuracies in percent (this file is not "
            "as it was released)"
        )
    if chance is not None:  # after the whole-file check: its message is the better one
        chance.check()
    for i, arch in enumerate(meta_archs):
        try:
            parse(arch)
        except ValueError as exc:
            raise GroundTruthError(f"{source}: meta_archs[{i}]: {exc}") from None
    lo, hi = int(counts.min()), int(counts.max())
    seed_values = tuple(sorted(seen_seeds, key=str))
    meta = {
        "benchmark": benchmark,
        "space": "nb201",
        "dataset": dataset,
        "metric": metric,
        "split": f"eval_acc1es[{eval_name}@{EPOCHS - 1}]",
        "epochs": str(EPOCHS),
        "seeds": ",".join(map(str, seed_values)),
        "seeds_per_arch": str(lo) if lo == hi else f"{lo}-{hi} (mean {counts.mean():.4f})",
    }
    gt = GroundTruth(keys=tuple(meta_archs), acc=acc, source=source, meta=meta)
    return NB201GroundTruth(gt=gt, seeds=counts, seed_values=seed_values)


def _meta_archs(obj: Any, source: str) -> list[str]:
    if not isinstance(obj, Mapping) or "meta_archs" not in obj:
        raise GroundTruthError(f"{source}: not a NAS-Bench-201/NATS-Bench file (no 'meta_archs')")
    archs = obj["meta_archs"]
    if not isinstance(archs, Sequence) or not all(isinstance(a, str) for a in archs):
        raise GroundTruthError(f"{source}: 'meta_archs' is not a list of arch strings")
    if not archs:
        raise GroundTruthError(f"{source}: 'meta_archs' is empty")
    return list(archs)


def _arch_index(key: Any) -> int | None:
    """An arch2infos key as an architecture index: an int (the files' own keys) or its
    decimal digits; None for anything else, a float or a bool among them (``int(1.9)`` would
    quietly read architecture 1)."""
    if isinstance(key, str):
        text = key.strip()
        return int(text) if text.isascii() and text.isdigit() else None
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return int(key)
    return None


def _from_dict(
    obj: Any, source: str, *, dataset: str | None, metric: str | None, benchmark: str
) -> NB201GroundTruth:
    archs = _meta_archs(obj, source)
    infos = obj.get("arch2infos")
    if not isinstance(infos, Mapping):
        hint = (
            " (a -simple folder's meta file? pass the folder itself)"
            if Path(source).name == META_FILE
            else ""
        )
        raise GroundTruthError(f"{source}: no 'arch2infos' dict{hint}")

    def entries() -> Iterator[tuple[int, Any]]:
        keys: dict[int, Any] = {}
        for key, value in infos.items():
            index = _arch_index(key)
            if index is None:
                raise GroundTruthError(f"{source}: arch2infos key {brief(key)} is not an index")
            if index in keys:  # e.g. 0 and "0": neither may silently win
                raise GroundTruthError(
                    f"{source}: arch2infos has two entries for architecture {index} "
                    f"(keys {brief(keys[index])} and {brief(key)})"
                )
            keys[index] = key
            yield index, value

    return _build(source, archs, entries(), dataset=dataset, metric=metric, benchmark=benchmark)


def read_nb201_pth(
    path: str | os.PathLike[str], *, dataset: str | None = None, metric: str | None = None
) -> NB201GroundTruth:
    """Ground truth from ``NAS-Bench-201-v1_*.pth``."""
    return _from_dict(load_pth(path), str(path), dataset=dataset, metric=metric, benchmark="nb201")


def read_nats_pbz2(
    path: str | os.PathLike[str], *, dataset: str | None = None, metric: str | None = None
) -> NB201GroundTruth:
    """Ground truth from the single-file NATS-Bench topology pickle (``*.pickle.pbz2``)."""
    return _from_dict(
        load_pbz2(path), str(path), dataset=dataset, metric=metric, benchmark="nats-tss"
    )


def read_nats_folder(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NB201GroundTruth:
    """Ground truth from a NATS-Bench ``-simple`` folder (``meta.pickle.pbz2`` + per-arch files)."""
    folder = Path(path)
    source = str(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise GroundTruthError(f"{source}: no {META_FILE} in this folder")
    archs = _meta_archs(load_pbz2(meta_path), str(meta_path))

    def entries() -> Iterator[tuple[int, Any]]:
        for index in range(len(archs)):
            file = folder / f"{index:06d}.pickle.pbz2"
            if not file.is_file():
                raise GroundTruthError(f"{source}: {file.name} (architecture {index}) is missing")
            yield index, load_pbz2(file)
            if progress is not None:
                progress(index + 1, len(archs))

    return _build(source, archs, entries(), dataset=dataset, metric=metric, benchmark="nats-tss")


def read_nb201(
    path: str | os.PathLike[str], *, dataset: str | None = None, metric: str | None = None
) -> NB201GroundTruth:
    """Any of the three containers, picked by the path (folder, ``.pth`` or ``.pbz2``)."""
    p = Path(path)
    if p.is_dir():
        return read_nats_folder(p, dataset=dataset, metric=metric)
    suffix = p.suffix.lower()  # as detect_format picks the format: ``.PTH`` is a .pth
    if suffix == ".pth":
        return read_nb201_pth(p, dataset=dataset, metric=metric)
    if suffix == ".pbz2":
        return read_nats_pbz2(p, dataset=dataset, metric=metric)
    raise GroundTruthError(
        f"{path}: not a NAS-Bench-201 .pth, a NATS-Bench .pickle.pbz2 or a -simple folder"
    )
