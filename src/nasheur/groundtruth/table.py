"""Ground-truth accuracies as a plain CSV table (pure numpy + csv; never imports torch).

Two layouts are read:

a) the project's own cache format, written by :func:`write_table`::

       # unit: fraction
       # source: NAS-Bench-201-v1_1-096897.pth
       # sha256: ...
       key,accuracy
       <key>,<accuracy>

   Leading ``# name: value`` lines are metadata. The header must contain ``key`` and the value
   column (``accuracy`` unless ``column=`` names another); other columns are ignored. The unit
   (``percent`` or ``fraction``) comes from the ``# unit:`` line or from ``unit=``.

b) the NAS-Bench-201 table layout ``index,arch_str,valid_acc,test_acc`` (percent), keyed by
   ``arch_str``; the default value column is ``valid_acc`` (``column="test_acc"`` or
   ``metric="test"`` picks the other). The result's ``meta`` records the ``column`` read and,
   for those two, the ``metric``.

Accuracies are stored as float64 fractions in [0, 1].
"""

from __future__ import annotations

import csv
import math
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from nasheur.io import atomic_path

__all__ = ["GroundTruth", "GroundTruthError", "read_table", "write_table"]

UNITS = ("percent", "fraction")

# Half the chance level, in percent, of each dataset's test (or validation) set. A constant
# predictor scores chance on a balanced set (NB201's cells without a path: 10% on the CIFAR-10
# test set, 9.712% on cifar10-valid's slightly imbalanced x-valid split), and training never
# makes a classifier much worse than that; so a percentage below half of it is no accuracy
# but, almost surely, a fraction among percentages. Half leaves room for imbalanced splits.
HALF_CHANCE_PERCENT: Mapping[str, float] = MappingProxyType(
    {
        "cifar10": 100 / 10 / 2,
        "cifar10-valid": 100 / 10 / 2,
        "cifar100": 100 / 100 / 2,
        "imagenet16-120": 100 / 120 / 2,
    }
)


def half_chance_percent(dataset: str | None) -> float | None:
    """Half the chance level (percent) of `dataset` (case-insensitive), None when unknown."""
    if not isinstance(dataset, str):
        return None
    return HALF_CHANCE_PERCENT.get(dataset.strip().lower())


# layout name -> (key column, default value column, header it is recognised by, implied unit)
_OWN_KEY, _OWN_VALUE = "key", "accuracy"
_NB201_HEADER = ("index", "arch_str", "valid_acc", "test_acc")
_NB201_KEY, _NB201_VALUE = "arch_str", "valid_acc"
_NB201_METRIC_COLUMN = {"test": "test_acc", "valid": "valid_acc"}
_ACCEPTED_HEADERS = (
    f"'{_OWN_KEY},{_OWN_VALUE}[,...]' (the project's layout, with a '# unit:' line), "
    f"'{','.join(_NB201_HEADER)}' (NAS-Bench-201 table, percent)"
)


class GroundTruthError(ValueError):
    """A ground-truth file is malformed; the message names the file and line."""


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 2, 80, 80


def brief(value: object) -> str:
    """``repr(value)`` cut short, for a file's values in error messages: a crafted file's
    value can be a structure whose full repr takes gigabytes (a list of itself, nested)."""
    return _BRIEF.repr(value)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Stand-alone accuracy (a fraction in [0, 1]) per architecture key."""

    keys: tuple[str, ...]
    acc: np.ndarray
    source: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(self.keys)
        acc = np.array(self.acc, dtype=np.float64, copy=True).reshape(-1)
        if len(keys) != acc.shape[0]:
            raise ValueError(f"{len(keys)} keys but {acc.shape[0]} accuracies")
        index: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in index:
                raise ValueError(f"duplicate key {brief(k)} in {self.source or 'ground truth'}")
            index[k] = i
        acc.flags.writeable = False
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "acc", acc)
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        object.__setattr__(self, "_index", MappingProxyType(index))

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def index(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(
                f"{brief(key)} has no ground truth in {self.source or 'this table'}"
            ) from None

    def __getitem__(self, key: str) -> float:
        return float(self.acc[self.index(key)])

    def lookup(self, keys: Iterable[str]) -> np.ndarray:
        """Accuracies of ``keys`` in their order (a new float64 array); KeyError if one is absent."""
        idx = np.fromiter((self.index(k) for k in keys), dtype=np.int64)
        return self.acc[idx]


# --------------------------------------------------------------------------------------------
# reading


class FractionAmongPercent:
    """Refuses the first value that, in a file in percent, can only be a fraction: shown
    values one by one (:meth:`see`), it keeps the first that `implausible` says no real one
    is, and refuses it once a value above 1 proves the file is in percent (a fraction never
    exceeds 1). A file whose values are ALL at most 1 is left to its reader's whole-file
    check, whose message (the whole file is in fractions) is the better one; :meth:`check`
    refuses the kept value after that check. `message(where, value)` says what is refused."""

    def __init__(
        self, implausible: Callable[[float], bool], message: Callable[[str, float], str]
    ) -> None:
        self.implausible, self.message = implausible, message
        self._first: tuple[str, float] | None = None
        self._percent_seen = False

    def see(self, value: float, where: str) -> None:
        """`where` names the value: file, row/architecture/run/job and key."""
        if self._first is None and self.implausible(value):
            self._first = (where, value)
        self._percent_seen = self._percent_seen or value > 1.0
        if self._percent_seen and self._first is not None:
            self.check()

    def check(self) -> None:
        if self._first is not None:
            raise GroundTruthError(self.message(*self._first))


def chance_floor(dataset: str, floor: float) -> FractionAmongPercent:
    """Refuses an accuracy in percent below `floor`, half the chance level of `dataset`."""
    return FractionAmongPercent(
        lambda v: v < floor,
        lambda where, v: (
            f"{where} = {v:g}% is below {floor:.4g}%, half the chance level of {dataset} "
            f"({2 * floor:.4g}%, what a constant predictor scores): no classifier scores "
            "that, so it looks like a fraction among percentages"
        ),
    )


def _err(source: str, line: int | None, msg: str) -> GroundTruthError:
    where = f"{source}:{line}" if line is not None else source
    return GroundTruthError(f"{where}: {msg}")


def _parse_meta(text: str) -> tuple[str, str] | None:
    body = text.lstrip("#").strip()
    name, sep, value = body.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        return None
    return name.strip(), value.strip()


def _normalise_unit(value: str, source: str, what: str) -> str:
    unit = value.strip().lower()
    if unit not in UNITS:
        raise GroundTruthError(f"{source}: {what} {brief(value)} is not one of {', '.join(UNITS)}")
    return unit


_LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> list[str]:
    """`text` split at line ends (LF, CRLF, CR) alone: ``str.splitlines`` also splits at form
    feeds, separators and the like, which a quoted key may hold, and would then lose them
    and count the lines after wrong."""
    return _LINE_END.split(text)


def _decode(data: bytes, source: str) -> str:
    """`data` as UTF-8 text (a byte-order mark dropped); bytes that are not UTF-8 raise
    :class:`GroundTruthError` naming the file and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _err(source, line, f"not UTF-8 text (byte {data[exc.start]:#04x})") from None


def declared_space(path: str | os.PathLike[str]) -> str | None:
    """The search space a table says it holds, read from its head alone (a large table is not
    read through): its ``# space:`` line, or ``nb201`` for NAS-Bench-201's own layout; None
    when it does not say."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # the comment lines and the header
    if len(head) == 1 << 16:  # more follows: whole lines only (no character cut in two)
        head = head[: head.rfind(b"\n") + 1]
    for raw in _lines(_decode(head, str(path))):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            parsed = _parse_meta(text)
            if parsed is not None and parsed[0] == "space":
                return parsed[1]
            continue
        header = tuple(h.strip() for h in next(csv.reader([text])))
        return "nb201" if header[: len(_NB201_HEADER)] == _NB201_HEADER else None
    return None


_NB101_HASH = re.compile(r"[0-9a-f]{32}")


def _looks_like(key: str) -> str:
    """A hint at the space whose keys look like `key` ("" where none): a table of another
    benchmark is the likeliest cause of a key the space rejects."""
    if _NB101_HASH.fullmatch(key):
        return " (it looks like an NB101 hash: is this NB101's table?)"
    if key.startswith("|") and key.endswith("|") and "~" in key:
        return " (it looks like an NB201 cell: is this NB201's table?)"
    return ""


def _rows(reader: Any, source: str, header_lineno: int) -> Iterator[list[str]]:
    """The rows of `reader`, each on a line of its own: a quoted field that runs over lines
    (a stray quote, which would swallow the rows up to the next one) or that the csv module
    cannot read is an error naming its lines."""
    done = 0  # lines read before this row
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _err(source, header_lineno + done + 1, f"unreadable CSV ({exc})") from None
        if reader.line_num - done > 1:
            first, last = header_lineno + done + 1, header_lineno + reader.line_num
            raise _err(
                source,
                first,
                f"a quoted field runs over lines {first} to {last} (a stray quote?)",
            )
        done = reader.line_num
        yield row


def _unit_asked(value: str) -> str:
    """Where a job or a user names the unit: the config key, or the groundtruth command's flag."""
    return f"ground_truth.unit={value} (or --unit {value})"


def read_table(
    path: str | os.PathLike[str],
    *,
    column: str | None = None,
    metric: str | None = None,
    unit: str = "auto",
    validate_key: Callable[[str], None] | None = None,
    dataset: str | None = None,
) -> GroundTruth:
    """Read a ground-truth table (either layout; see the module docstring).

    ``metric`` (``"test"`` or ``"valid"``) picks the NB201 layout's column (``test_acc`` or
    ``valid_acc``); a ``column`` that names another one is an error. The project's layout has
    one accuracy per table, so there ``metric`` is left to the caller to compare with the
    header's ``# metric:`` line.

    ``unit`` is ``"percent"``, ``"fraction"`` or ``"auto"`` (the file's ``# unit:`` line; the
    NB201 layout implies percent). ``validate_key(key)`` may raise :class:`ValueError` to reject
    a key (a search space's check); the error is re-raised naming the line. Every problem raises
    :class:`GroundTruthError` (a :class:`ValueError`) naming the file, the 1-based line and the
    key: unknown header, unknown column, empty or duplicate key, a value that is not a finite
    number in range (percent in [0, 100], fraction in [0, 1]), an empty table.

    In percent, a value below half the chance level of the table's dataset (``dataset``, else
    its ``# dataset:`` line; see :data:`HALF_CHANCE_PERCENT`; the NB201 layout without one:
    the lowest of NAS-Bench-201's datasets) is refused as a fraction among percentages; where
    the dataset is unknown only the whole-table check is made (no value above 1: all
    fractions).
    """
    source = str(path)
    try:
        with open(path, "rb") as f:
            lines = _lines(_decode(f.read(), source))
    except FileNotFoundError:
        raise FileNotFoundError(f"ground-truth file not found: {source}") from None
    except IsADirectoryError:
        raise GroundTruthError(
            f"{source}: a folder, not a ground-truth table (a CSV file); a benchmark folder "
            "(NATS-Bench -simple) is converted first: python -m nasheur.groundtruth convert"
        ) from None

    # ---- metadata comments and the header row
    meta: dict[str, str] = {}
    meta_line: dict[str, int] = {}
    header_at = None
    for i, raw in enumerate(lines):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            parsed = _parse_meta(text)
            if parsed is not None:
                name, value = parsed
                if name in meta and meta[name] != value:  # which one holds? neither is taken
                    raise _err(
                        source,
                        i + 1,
                        f"# {name}: {brief(value)} contradicts # {name}: {brief(meta[name])} "
                        f"on line {meta_line[name]}",
                    )
                meta[name] = value
                meta_line.setdefault(name, i + 1)
            continue
        header_at = i
        break
    if header_at is None:
        raise _err(source, None, f"no header row; accepted headers: {_ACCEPTED_HEADERS}")
    header_lineno = header_at + 1
    header = [h.strip() for h in next(csv.reader([lines[header_at]]))]

    # ---- layout
    if tuple(header[: len(_NB201_HEADER)]) == _NB201_HEADER:
        layout, key_col, default_col, implied_unit = "nb201", _NB201_KEY, _NB201_VALUE, "percent"
    elif _OWN_KEY in header:
        layout, key_col, default_col, implied_unit = "own", _OWN_KEY, _OWN_VALUE, None
    else:
        raise _err(
            source,
            header_lineno,
            f"unknown layout, header {brief(','.join(header))}; accepted headers: {_ACCEPTED_HEADERS}",
        )
    if layout == "nb201" and metric is not None:
        wanted = _NB201_METRIC_COLUMN.get(metric)
        if wanted is None:
            raise _err(
                source,
                header_lineno,
                f"metric {brief(metric)}: one of {', '.join(_NB201_METRIC_COLUMN)}",
            )
        if column is not None and column != wanted:
            raise _err(
                source,
                header_lineno,
                f"column {brief(column)} contradicts metric {brief(metric)} (its column is {brief(wanted)})",
            )
        column = wanted
    value_col = default_col if column is None else column
    available = [
        h for h in header if h and h != key_col and not (layout == "nb201" and h == "index")
    ]
    if value_col == key_col or value_col not in header:
        what = "column" if column is not None else "default column"
        why = "holds the keys" if value_col == key_col else "not in the header"
        raise _err(
            source,
            header_lineno,
            f"{what} {brief(value_col)} {why}; available columns: {', '.join(available)}",
        )
    if len(set(header)) != len(header):
        raise _err(source, header_lineno, f"repeated column name in header {header}")
    key_i, val_i = header.index(key_col), header.index(value_col)

    # ---- unit
    declared = None
    if "unit" in meta:
        declared = _normalise_unit(meta["unit"], f"{source}:{meta_line['unit']}", "'# unit:'")
    elif implied_unit is not None:
        declared = implied_unit
    if unit == "auto":
        if declared is None:
            raise _err(
                source,
                None,
                "the accuracy unit is not declared: add a '# unit: percent' (or fraction) line "
                f"before the header, or pass {_unit_asked('percent|fraction')}",
            )
        the_unit = declared
    else:
        the_unit = _normalise_unit(unit, source, "ground_truth.unit")
        if declared is not None and declared != the_unit:
            raise _err(
                source,
                meta_line.get("unit"),
                (
                    f"the file declares unit {brief(declared)}"
                    if "unit" in meta
                    else f"the table is in NB201's layout, whose unit is {brief(declared)},"
                )
                + f" but {_unit_asked(brief(the_unit))}",
            )
    scale, upper = (100.0, 100.0) if the_unit == "percent" else (1.0, 1.0)

    # ---- the dataset, for the chance floor of a percent table
    if dataset is not None and "dataset" in meta and meta["dataset"] != dataset:
        raise _err(
            source,
            meta_line["dataset"],
            f"the file declares dataset {brief(meta['dataset'])} but dataset={brief(dataset)}",
        )
    the_dataset = dataset or meta.get("dataset")
    floor = half_chance_percent(the_dataset)
    if the_dataset is None and layout == "nb201":
        # the layout does not say which of NAS-Bench-201's datasets it holds: the floor that
        # holds for all of them, ImageNet16-120's (it catches fewer fractions than CIFAR-10's)
        the_dataset, floor = (
            "ImageNet16-120 (the lowest of NAS-Bench-201's datasets)",
            min(HALF_CHANCE_PERCENT.values()),
        )
    # An unknown dataset has no known chance level: then only the whole-table check below
    # catches fractions (all of them). The other direction needs no floor: in a fraction table
    # a row in percent exceeds 1 (any real accuracy is above 1%) and the range check refuses it.
    chance = (
        chance_floor(str(the_dataset), floor)
        if the_unit == "percent" and floor is not None
        else None
    )

    # ---- rows
    keys: list[str] = []
    values: list[float] = []
    seen: dict[str, int] = {}
    named = len(header) - next((i for i, h in enumerate(reversed(header)) if h), len(header))
    reader = csv.reader(lines[header_at + 1 :])
    for row in _rows(reader, source, header_lineno):
        lineno = header_lineno + reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        # a field too many or too few and the columns are not sure; trailing empty fields
        # (a comma at the end of the line, or of the header) change nothing
        if len(row) < named or any(f.strip() for f in row[named:]):
            raise _err(source, lineno, f"{len(row)} fields, expected {named}: {brief(row)}")
        key = row[key_i].strip()
        if not key:
            raise _err(source, lineno, "empty key")
        if key in seen:
            raise _err(source, lineno, f"duplicate key {brief(key)} (first on line {seen[key]})")
        text = row[val_i].strip()
        try:
            if "_" in text:  # Python's float() reads 0.9_1 as 0.91; a table never means that
                raise ValueError(text)
            v = float(text)
        except ValueError:
            raise _err(
                source, lineno, f"key {brief(key)}: {value_col} {brief(text)} is not a number"
            ) from None
        if not math.isfinite(v):
            raise _err(source, lineno, f"key {brief(key)}: {value_col} {brief(text)} is not finite")
        if not 0.0 <= v <= upper:
            raise _err(
                source,
                lineno,
                f"key {brief(key)}: {value_col} {brief(text)} is outside [0, {upper:g}] (unit {the_unit})",
            )
        if chance is not None:
            chance.see(v, f"{source}:{lineno}: key {brief(key)}: {value_col}")
        if validate_key is not None:
            try:
                validate_key(key)
            except ValueError as exc:
                said = f"key {brief(key)} rejected: {exc}{_looks_like(key)}"
                raise _err(source, lineno, said) from exc
        seen[key] = lineno
        keys.append(key)
        values.append(v)
    if not keys:
        raise _err(source, None, "the table has no rows")
    acc = np.asarray(values, dtype=np.float64)
    if the_unit == "percent" and acc.max() <= 1.0:
        # no classifier of a benchmark scores at most 1%: these are fractions, and read as
        # percent every architecture would sit in one sparse-Kendall bin
        raise _err(
            source,
            meta_line.get("unit") or header_lineno,
            f"the table is read in percent, but no {value_col} exceeds 1: they look like "
            f"fractions; declare '# unit: fraction', or pass {_unit_asked('fraction')}",
        )
    if chance is not None:  # after the whole-table check: its message is the better one
        chance.check()
    if scale != 1.0:
        acc = acc / scale
    if layout == "nb201":  # provenance: which of the file's accuracies this is
        meta.setdefault("space", "nb201")  # the layout is NAS-Bench-201's own table
        meta["column"] = value_col
        for name, col in _NB201_METRIC_COLUMN.items():
            if col == value_col:
                meta["metric"] = name
    return GroundTruth(keys=tuple(keys), acc=acc, source=source, meta=meta)


# --------------------------------------------------------------------------------------------
# writing


def write_table(
    path: str | os.PathLike[str],
    keys: Sequence[str],
    acc_fraction: Sequence[float] | np.ndarray,
    *,
    meta: Mapping[str, str],
) -> None:
    """Write the project's layout atomically: ``# unit: fraction``, the ``meta`` lines, the rows.

    Accuracies are written with ``repr`` so that :func:`read_table` gets back the very same
    floats. Keys must be non-empty, unique and free of line breaks; accuracies finite fractions
    in [0, 1]; meta names single words without ``:``.
    """
    keys = [str(k) for k in keys]
    acc = np.asarray(acc_fraction, dtype=np.float64).reshape(-1)
    if len(keys) != acc.shape[0]:
        raise ValueError(f"{len(keys)} keys but {acc.shape[0]} accuracies")
    if not keys:
        raise ValueError("nothing to write: no keys")
    seen: set[str] = set()
    for k in keys:
        if not k.strip() or k != k.strip() or "\n" in k or "\r" in k:
            raise ValueError(f"unwritable key {brief(k)} (empty, padded or with a line break)")
        if k in seen:
            raise ValueError(f"duplicate key {brief(k)}")
        seen.add(k)
    bad = ~(np.isfinite(acc) & (acc >= 0.0) & (acc <= 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"accuracy of {brief(keys[i])} is {brief(acc[i])}; expected a fraction in [0, 1]"
        )
    lines = ["# unit: fraction"]
    for name, value in meta.items():
        name, value = str(name), str(value)
        if not name or any(c in name for c in ": \t\r\n#") or "\n" in value or "\r" in value:
            raise ValueError(f"unwritable meta entry {brief(name)}: {brief(value)}")
        if name == "unit":
            if value.strip().lower() != "fraction":
                raise ValueError(f"meta unit={brief(value)}, but the table is written in fractions")
            continue
        lines.append(f"# {name}: {value}")
    _atomic_write(Path(path), lines, keys, acc)


def _atomic_write(path: Path, comment_lines: list[str], keys: list[str], acc: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for line in comment_lines:
            f.write(line + "\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([_OWN_KEY, _OWN_VALUE])
        writer.writerows(zip(keys, map(repr, acc.tolist()), strict=True))
