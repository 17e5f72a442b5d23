"""Seeded train / validation split of the training images (the paper's `train portion` factor)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nasheur.config import split_sizes

__all__ = ["Split", "split_train_val"]


@dataclass(frozen=True)
class Split:
    """Indices into the image set. ``val_overlaps_train`` is true when the two shares intersect."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    val_overlaps_train: bool


def _check_fraction(value: float, name: str, *, upper_inclusive: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    upper_ok = v <= 1.0 if upper_inclusive else v < 1.0
    if not (math.isfinite(v) and v > 0.0 and upper_ok):
        interval = "(0, 1]" if upper_inclusive else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


def split_train_val(
    num_images: int, train_portion: float, val_portion: float = 0.1, seed: int = 0
) -> Split:
    """Split ``range(num_images)`` with one seeded permutation.

    Validation is the *last* ``round(val_portion * N)`` entries of the permutation, so it is the
    same set whatever ``train_portion`` is (metrics stay comparable across portions); training
    is the *first* ``round(train_portion * N)`` entries. With ``train_portion + val_portion > 1``
    the shares overlap (the paper's "validation on the training portion" case) and the flag
    ``val_overlaps_train`` says so. Both index arrays are int64 in permutation order.
    """
    train_portion = _check_fraction(train_portion, "fidelity.train_portion", upper_inclusive=True)
    val_portion = _check_fraction(val_portion, "dataset.val_portion", upper_inclusive=False)
    n = int(num_images)
    if n < 2:
        raise ValueError(f"need at least 2 images to split, got {num_images}")
    n_train, n_val = split_sizes(n, train_portion, val_portion)
    if n_train < 1:
        raise ValueError(
            f"fidelity.train_portion={train_portion} leaves no training image out of {n}"
        )
    if n_val < 1:
        raise ValueError(f"dataset.val_portion={val_portion} leaves no validation image out of {n}")
    perm = np.random.default_rng(np.random.SeedSequence(seed)).permutation(n).astype(np.int64)
    train_idx = perm[:n_train].copy()
    val_idx = perm[n - n_val :].copy()
    train_idx.flags.writeable = False
    val_idx.flags.writeable = False
    return Split(train_idx=train_idx, val_idx=val_idx, val_overlaps_train=n_train + n_val > n)
