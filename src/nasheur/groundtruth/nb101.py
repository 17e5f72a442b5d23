"""NAS-Bench-101 ground truth from the official TFRecord files, without TensorFlow.

Reads ``nasbench_only108.tfrecord`` and ``nasbench_full.tfrecord`` record by record (the file
is never held in memory as a whole).

File layout (facts about the public format):

* TFRecord framing, repeated to the end of the file: ``uint64`` little-endian data length,
  ``uint32`` masked CRC32C of those 8 length bytes, the data, ``uint32`` masked CRC32C of the
  data. A masked CRC is ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32; CRC32C is the
  Castagnoli CRC (reflected polynomial ``0x82F63B78``, initial value and final xor
  ``0xFFFFFFFF``).
* Each record's data is UTF-8 JSON ``[module_hash, epochs, raw_adjacency, raw_operations,
  raw_metrics]``: the adjacency is the V*V ``'0'/'1'`` string of the matrix in row-major order,
  the operations are comma-separated, and ``raw_metrics`` is the base64 of a proto2
  ``ModelMetrics`` message.
* ``ModelMetrics``: field 1 repeated ``EvaluationData`` (sub-message), field 2 int32
  ``trainable_parameters``, field 3 double ``total_time``. ``EvaluationData``: fields 1-5 doubles
  ``current_epoch``, ``training_time``, ``train_accuracy``, ``validation_accuracy``,
  ``test_accuracy``; field 6 string ``checkpoint_path``. A run has 3 evaluations (start,
  halfway, end); index 2 is the final one. Accuracies are fractions.

Ground truth (:func:`read_nb101`): over the records trained for 108 epochs, the mean across
repeats of the final test accuracy (``metric="test"``) or final validation accuracy
(``metric="valid"``), keyed by the official module hash. A run without exactly 3 evaluations,
a final evaluation without its test or validation accuracy (it would read as 0.0) and a hash
with more than 3 runs at the budget (a duplicated record) are errors, not guessed at. The
number of repeats and the trainable parameters of each hash come along in
:class:`NB101GroundTruth`.

CRC32C is computed by the first available of: the optional ``crc32c`` or ``google_crc32c``
packages (never required), a numpy routine that runs the byte-wise table over a whole batch of
records at once, and a plain table-driven Python loop (:func:`crc32c`, the reference).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasheur.groundtruth.table import GroundTruth, GroundTruthError, brief

__all__ = [
    "EvaluationData",
    "ModelMetrics",
    "NB101GroundTruth",
    "NB101Record",
    "TFRecordError",
    "crc32c",
    "crc32c_backend",
    "decode_model_metrics",
    "iter_nb101",
    "iter_tfrecords",
    "masked_crc32c",
    "read_nb101",
]

METRICS = ("test", "valid")
FINAL_EPOCHS = 108
FINAL_EVAL, N_EVALS = 2, 3  # evaluations at the start, halfway and end of a run
REPEATS = 3  # runs per architecture and epoch budget in NAS-Bench-101


class TFRecordError(GroundTruthError):
    """A TFRecord file is corrupt or truncated; the message names the record's byte offset."""


# --------------------------------------------------------------------------------------------
# CRC32C (Castagnoli)

_POLY = 0x82F63B78
_MASK32 = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` in plain Python (one table look-up per byte).

    ``crc`` continues an earlier result: ``crc32c(b + c) == crc32c(c, crc32c(b))``.
    """
    table = _TABLE
    c = crc ^ _MASK32
    for byte in bytes(data):
        c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ _MASK32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC32C that TFRecord stores."""
    return _mask(crc32c(data))


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _MASK32


def _crc32c_numpy(chunks: Sequence[bytes]) -> np.ndarray:
    """CRC32C of every chunk at once: the byte-wise table loop, vectorised across chunks.

    The chunks are sorted by length (longest first), so at byte position j the chunks still
    running are a prefix of the batch; one numpy step advances all of them by one byte.
    """
    n = len(chunks)
    out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    lens = np.fromiter(map(len, chunks), dtype=np.int64, count=n)
    order = np.argsort(-lens, kind="stable")
    slens = lens[order]
    buf = np.frombuffer(b"".join([chunks[i] for i in order]), dtype=np.uint8)
    pos = np.zeros(n, dtype=np.int64)
    np.cumsum(slens[:-1], out=pos[1:])
    maxlen = int(slens[0])
    running = np.searchsorted(-slens, -np.arange(maxlen), side="left")  # chunks longer than j
    crc = np.full(n, _MASK32, dtype=np.uint32)
    table = _TABLE_NP
    for j in range(maxlen):
        k = int(running[j])
        c = crc[:k]
        p = pos[:k]
        crc[:k] = table[(c ^ buf[p]) & 0xFF] ^ (c >> 8)
        p += 1
    out[order] = crc ^ np.uint32(_MASK32)
    return out


def _package_crc() -> tuple[str, Callable[[bytes], int]] | None:
    try:
        import crc32c as _pkg  # type: ignore[import-not-found]

        fn = getattr(_pkg, "crc32c", None) or _pkg.crc32
        if fn(b"123456789") == 0xE3069283:
            return "crc32c", fn
    except Exception:
        pass
    try:
        import google_crc32c as _gpkg  # type: ignore[import-not-found]

        if _gpkg.value(b"123456789") == 0xE3069283:
            return "google_crc32c", _gpkg.value
    except Exception:
        pass
    return None


_BACKENDS = ("auto", "package", "numpy", "python")


def crc32c_backend(name: str = "auto") -> tuple[str, Callable[[Sequence[bytes]], np.ndarray]]:
    """``(name, f)`` where ``f(chunks)`` returns the CRC32C of each chunk as a uint32 array.

    ``name``: ``"auto"`` (an installed package, else numpy), ``"package"`` (``crc32c`` or
    ``google_crc32c``; error if neither is importable), ``"numpy"`` or ``"python"``.
    """
    if name not in _BACKENDS:
        raise ValueError(f"unknown CRC backend {brief(name)}; one of {', '.join(_BACKENDS)}")
    if name in ("auto", "package"):
        found = _package_crc()
        if found is not None:
            pkg_name, fn = found

            def many(chunks: Sequence[bytes]) -> np.ndarray:
                return np.fromiter(map(fn, chunks), dtype=np.uint32, count=len(chunks))

            return pkg_name, many
        if name == "package":
            raise ValueError("neither the crc32c nor the google_crc32c package is importable")
    if name in ("auto", "numpy"):
        return "numpy", _crc32c_numpy

    def python_many(chunks: Sequence[bytes]) -> np.ndarray:
        return np.fromiter(map(crc32c, chunks), dtype=np.uint32, count=len(chunks))

    return "python", python_many


def _mask_np(crc: np.ndarray) -> np.ndarray:
    c = crc.astype(np.uint64)
    return (
        (((c >> np.uint64(15)) | (c << np.uint64(17))) + np.uint64(_MASK_DELTA))
        & np.uint64(_MASK32)
    ).astype(np.uint32)


# --------------------------------------------------------------------------------------------
# TFRecord framing

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_BATCH = 8192
_SUSPICIOUS_LENGTH = 64 << 20  # a length this large gets its CRC checked before reading on


def iter_tfrecords(
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    backend: str = "auto",
    hasher: Any = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte offset, data)`` of each record of a TFRecord file, in file order.

    With ``verify`` (the default) both CRCs of every record are checked, in batches; a bad
    length CRC, a bad data CRC or a truncated record raises :class:`TFRecordError` naming the
    file and the record's byte offset (records before it have been yielded). ``hasher`` (e.g. a
    ``hashlib.sha256()``) is fed every byte of the file as it is read.
    """
    source = str(path)
    _, crc_many = crc32c_backend(backend)
    size = os.path.getsize(path)
    pending: list[tuple[int, bytes, int, bytes, int]] = []  # offset, len8, len crc, data, crc

    def check(batch: list[tuple[int, bytes, int, bytes, int]]) -> Iterator[tuple[int, bytes]]:
        if not verify:
            for off, _, _, data, _ in batch:
                yield off, data
            return
        len_ok = _mask_np(crc_many([b[1] for b in batch])) == np.fromiter(
            (b[2] for b in batch), dtype=np.uint32, count=len(batch)
        )
        data_ok = _mask_np(crc_many([b[3] for b in batch])) == np.fromiter(
            (b[4] for b in batch), dtype=np.uint32, count=len(batch)
        )
        bad = ~(len_ok & data_ok)
        first = int(np.argmax(bad)) if bad.any() else len(batch)
        for off, _, _, data, _ in batch[:first]:
            yield off, data
        if first < len(batch):
            off = batch[first][0]
            what = "length" if not len_ok[first] else "data"
            raise TFRecordError(
                f"{source}: corrupt record at byte offset {off}: the {what} CRC does not match"
            )

    with open(path, "rb", buffering=1 << 20) as f:
        offset = 0
        while True:
            head = f.read(_HEADER.size)
            if hasher is not None:
                hasher.update(head)
            if not head:
                break
            if len(head) < _HEADER.size:
                yield from check(pending)
                raise TFRecordError(
                    f"{source}: truncated record at byte offset {offset}: {len(head)} header "
                    f"bytes where {_HEADER.size} are needed (the file ends there)"
                )
            length, len_crc = _HEADER.unpack(head)
            len8 = head[:8]
            remaining = size - offset - _HEADER.size
            if length + _FOOTER.size > remaining or length > _SUSPICIOUS_LENGTH:
                yield from check(pending)
                pending = []
                if verify and masked_crc32c(len8) != len_crc:
                    raise TFRecordError(
                        f"{source}: corrupt record at byte offset {offset}: "
                        "the length CRC does not match"
                    )
                if length + _FOOTER.size > remaining:
                    raise TFRecordError(
                        f"{source}: truncated record at byte offset {offset}: it declares "
                        f"{length} data bytes plus a 4-byte CRC, but only {max(remaining, 0)} "
                        "bytes follow"
                    )
            body = f.read(length + _FOOTER.size)
            if hasher is not None:
                hasher.update(body)
            if len(body) < length + _FOOTER.size:  # the file shrank while being read
                yield from check(pending)
                raise TFRecordError(
                    f"{source}: truncated record at byte offset {offset}: the file ends inside it"
                )
            data = body[:length]
            (data_crc,) = _FOOTER.unpack_from(body, length)
            pending.append((offset, len8, len_crc, data, data_crc))
            offset += _HEADER.size + length + _FOOTER.size
            if len(pending) >= _BATCH:
                yield from check(pending)
                pending = []
        yield from check(pending)


# --------------------------------------------------------------------------------------------
# protobuf wire format (just what ModelMetrics needs)


class _ProtoError(ValueError):
    pass


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _skip(buf: bytes, pos: int, end: int, wire: int, field: int) -> int:
    if wire == 0:
        _, pos = _varint(buf, pos, end)
    elif wire == 1:
        pos += 8
    elif wire == 2:
        n, pos = _varint(buf, pos, end)
        pos += n
    elif wire == 5:
        pos += 4
    else:
        raise _ProtoError(f"field {field} has unsupported wire type {wire}")
    if pos > end:
        raise _ProtoError(f"field {field} runs past the end of its message")
    return pos


_DOUBLE = struct.Struct("<d")


@dataclass(frozen=True, slots=True)
class EvaluationData:
    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0


# the five doubles of EvaluationData written in field order (how protobuf serialises them)
_FIVE_DOUBLES = struct.Struct("<BdBdBdBdBd")
_FIVE_TAGS = (0x09, 0x11, 0x19, 0x21, 0x29)


def _decode_eval(buf: bytes, pos: int, end: int) -> EvaluationData:
    return _decode_eval_fields(buf, pos, end)[0]


_ALL_FIVE = 0b11111


def _decode_eval_fields(buf: bytes, pos: int, end: int) -> tuple[EvaluationData, int]:
    """The evaluation and a bit mask of the doubles present (bit k-1 for field k): an absent
    field decodes as proto2's default 0.0, which is no accuracy a run reached."""
    vals = [0.0, 0.0, 0.0, 0.0, 0.0]
    present = 0
    path = ""
    if end - pos >= _FIVE_DOUBLES.size:
        t1, v1, t2, v2, t3, v3, t4, v4, t5, v5 = _FIVE_DOUBLES.unpack_from(buf, pos)
        if (t1, t2, t3, t4, t5) == _FIVE_TAGS:
            vals = [v1, v2, v3, v4, v5]
            present = _ALL_FIVE
            pos += _FIVE_DOUBLES.size
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if 1 <= field <= 5 and wire == 1:
            if pos + 8 > end:
                raise _ProtoError(f"EvaluationData field {field} is truncated")
            vals[field - 1] = _DOUBLE.unpack_from(buf, pos)[0]
            present |= 1 << (field - 1)
            pos += 8
        elif field == 6 and wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _ProtoError("EvaluationData.checkpoint_path is truncated")
            path = buf[pos : pos + n].decode("utf-8", errors="replace")
            pos += n
        elif field == 0:
            raise _ProtoError("field number 0 in EvaluationData")
        else:
            pos = _skip(buf, pos, end, wire, field)
    return EvaluationData(*vals, path), present


def _scan_metrics(buf: bytes) -> tuple[list[tuple[int, int]], int, float]:
    """``ModelMetrics`` without decoding its evaluations: their (start, end) spans, params, time."""
    spans: list[tuple[int, int]] = []
    params = 0
    total = 0.0
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 1 and wire == 2:
            n = buf[pos] if pos < end else 0x80
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _ProtoError("ModelMetrics.evaluation_data is truncated")
            spans.append((pos, pos + n))
            pos += n
        elif field == 2 and wire == 0:
            v, pos = _varint(buf, pos, end)
            v &= 0xFFFFFFFF  # int32: negative values are sign-extended to 64 bits on the wire
            params = v - (1 << 32) if v >= 1 << 31 else v
        elif field == 3 and wire == 1:
            if pos + 8 > end:
                raise _ProtoError("ModelMetrics.total_time is truncated")
            total = _DOUBLE.unpack_from(buf, pos)[0]
            pos += 8
        elif field == 0:
            raise _ProtoError("field number 0 in ModelMetrics")
        else:
            pos = _skip(buf, pos, end, wire, field)
    return spans, params, total


def decode_model_metrics(buf: bytes) -> ModelMetrics:
    """Decode a serialized ``ModelMetrics`` (proto2); unknown fields are skipped.

    Raises :class:`ValueError` for malformed input (truncation, field number 0, group wire
    types 3/4 or the reserved 6/7).
    """
    spans, params, total = _scan_metrics(buf)
    return ModelMetrics(tuple(_decode_eval(buf, a, b) for a, b in spans), params, total)


_VALID_BIT, _TEST_BIT = 1 << 3, 1 << 4  # EvaluationData fields 4 and 5


def _final_metrics(buf: bytes) -> tuple[EvaluationData | None, int, int, int]:
    """The final evaluation (None unless there are exactly 3), the parameter count, the
    number of evaluations and the final one's mask of fields present (0 when None), decoding
    nothing else."""
    spans, params, _ = _scan_metrics(buf)
    if len(spans) != N_EVALS:
        return None, params, len(spans), 0
    final, present = _decode_eval_fields(buf, *spans[FINAL_EVAL])
    return final, params, len(spans), present


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class NB101Record:
    """One decoded record: one training run of one cell for ``epochs`` epochs."""

    offset: int
    module_hash: str
    epochs: int
    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    metrics: ModelMetrics


_json_decode = json.JSONDecoder().decode


def _parse_json(source: str, offset: int, data: bytes) -> list[Any]:
    try:
        row = _json_decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TFRecordError(
            f"{source}: record at byte offset {offset} is not UTF-8 JSON: {exc}"
        ) from None
    if not (isinstance(row, list) and len(row) == 5):
        raise TFRecordError(
            f"{source}: record at byte offset {offset} is not the NAS-Bench-101 list "
            "[hash, epochs, adjacency, operations, metrics]"
        )
    return row


def _decode_metrics(source: str, offset: int, raw: Any) -> ModelMetrics:
    try:
        return decode_model_metrics(base64.b64decode(raw, validate=True))
    except (binascii.Error, TypeError, ValueError) as exc:
        raise TFRecordError(
            f"{source}: record at byte offset {offset}: bad ModelMetrics: {exc}"
        ) from None


def _check_epochs(source: str, offset: int, epochs: Any) -> int:
    """A record's epoch budget, an int: 108.0 and True (for 1) would equal a budget and pass
    unseen, and int() would read 108.7 as 108."""
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise TFRecordError(
            f"{source}: record at byte offset {offset}: epochs {brief(epochs)} is not an integer"
        )
    return epochs


def _check_hash(source: str, offset: int, module_hash: Any) -> str:
    """A record's module hash: 32 hexadecimal digits, the MD5 that names the cell."""
    if not (isinstance(module_hash, str) and len(module_hash) == 32) or not _HEX.issuperset(
        module_hash
    ):
        raise TFRecordError(
            f"{source}: record at byte offset {offset}: {brief(module_hash)} is not an MD5 "
            "module hash"
        )
    return module_hash


def iter_nb101(
    path: str | os.PathLike[str], *, verify: bool = True, backend: str = "auto"
) -> Iterator[NB101Record]:
    """Every record of a NAS-Bench-101 TFRecord file, decoded (all epoch budgets)."""
    source = str(path)
    for offset, data in iter_tfrecords(path, verify=verify, backend=backend):
        module_hash, epochs, adjacency, operations, raw = _parse_json(source, offset, data)
        _check_epochs(source, offset, epochs)
        _check_hash(source, offset, module_hash)
        n = math.isqrt(len(adjacency)) if isinstance(adjacency, str) else -1
        ops = tuple(operations.split(",")) if isinstance(operations, str) else ()
        if n < 1 or n * n != len(adjacency) or len(ops) != n or set(adjacency) - {"0", "1"}:
            raise TFRecordError(
                f"{source}: record at byte offset {offset}: adjacency {brief(adjacency)} and "
                f"operations {brief(operations)} do not describe a V-vertex cell"
            )
        matrix = tuple(tuple(int(adjacency[r * n + c]) for c in range(n)) for r in range(n))
        yield NB101Record(
            offset, module_hash, epochs, matrix, ops, _decode_metrics(source, offset, raw)
        )


# --------------------------------------------------------------------------------------------
# ground truth


@dataclass(frozen=True, eq=False)
class NB101GroundTruth:
    """Ground truth plus per-hash bookkeeping, aligned with ``gt.keys``."""

    gt: GroundTruth
    repeats: np.ndarray  # int64: runs averaged per hash
    params: np.ndarray  # int64: trainable parameters per hash
    test: np.ndarray  # float64: mean final test accuracy per hash
    valid: np.ndarray  # float64: mean final validation accuracy per hash
    records: int  # records read, every epoch budget included
    sha256: str | None = None  # of the file, when asked for


_HEX = frozenset("0123456789abcdef")


def read_nb101(
    path: str | os.PathLike[str],
    *,
    metric: str = "test",
    epochs: int = FINAL_EPOCHS,
    verify: bool = True,
    backend: str = "auto",
    compute_sha256: bool = False,
) -> NB101GroundTruth:
    """Ground truth of ``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord``.

    ``metric``: ``"test"`` (final test accuracy) or ``"valid"`` (final validation accuracy),
    averaged over the repeats trained for ``epochs`` epochs (108). Records for other budgets
    are read (and CRC-checked) but skipped. ``compute_sha256`` hashes the file in the same
    pass (``result.sha256``).
    """
    if metric not in METRICS:
        raise ValueError(f"NAS-Bench-101 metric {brief(metric)}: one of {', '.join(METRICS)}")
    source = str(path)
    hasher = hashlib.sha256() if compute_sha256 else None
    # hash -> [sum test, sum valid, repeats, params]
    acc: dict[str, list[Any]] = {}
    records = 0
    b64decode = base64.b64decode
    for offset, data in iter_tfrecords(path, verify=verify, backend=backend, hasher=hasher):
        records += 1
        row = _parse_json(source, offset, data)
        module_hash = row[0]
        if _check_epochs(source, offset, row[1]) != epochs:
            continue
        _check_hash(source, offset, module_hash)
        try:
            final, n_params, n_evals, present = _final_metrics(b64decode(row[4], validate=True))
        except (binascii.Error, TypeError, ValueError) as exc:
            raise TFRecordError(
                f"{source}: record at byte offset {offset}: bad ModelMetrics: {exc}"
            ) from None
        if final is None:
            # with more or fewer, which one is final is unknown: refuse rather than guess
            raise TFRecordError(
                f"{source}: record at byte offset {offset} ({module_hash}) has {n_evals} "
                f"evaluations, expected {N_EVALS} (the final one is index {FINAL_EVAL})"
            )
        missing = [
            name
            for bit, name in ((_TEST_BIT, "test_accuracy"), (_VALID_BIT, "validation_accuracy"))
            if not present & bit
        ]
        if missing:  # it would read as 0.0, proto2's default: no accuracy, a damaged record
            raise TFRecordError(
                f"{source}: record at byte offset {offset} ({module_hash}): its final "
                f"evaluation (index {FINAL_EVAL}) has no {' and no '.join(missing)}"
            )
        test, valid = final.test_accuracy, final.validation_accuracy
        if not (0.0 <= test <= 1.0 and 0.0 <= valid <= 1.0):
            raise TFRecordError(
                f"{source}: record at byte offset {offset} ({module_hash}): final accuracies "
                f"test={brief(test)}, valid={brief(valid)} are not fractions in [0, 1]"
            )
        entry = acc.get(module_hash)
        if entry is None:
            acc[module_hash] = [test, valid, 1, n_params]
        else:
            if entry[2] >= REPEATS:  # a record stored twice would weigh twice in the mean
                raise TFRecordError(
                    f"{source}: record at byte offset {offset} ({module_hash}): a repeat "
                    f"beyond the {REPEATS} runs NAS-Bench-101 trains per architecture and "
                    f"budget ({epochs} epochs): a duplicated record?"
                )
            if entry[3] != n_params:
                raise TFRecordError(
                    f"{source}: record at byte offset {offset} ({module_hash}): "
                    f"{n_params} trainable parameters, but an earlier repeat "
                    f"has {entry[3]}"
                )
            entry[0] += test
            entry[1] += valid
            entry[2] += 1
    if not acc:
        raise GroundTruthError(f"{source}: no record trained for {epochs} epochs")
    keys = tuple(acc)
    table = np.array([v[:3] for v in acc.values()], dtype=np.float64)
    repeats = table[:, 2].astype(np.int64)
    test_mean = table[:, 0] / table[:, 2]
    valid_mean = table[:, 1] / table[:, 2]
    params = np.fromiter((v[3] for v in acc.values()), dtype=np.int64, count=len(keys))
    values = test_mean if metric == "test" else valid_mean
    field = "test_accuracy" if metric == "test" else "validation_accuracy"
    lo, hi = int(repeats.min()), int(repeats.max())
    meta = {
        "benchmark": "nb101",
        "space": "nb101",
        "dataset": "cifar10",
        "metric": metric,
        "split": f"evaluation_data[{FINAL_EVAL}].{field}",
        "epochs": str(epochs),
        "repeats": str(lo) if lo == hi else f"{lo}-{hi} (mean {repeats.mean():.4f})",
        "records": str(records),
    }
    gt = GroundTruth(keys=keys, acc=values, source=source, meta=meta)
    return NB101GroundTruth(
        gt=gt,
        repeats=repeats,
        params=params,
        test=test_mean,
        valid=valid_mean,
        records=records,
        sha256=hasher.hexdigest() if hasher is not None else None,
    )
