"""CIFAR-10 training images from the standard python-format release, read without blind pickle.

The release ``cifar-10-python.tar.gz`` extracts to a folder ``cifar-10-batches-py`` holding
``data_batch_1`` .. ``data_batch_5`` (10,000 images each) and ``test_batch``. Each batch is a
Python 2 pickle of a dict with ``b"data"`` (uint8, 10000 x 3072, channel-major rows of 32 x 32)
and ``b"labels"`` (a list of ints in 0..9). The batches are unpickled through
:func:`nasheur.safe_pickle.safe_load` with numpy's array globals as the only allowed globals.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nasheur.safe_pickle import (
    LATIN1_BYTES_GLOBALS,
    NUMPY_ARRAY_GLOBALS,
    UnsafePickleError,
    safe_load,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "BadBatchError",
    "DatasetNotFoundError",
    "find_cifar10",
    "load_cifar10_train",
]

#: Per-channel mean and standard deviation of the CIFAR-10 training images (RGB, in [0, 1]).
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
IMAGES_PER_BATCH = 10_000

log = logging.getLogger("nasheur")

# numpy arrays (both numpy 1.x and 2.x spellings) plus the latin-1 `_codecs.encode` that
# Python 3 uses for bytes at protocol 2 (for batches re-saved by Python 3); nothing else.
_ALLOWED = {**NUMPY_ARRAY_GLOBALS, **LATIN1_BYTES_GLOBALS}

_HOW_TO_GET = (
    "Download cifar-10-python.tar.gz from the CIFAR-10 page of Alex Krizhevsky "
    "(https://www.cs.toronto.edu/~kriz/cifar.html), extract it so that the folder "
    f"{FOLDER_NAME}/ appears under a directory of your choice, and point the run at that "
    "directory with dataset.root=<directory> (or use dataset=synthetic, which needs no download)."
)


class DatasetNotFoundError(FileNotFoundError):
    """The image data set is not where the configuration says it is."""


class BadBatchError(ValueError):
    """A CIFAR-10 batch file that cannot be read as one (damaged, truncated, or another
    file): a data file's error, which a job records as such, not as a config error."""


def _resolve_folder(root: str | Path) -> Path:
    root = Path(root).expanduser()
    candidates = [root] if root.name == FOLDER_NAME else [root / FOLDER_NAME, root]
    for folder in candidates:
        if (folder / TRAIN_FILES[0]).is_file():
            return folder
    for folder in candidates:
        if folder.is_dir() and folder.name == FOLDER_NAME:
            return folder  # the folder exists; the per-file check below names what is missing
    looked = " or ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"CIFAR-10 not found: expected the batches {', '.join(TRAIN_FILES)} in {looked}. "
        + _HOW_TO_GET
    )


def _get(batch: dict[Any, Any], name: str, path: Path) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise BadBatchError(f"{path}: not a CIFAR-10 batch (no {name!r} entry)")


# what a damaged or crafted batch makes the unpickler raise (a byte flipped can give any of
# these, also from numpy's array reconstruction): each becomes an error naming the file
_DAMAGED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    ArithmeticError,
    SystemError,
    MemoryError,
    RecursionError,
    UnicodeError,
)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        try:
            batch = safe_load(f, _ALLOWED, source=str(path), encoding="bytes")
        except UnsafePickleError:
            raise
        except _DAMAGED as exc:
            raise BadBatchError(
                f"{path}: a damaged or truncated CIFAR-10 batch ({type(exc).__name__}: {exc}); "
                "extract cifar-10-python.tar.gz again"
            ) from None
    if not isinstance(batch, dict):
        raise BadBatchError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    data = _get(batch, "data", path)
    labels = _get(batch, "labels", path)
    row = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise BadBatchError(f"{path}: 'data' must be a 2-D uint8 array (N, {row})")
    if data.shape[1] != row:
        raise BadBatchError(f"{path}: 'data' has shape {data.shape}; expected (N, {row})")
    try:
        labels_arr = np.asarray(labels)
    except (ValueError, TypeError) as exc:  # a ragged or odd list: numpy's words, our file
        raise BadBatchError(f"{path}: 'labels' is not a list of integers ({exc})") from None
    if labels_arr.ndim != 1 or labels_arr.shape[0] != data.shape[0]:
        raise BadBatchError(
            f"{path}: {labels_arr.shape} labels for {data.shape[0]} images; expected one per image"
        )
    if labels_arr.size == 0:  # `[]`: numpy reads float64, yet it is an empty list of ints
        labels_arr = labels_arr.astype(np.int64)
    if not np.issubdtype(labels_arr.dtype, np.integer):
        raise BadBatchError(f"{path}: labels must be integers, got dtype {labels_arr.dtype}")
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() >= NUM_CLASSES):
        raise BadBatchError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}")
    images = data.reshape((data.shape[0], *IMAGE_SHAPE))
    return images, labels_arr.astype(np.int64)


def find_cifar10(root: str | Path) -> Path:
    """The folder of the training batches under `root` (the ``cifar-10-batches-py`` folder
    or the one that holds it), without reading them; :class:`DatasetNotFoundError` saying
    what is missing and how to get it."""
    folder = _resolve_folder(root)
    missing = [name for name in TRAIN_FILES if not (folder / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 incomplete: missing {', '.join(str(folder / m) for m in missing)}. "
            + _HOW_TO_GET
        )
    return folder


def load_cifar10_train(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 50,000 CIFAR-10 training images and labels, in the release's order.

    ``root`` is the ``cifar-10-batches-py`` folder itself or the directory that contains it.
    Returns ``(images, labels)``: uint8 of shape (N, 3, 32, 32) (RGB, NCHW) and int64 (N,).
    Raises :class:`DatasetNotFoundError` when the folder or a batch file is missing and
    :class:`ValueError` (naming the file) when a batch is malformed or unsafe.
    """
    folder = find_cifar10(root)
    parts = [_read_batch(folder / name) for name in TRAIN_FILES]
    # A subset (a test's, a quick try's) is allowed, but said: the split, the batches per
    # epoch and so every number of the run then differ from a run on the release.
    short = [
        f"{name} {len(p[1]):,}"
        for name, p in zip(TRAIN_FILES, parts, strict=True)
        if len(p[1]) != IMAGES_PER_BATCH
    ]
    if short:
        log.warning(
            "CIFAR-10 at %s is not the release: images per batch %s, not %s; "
            "its numbers are not comparable with runs on the 50,000 training images",
            folder,
            ", ".join(short),
            f"{IMAGES_PER_BATCH:,}",
        )
    # One batch copied under several names (a botched extraction, a stand-in) loads like the
    # release but holds a fifth of its images: said like a subset. Digests, not the release's
    # MD5s: any copy is caught, and re-saved batches still load.
    first: dict[bytes, str] = {}
    copies = []
    for name, (images, labels) in zip(TRAIN_FILES, parts, strict=True):
        digest = _digest(images, labels)
        if digest in first:
            copies.append(f"{name} = {first[digest]}")
        else:
            first[digest] = name
    if copies:
        log.warning(
            "CIFAR-10 at %s is not the release: batches with the same images and labels (%s); "
            "its numbers are not comparable with runs on the 50,000 training images",
            folder,
            ", ".join(copies),
        )
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def _digest(images: np.ndarray, labels: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(images, dtype=np.uint8))
    h.update(np.ascontiguousarray(labels, dtype="<i8"))
    return h.digest()
