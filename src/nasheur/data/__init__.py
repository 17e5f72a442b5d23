"""Image data for super-net training: CIFAR-10 or a generated set, split and batched.

``load_image_data`` returns CPU tensors; move them to the training device and wrap them in a
:class:`DeviceLoader` (one for the train share with augmentation, one for the validation share
without).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nasheur.data.cifar10 import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DatasetNotFoundError,
    load_cifar10_train,
)
from nasheur.data.loader import DeviceLoader
from nasheur.data.procedural import PROCEDURAL_MEAN, PROCEDURAL_STD, make_procedural
from nasheur.data.splits import Split, split_train_val
from nasheur.data.synthetic import SYNTHETIC_MEAN, SYNTHETIC_STD, make_synthetic

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NAMES",
    "GENERATED",
    "SYNTHETIC_MEAN",
    "SYNTHETIC_STD",
    "DatasetNotFoundError",
    "DeviceLoader",
    "ImageData",
    "Split",
    "load_cifar10_train",
    "load_image_data",
    "make_synthetic",
    "split_train_val",
]

DATASET_NAMES = ("cifar10", "synthetic", "procedural")
# the generated sets: name -> (make(num_images, image_size, num_classes, seed), mean, std)
GENERATED = {
    "synthetic": (make_synthetic, SYNTHETIC_MEAN, SYNTHETIC_STD),
    "procedural": (make_procedural, PROCEDURAL_MEAN, PROCEDURAL_STD),
}


@dataclass(frozen=True, eq=False)
class ImageData:
    """Train and validation shares as CPU tensors (uint8 NCHW images, int64 labels)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    image_size: int
    val_overlaps_train: bool


def load_image_data(
    name: str,
    *,
    train_portion: float,
    val_portion: float = 0.1,
    split_seed: int = 0,
    root: str | None = None,
    num_images: int = 2000,
    image_size: int = 16,
    num_classes: int = 10,
    data_seed: int = 0,
) -> ImageData:
    """Load ``name`` (one of :data:`DATASET_NAMES`) and split it with :func:`split_train_val`.

    ``cifar10`` reads the 50,000 training images from ``root`` (the ``cifar-10-batches-py``
    folder or its parent; ``None`` raises :class:`DatasetNotFoundError` asking for
    ``dataset.root=``); ``num_images``, ``image_size``, ``num_classes`` and ``data_seed``
    apply to the generated sets only: ``synthetic`` and ``procedural`` (the embedded
    benchmark's textures; jobs use seed 0, never seed 1, which drew the held-out test images of
    its ground truth). Normalisation constants: the usual CIFAR-10 per-channel values, and
    fixed (0.5, 0.5, 0.5) / (0.25, 0.25, 0.25) for the generated sets (their generators are
    scaled to about that mean and spread).
    """
    if name == "cifar10":
        if root is None:
            raise DatasetNotFoundError(
                "dataset.root is not set: CIFAR-10 needs the folder that holds (or is) "
                "cifar-10-batches-py. Download cifar-10-python.tar.gz from the CIFAR-10 page of "
                "Alex Krizhevsky, extract it there and pass dataset.root=<folder> "
                "(or use dataset=synthetic)."
            )
        images, labels = load_cifar10_train(root)
        mean, std, classes = CIFAR10_MEAN, CIFAR10_STD, 10
    elif name in GENERATED:
        make, mean, std = GENERATED[name]
        try:
            images, labels = make(num_images, image_size, num_classes, data_seed)
        except MemoryError:  # numpy's refusal of one large array: said with the keys
            from nasheur.config import ConfigError

            raise ConfigError(
                f"dataset.num_images={num_images} images of dataset.image_size={image_size} "
                f"pixels: generating the {name} set ran out of memory; generated sets are "
                "meant to be small (use fewer or smaller images, or dataset=cifar10)"
            ) from None
        classes = int(num_classes)
    else:
        raise ValueError(
            f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)} (dataset=<name>)"
        )
    split = split_train_val(len(labels), train_portion, val_portion, split_seed)

    def take(a: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[idx]))

    return ImageData(
        train_x=take(images, split.train_idx),
        train_y=take(labels, split.train_idx),
        val_x=take(images, split.val_idx),
        val_y=take(labels, split.val_idx),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        num_classes=classes,
        image_size=int(images.shape[-1]),
        val_overlaps_train=split.val_overlaps_train,
    )
