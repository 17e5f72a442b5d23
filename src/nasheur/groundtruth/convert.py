"""Official benchmark files -> the project's ground-truth table, and a cache of that table.

Formats (detected from the name, else from the first bytes):

=============  ===========================================  ==========  ===========
format         file                                         benchmark   space
=============  ===========================================  ==========  ===========
``nb101``      ``nasbench_only108.tfrecord``,               nb101       nb101
               ``nasbench_full.tfrecord``
``nb201-pth``  ``NAS-Bench-201-v1_0-e61699.pth``,           nb201       nb201
               ``NAS-Bench-201-v1_1-096897.pth``
``nats-pbz2``  ``NATS-tss-v1_0-3ffb9*.pickle.pbz2``         nats-tss    nb201
``nats-dir``   a ``NATS-tss-v1_0-3ffb9-simple/`` folder     nats-tss    nb201
               (with ``meta.pickle.pbz2``)
``nds-json``   NDS ``DARTS.json``                           nds-darts   darts_nds
``table``      a CSV table (:mod:`nasheur.groundtruth.table`)
=============  ===========================================  ==========  ===========

Protocol options: NAS-Bench-101 takes ``metric`` ``test`` (default) or ``valid`` (dataset
``cifar10`` only); NAS-Bench-201 / NATS take ``dataset`` ``cifar10`` (default, metric ``test``)
or ``cifar10-valid`` (metric ``valid`` by default, or ``test``); NDS has ``cifar10``/``test``
only. A CSV table in the NB201 layout maps ``metric`` to its column (``test`` -> ``test_acc``,
``valid`` -> ``valid_acc``, the default); a table in the project's layout must agree with the
``dataset`` / ``metric`` its header names.

The written table's header records ``source`` (the file's name), ``sha256`` (of the file; of a
folder: the sha256 of the lines ``<relative posix name>\\0<file sha256>\\n`` over its regular
files in sorted name order), ``source_bytes``, ``benchmark``, ``space``, ``dataset``, ``metric``,
``split`` (the exact field read), ``epochs``, and the seeds or repeats averaged.

:func:`load_ground_truth` converts an official file once into a cache table whose name comes
from the source's name, size and modification time (a folder's: each file's name, size and
modification time; never from a checksum, so a multi-GB file is not re-hashed to find its
cache) and the protocol; later calls read the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasheur.groundtruth.table import (
    GroundTruth,
    GroundTruthError,
    brief,
    declared_space,
    read_table,
    write_table,
)
from nasheur.safe_pickle import UnsafePickleError

__all__ = [
    "FORMATS",
    "cache_path",
    "convert_file",
    "default_output",
    "detect_format",
    "load_ground_truth",
    "read_source",
    "source_changed",
    "source_fingerprint",
    "source_sha256",
]

FORMATS = ("nb101", "nb201-pth", "nats-pbz2", "nats-dir", "nds-json", "table")
CACHE_DIRNAME = ".nasheur-gt-cache"
# part of every cache table's name: raise it whenever a reader's output changes (a fix of what
# a benchmark file yields), so that no cache an earlier reader wrote is read again
CONVERTER_VERSION = 1
NATS_META = "meta.pickle.pbz2"
_CHUNK = 1 << 20

_BY_SUFFIX = {
    ".tfrecord": "nb101",
    ".pth": "nb201-pth",
    ".pbz2": "nats-pbz2",
    ".json": "nds-json",
    ".csv": "table",
}


# --------------------------------------------------------------------------------------------
# format detection


def _looks_like_tfrecord(head: bytes) -> bool:
    if len(head) < 12:
        return False
    from nasheur.groundtruth.nb101 import masked_crc32c

    return masked_crc32c(head[:8]) == int.from_bytes(head[8:12], "little")


# the search space of each benchmark format's architectures
_SPACE_OF_FORMAT = {
    "nb101": "nb101",
    "nb201-pth": "nb201",
    "nats-pbz2": "nb201",
    "nats-dir": "nb201",
    "nds-json": "darts_nds",
}


def space_of_file(path: str | os.PathLike[str]) -> str | None:
    """The search space whose architectures a ground-truth file holds, known without reading
    it through: from a benchmark file's format, or from a table's head
    (:func:`~nasheur.groundtruth.table.declared_space`); None when a table does not say."""
    fmt = detect_format(path)
    return declared_space(path) if fmt == "table" else _SPACE_OF_FORMAT[fmt]


def check_protocol(path: str | os.PathLike[str], dataset: str | None, metric: str | None) -> None:
    """Raise :class:`GroundTruthError` where a benchmark file has no such dataset or metric,
    known from its format alone (a table's own header is checked when it is read)."""
    fmt = detect_format(path)
    if fmt != "table":
        _protocol(fmt, dataset, metric, None)


def detect_format(path: str | os.PathLike[str]) -> str:
    """One of :data:`FORMATS`; :class:`GroundTruthError` when none fits."""
    p = Path(path)
    if p.is_dir():
        if (p / NATS_META).is_file():
            return "nats-dir"
        raise GroundTruthError(
            f"{p}: a folder, but not a NATS-Bench -simple folder (no {NATS_META} in it)"
        )
    if not p.exists():
        raise FileNotFoundError(f"ground-truth file not found: {p}")
    fmt = _BY_SUFFIX.get(p.suffix.lower())
    if fmt is not None:
        return fmt
    with open(p, "rb") as f:
        head = f.read(64)
    if head.startswith(b"BZh"):
        return "nats-pbz2"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "nb201-pth"  # torch's zip container, or a legacy torch.save pickle
    if _looks_like_tfrecord(head):
        return "nb101"
    text = head.lstrip()
    if text[:1] in (b"[", b"{"):
        return "nds-json"
    if head and all(b in b"\t\r\n" or 32 <= b < 127 for b in head):
        return "table"
    raise GroundTruthError(
        f"{p}: unknown ground-truth format; expected a .tfrecord (NAS-Bench-101), .pth "
        "(NAS-Bench-201), .pickle.pbz2 or -simple folder (NATS-Bench), .json (NDS) or .csv table"
    )


# --------------------------------------------------------------------------------------------
# protocol options per format


@dataclass(frozen=True)
class _Protocol:
    dataset: str | None
    metric: str | None
    tag: str  # goes into file names


def _protocol(fmt: str, dataset: str | None, metric: str | None, column: str | None) -> _Protocol:
    if fmt == "nb101":
        if dataset not in (None, "cifar10"):
            raise GroundTruthError(f"NAS-Bench-101 has dataset cifar10 only, not {dataset!r}")
        metric = "test" if metric is None else metric
        if metric not in ("test", "valid"):
            raise GroundTruthError(f"NAS-Bench-101 metric {metric!r}: one of test, valid")
        return _Protocol("cifar10", metric, metric)
    if fmt in ("nb201-pth", "nats-pbz2", "nats-dir"):
        from nasheur.groundtruth.nb201 import _DEFAULT_METRIC, resolve_protocol

        dataset, metric, _ = resolve_protocol(dataset, metric)
        tag = dataset if metric == _DEFAULT_METRIC[dataset] else f"{dataset}-{metric}"
        return _Protocol(dataset, metric, tag)
    if fmt == "nds-json":
        if dataset not in (None, "cifar10"):
            raise GroundTruthError(f"NDS DARTS has dataset cifar10 only, not {dataset!r}")
        if metric not in (None, "test"):
            raise GroundTruthError(f"NDS DARTS records test errors only, not metric {metric!r}")
        return _Protocol("cifar10", "test", "test")
    return _Protocol(dataset, metric, column or metric or "table")


# --------------------------------------------------------------------------------------------
# checksums and stamps


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[tuple[str, Path]]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != CACHE_DIRNAME]
        for name in names:
            full = Path(root, name)
            if full.is_file():
                files.append((full.relative_to(folder).as_posix(), full))
    files.sort()
    return files


def source_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a folder (see the module docstring)."""
    p = Path(path)
    if not p.is_dir():
        return _file_sha256(p)
    h = hashlib.sha256()
    for rel, full in _folder_files(p):
        h.update(f"{rel}\0{_file_sha256(full)}\n".encode())
    return h.hexdigest()


def source_fingerprint(
    path: str | os.PathLike[str], meta: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What a job records of the ground truth it was evaluated against: the file's absolute
    path, a stamp from stat calls and its sha256 (:func:`source_changed` compares them). A
    converted benchmark's table `meta` has the sha256 already (its cache is keyed by the
    stamp): the file is not read again for it."""
    p = Path(os.path.abspath(path))
    known = (meta or {}).get("sha256") if detect_format(p) != "table" else None
    return {"path": str(p), "stamp": _stamp(p)[1], "sha256": known or source_sha256(p)}


def source_changed(recorded: Any) -> bool:
    """Whether the ground truth that a record's fingerprint describes has changed since: the
    stamp first (stat calls only), and where it differs (a copy, a touch) the contents. A
    record without a fingerprint (an earlier version's) counts as unchanged."""
    if not isinstance(recorded, dict) or not recorded.get("path"):
        return False
    path = recorded["path"]
    if not isinstance(path, str) or "\0" in path:  # a damaged record: the job names the key
        return True
    p = Path(path)
    try:
        stamp = _stamp(p)[1]
        return stamp != recorded.get("stamp") and _sha256_at(p, stamp) != recorded.get("sha256")
    except OSError:  # gone or unreadable: the job says so when it runs
        return True


# sha256 of a source by (path, stamp), in this process: a sweep checks every record of a
# touched (or copied) benchmark against it, and reads the file once, not once per record
_SHA256_AT: dict[tuple[str, str], str] = {}


def _sha256_at(p: Path, stamp: str) -> str:
    key = (str(p.resolve()), stamp)
    if key not in _SHA256_AT:
        _SHA256_AT[key] = source_sha256(p)
    return _SHA256_AT[key]


def fingerprint_of(record: dict[str, Any]) -> Any:
    """The ground-truth fingerprint a job record holds (None where it holds none, or a
    hand-edited ``ground_truth`` that is not an object)."""
    ground_truth = record.get("ground_truth")
    return ground_truth.get("fingerprint") if isinstance(ground_truth, dict) else None


def _stamp(p: Path) -> tuple[int, str]:
    """(bytes, a short text that changes when the source changes) from stat calls only."""
    if not p.is_dir():
        st = p.stat()
        return st.st_size, f"{st.st_size}-{st.st_mtime_ns}"
    # every file's name, size and mtime (the -simple folder is flat): a file replaced by
    # one of the same size whose mtime is older than the newest (`cp -p` from a backup)
    # still changes the stamp, as it would for a single file
    with os.scandir(p) as it:
        files = sorted((entry.name, entry.stat()) for entry in it if entry.is_file())
    h = hashlib.sha256()
    for name, st in files:
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    size = sum(st.st_size for _, st in files)
    return size, f"{len(files)}f-{size}-{h.hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------
# reading any source into a GroundTruth with a full header


def _read_format(
    p: Path,
    fmt: str,
    proto: _Protocol,
    dataset: str | None,
    metric: str | None,
    column: str | None,
    unit: str,
) -> tuple[GroundTruth, str | None]:
    """The table a file of format `fmt` holds, and its SHA-256 where reading computed it."""
    sha = None
    if fmt == "nb101":
        from nasheur.groundtruth.nb101 import read_nb101

        res = read_nb101(p, metric=proto.metric or "test", compute_sha256=True)
        gt, sha = res.gt, res.sha256
    elif fmt in ("nb201-pth", "nats-pbz2", "nats-dir"):
        from nasheur.groundtruth import nb201

        reader = {
            "nb201-pth": nb201.read_nb201_pth,
            "nats-pbz2": nb201.read_nats_pbz2,
            "nats-dir": nb201.read_nats_folder,
        }[fmt]
        gt = reader(p, dataset=proto.dataset, metric=proto.metric).gt
    elif fmt == "nds-json":
        from nasheur.groundtruth.nds import read_nds

        gt = read_nds(p).gt
    elif fmt == "table":
        gt = read_table(p, column=column, metric=metric, unit=unit)
        _check_table_protocol(gt, dataset, metric)
    else:
        raise ValueError(f"unknown format {brief(fmt)}; one of {', '.join(FORMATS)}")
    return gt, sha


# A crafted or damaged file can break a reader where its own checks did not look: a number
# too large for an int, a list where a key belongs, nesting deeper than Python recurses, bytes
# that are not UTF-8. These become a GroundTruthError that names the file.
MALFORMED = (
    ArithmeticError,
    LookupError,
    TypeError,
    AttributeError,
    RecursionError,
    UnicodeError,
    EOFError,
    struct.error,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def _said(err: BaseException) -> str:
    """An error's message, cut short; never ``str(err)``, which for a KeyError of a crafted key
    is the key's whole repr."""
    if not err.args:
        return ""
    first = err.args[0]
    return first[:200] if isinstance(first, str) else brief(first)


def _table_options_only(p: Path, fmt: str, column: str | None, unit: str, named: str) -> None:
    """Refuse a column or unit for a benchmark file (a table's options), `named` as given."""
    if fmt != "table" and (column is not None or unit != "auto"):
        raise GroundTruthError(
            f"{p}: {named} apply to CSV tables only; this is a {fmt} benchmark file (its "
            "accuracies, converted to fractions, are picked by dataset and metric)"
        )


def read_source(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    column: str | None = None,
    unit: str = "auto",
    fmt: str | None = None,
) -> GroundTruth:
    """Read any supported file; the result's ``meta`` is the header a converted table gets."""
    p = Path(path)
    fmt = detect_format(p) if fmt is None else fmt
    # a benchmark's readers take neither: convert would write its default accuracy as if the
    # column (or unit) asked for had been read
    _table_options_only(p, fmt, column, unit, "--column and --unit")
    proto = _protocol(fmt, dataset, metric, column)
    size, _ = _stamp(p)
    try:
        gt, sha = _read_format(p, fmt, proto, dataset, metric, column, unit)
    except (GroundTruthError, UnsafePickleError):
        raise  # the readers' own checks: they name the file and what is wrong
    except (*MALFORMED, ValueError) as err:  # ValueError: e.g. a crafted object's unpacking
        raise GroundTruthError(
            f"{p}: not a well-formed {fmt} file ({type(err).__name__}: {_said(err)})"
        ) from err
    if sha is None:
        sha = source_sha256(p)

    meta: dict[str, str] = {"source": p.name, "sha256": sha, "source_bytes": str(size)}
    if fmt == "table":
        previous = {k: v for k, v in gt.meta.items() if k != "unit"}
        for name in ("source", "sha256", "source_bytes"):
            if name in previous:
                meta[f"upstream_{name}"] = previous.pop(name)
        meta.update(previous)
    else:
        meta.update(gt.meta)
    meta["converter"] = f"nasheur.groundtruth {_version()}"
    return GroundTruth(keys=gt.keys, acc=gt.acc, source=str(p), meta=meta)


def _version() -> str:
    from nasheur import __version__

    return __version__


def _check_table_protocol(gt: GroundTruth, dataset: str | None, metric: str | None) -> None:
    """A table holds one protocol's accuracies: a dataset or metric asked for must be the one
    its header names (the NB201 layout's metric is the column read). One the header does not
    name cannot be applied, and a job would record a protocol its numbers never had."""
    for name, wanted in (("dataset", dataset), ("metric", metric)):
        have = gt.meta.get(name)
        if wanted is None:
            continue
        if have is None:
            raise GroundTruthError(
                f"{gt.source}: {name} {wanted!r} was asked for ({_asked(name)}), but the table "
                f"does not say which {name} its accuracies are of, so it cannot be applied; "
                f"leave the {name} unset, or add a '# {name}: {wanted}' line to the table"
            )
        if have != wanted:
            raise GroundTruthError(
                f"{gt.source}: the table was made for {name} {have!r}, but {name} {wanted!r} "
                f"was asked for ({_asked(name)})"
            )


def _asked(name: str) -> str:
    """Where a job or a user names a protocol option: the config key or convert's flag."""
    return f"ground_truth.{name}=, or convert --{name}"


# --------------------------------------------------------------------------------------------
# conversion to a file


def default_output(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    column: str | None = None,
) -> Path:
    """``<file>.<dataset-or-metric>.gt.csv`` beside the input (a folder: beside the folder)."""
    p = Path(os.path.normpath(path))
    proto = _protocol(detect_format(p), dataset, metric, column)
    return p.with_name(f"{p.name}.{proto.tag}.gt.csv")


def convert_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    dataset: str | None = None,
    metric: str | None = None,
    column: str | None = None,
    unit: str = "auto",
) -> tuple[Path, GroundTruth]:
    """Read ``path`` and write its table to ``out`` (default :func:`default_output`)."""
    target = (
        default_output(path, dataset=dataset, metric=metric, column=column)
        if out is None
        else Path(out)
    )
    if out is None and not _writable_dir(target.parent):  # before a long read
        raise GroundTruthError(
            f"{target.parent}: not writable (its mode bits), so the table cannot go beside "
            "the source; name it with --out <table.csv>"
        )
    _check_not_the_source(Path(path), target)  # before a long read, too
    gt = read_source(path, dataset=dataset, metric=metric, column=column, unit=unit)
    write_table(target, gt.keys, gt.acc, meta=gt.meta)
    # as the cache's table: whoever may read the benchmark file may read its table
    _readable_as(Path(os.path.normpath(path)), target, folder_made=False)
    return target, gt


def _check_not_the_source(source: Path, target: Path) -> None:
    """Refuse an output table that would replace the source file itself (the same path, or
    a link to it) or go inside a source folder (a NATS ``-simple`` folder's files, whose
    checksum and stamp it would change): the download would be lost to its table."""
    same = False
    with contextlib.suppress(OSError):  # no such target (or source): not the same file
        same = os.path.samefile(source, target)
    if same:
        raise GroundTruthError(
            f"{target}: the output table is the source file itself, which writing it would "
            "replace; name another --out <table.csv>"
        )
    if source.is_dir() and target.resolve().is_relative_to(source.resolve()):
        raise GroundTruthError(
            f"{target}: the output table would go inside the source folder {source}; name "
            "one outside it with --out <table.csv>"
        )


# --------------------------------------------------------------------------------------------
# the cache


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nasheur" / "gt"


def _writable_dir(folder: Path) -> bool:
    """Whether ``folder`` exists or can be made, and may be written (its mode bits honoured,
    so that a folder without write bits is left alone even by root)."""

    def may_write(d: Path) -> bool:
        try:
            mode = d.stat().st_mode
        except OSError:
            return False
        return (
            stat.S_ISDIR(mode)
            and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            and os.access(d, os.W_OK | os.X_OK)
        )

    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not may_write(existing):
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return may_write(folder)


def _cache_dirs(p: Path, cache_dir: str | os.PathLike[str] | None) -> list[tuple[Path, bool]]:
    """Candidate folders, in order, with whether their names need the source path's hash."""
    if cache_dir is not None:
        return [(Path(cache_dir), True)]
    return [(p.parent / CACHE_DIRNAME, False), (_user_cache_dir(), True)]


def _cache_name(p: Path, stamp: str, tag: str, with_path: bool) -> str:
    parts = [p.name]
    if with_path:
        parts.append(hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12])
    parts += [stamp, tag, f"v{CONVERTER_VERSION}", "gt.csv"]
    return ".".join(parts)


def cached_table(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The cache table of ``path`` where one exists already, else None (makes no folder)."""
    p = Path(os.path.normpath(path))
    proto = _protocol(detect_format(p), dataset, metric, None)
    _, stamp = _stamp(p)
    for folder, with_path in _cache_dirs(p, cache_dir):
        f = folder / _cache_name(p, stamp, proto.tag, with_path)
        if f.is_file():
            return f
    return None


def cache_path(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where :func:`load_ground_truth` keeps (or would write) the cache of ``path``."""
    found = cached_table(path, dataset=dataset, metric=metric, cache_dir=cache_dir)
    if found is not None:
        return found
    p = Path(os.path.normpath(path))
    proto = _protocol(detect_format(p), dataset, metric, None)
    _, stamp = _stamp(p)
    candidates = _cache_dirs(p, cache_dir)
    for folder, with_path in candidates:
        if _writable_dir(folder):
            return folder / _cache_name(p, stamp, proto.tag, with_path)
    folder, with_path = candidates[-1]
    return folder / _cache_name(p, stamp, proto.tag, with_path)


def load_ground_truth(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    metric: str | None = None,
    column: str | None = None,
    unit: str = "auto",
    validate_key: Callable[[str], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> GroundTruth:
    """Ground truth from a CSV table or an official benchmark file (cached).

    A CSV table is read with :func:`read_table` (``column``, ``metric``, ``unit``,
    ``validate_key``): in the NB201 layout ``metric`` picks the column; when its header names a
    ``dataset`` / ``metric`` they must agree with the ones given. Any other
    supported file is converted once into a cache table (``cache_dir``; default
    ``<file's folder>/.nasheur-gt-cache/``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` +
    ``/nasheur/gt`` when that folder cannot be written), which later calls read. ``column`` and
    ``unit`` apply to CSV tables only. ``validate_key`` checks every key, on the first call too.
    """
    p = Path(os.path.normpath(path))
    fmt = detect_format(p)
    if fmt == "table":
        gt = read_table(p, column=column, metric=metric, unit=unit, validate_key=validate_key)
        _check_table_protocol(gt, dataset, metric)
        return gt
    _table_options_only(p, fmt, column, unit, "ground_truth.column and ground_truth.unit")
    existed = {folder for folder, _ in _cache_dirs(p, cache_dir) if folder.is_dir()}
    target = cache_path(p, dataset=dataset, metric=metric, cache_dir=cache_dir)
    if not target.is_file():
        with _converting(target, made=target.parent not in existed):
            if not target.is_file():  # else converted by another process while this one waited
                gt = read_source(p, dataset=dataset, metric=metric, fmt=fmt)
                try:
                    write_table(target, gt.keys, gt.acc, meta=gt.meta)
                except OSError as exc:
                    return _uncached(gt, p, target, exc, validate_key)
                _readable_as(p, target, folder_made=target.parent not in existed)
    return read_table(target, validate_key=validate_key)


def _readable_as(source: Path, table: Path, *, folder_made: bool) -> None:
    """Whoever may read the benchmark file may read its cache table: the table takes the
    file's read permissions on top of the umask's mode (a group sharing $NASHEUR_DATA, where
    the member who converted it has umask 077), and a cache folder made for it the matching
    read and search permissions. Never removes a permission."""
    with contextlib.suppress(OSError):  # another's folder, a file system without modes
        read = source.stat().st_mode & 0o444
        os.chmod(table, (table.stat().st_mode & 0o7777) | read)
        if folder_made:
            folder = table.parent
            os.chmod(folder, (folder.stat().st_mode & 0o7777) | read | (read >> 2))  # r -> x


@contextlib.contextmanager
def _converting(target: Path, *, made: bool = True) -> Iterator[None]:
    """Hold the conversion into `target` (a lock file beside it), so that processes started
    side by side (the sweeps of one table launched at once, each checking its ground truth
    before it submits) read a benchmark file once: the others wait, then read its table.
    Where no lock file can be made there, each converts as before. The lock file goes again
    afterwards, and so does a cache folder left empty that this call `made` (never a folder
    that was there before, such as the user's ``ground_truth.cache_dir``)."""
    from nasheur.jobguard import exclusive

    lock = target.with_name(f".{target.name}.lock")
    held = contextlib.ExitStack()
    with contextlib.suppress(OSError):
        held.enter_context(exclusive(lock))
    try:
        with held:
            yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        if made:
            with contextlib.suppress(OSError):  # the cache folder made for it, left empty
                target.parent.rmdir()


def _uncached(
    gt: GroundTruth,
    p: Path,
    target: Path,
    exc: OSError,
    validate_key: Callable[[str], None] | None,
) -> GroundTruth:
    """The table read from `p`, whose cache `target` could not be written (`exc`), with its
    keys checked as reading the cache would have checked them."""
    import warnings

    warnings.warn(
        f"could not write the ground-truth cache {target}: {exc}; converting {p} again next time",
        stacklevel=3,
    )
    if validate_key is not None:
        for key in gt.keys:
            try:
                validate_key(key)
            except ValueError as err:
                raise GroundTruthError(f"{p}: key {key!r} rejected: {err}") from err
    return gt
