"""Batches straight from tensors that already live on the training device.

The whole (uint8) image set sits on the device; a batch is an index gather, an optional batched
random crop + flip, and a normalisation. No per-sample Python, no worker processes.

Random draws come from a ``torch.Generator`` the caller passes to :meth:`DeviceLoader.
train_batches` (seeded per epoch by the caller). Create it on the images' device,
``torch.Generator(device=images.device)``; a CPU generator also works with device tensors (the
draws are made on the CPU and moved), but a CUDA generator is faster for CUDA tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

__all__ = ["PAD", "DeviceLoader"]

#: Zero padding of the random crop (pixels on each side), as in the usual CIFAR augmentation.
PAD = 4


class DeviceLoader:
    """Normalised float32 batches from uint8 NCHW images and int64 labels on one device.

    ``mean`` and ``std`` are per-channel values for pixels scaled to [0, 1]. With ``augment``,
    training batches get a random crop of the image size from the image zero-padded by
    :data:`PAD` pixels (zero is black in uint8 space, i.e. padding happens before
    normalisation, as torchvision does) and a random horizontal flip with probability 1/2.
    """

    def __init__(
        self,
        images_u8: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool,
    ) -> None:
        if images_u8.dtype != torch.uint8 or images_u8.dim() != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor, got {images_u8.dtype} "
                f"{tuple(images_u8.shape)}"
            )
        if labels.dtype != torch.int64 or labels.dim() != 1:
            raise ValueError(f"labels must be an int64 (N,) tensor, got {labels.dtype}")
        if labels.shape[0] != images_u8.shape[0]:
            raise ValueError(f"{images_u8.shape[0]} images but {labels.shape[0]} labels")
        if labels.device != images_u8.device:
            raise ValueError(
                f"images on {images_u8.device} but labels on {labels.device}; move both first"
            )
        if images_u8.shape[0] < 1:
            raise ValueError("no images")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        channels = images_u8.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values (one per channel)")
        if not all(math.isfinite(float(v)) for v in (*mean, *std)):  # NaN images otherwise
            raise ValueError(f"mean and std must be finite, got {tuple(mean)} and {tuple(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        if images_u8.shape[2] != images_u8.shape[3]:
            raise ValueError(f"square images expected, got {tuple(images_u8.shape[2:])}")
        self.images = images_u8.contiguous()
        self.labels = labels.contiguous()
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.device = images_u8.device
        self._normalized: torch.Tensor | None = None  # eval_batches' float copy, made once
        shape = (1, channels, 1, 1)
        self._mean = torch.tensor([float(m) for m in mean], device=self.device).view(shape)
        self._std = torch.tensor([float(s) for s in std], device=self.device).view(shape)

    # ------------------------------------------------------------------ sizes
    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def steps_per_epoch(self) -> int:
        """Full training batches per epoch (drop_last); 1 when there are fewer images than a batch."""
        return max(1, self.num_images // self.batch_size)

    @property
    def eval_steps(self) -> int:
        """Batches :meth:`eval_batches` yields (the last one completed by wrapping around)."""
        return -(-self.num_images // self.batch_size)

    def __len__(self) -> int:
        return self.steps_per_epoch

    # ------------------------------------------------------------------ batches
    def normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 ``(x / 255 - mean) / std``."""
        return (x_u8.to(torch.float32).div_(255.0) - self._mean) / self._std

    def _crop_flip(self, x: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Crop of ``x`` zero-padded by PAD at offset ``shift`` (B, 2) in [0, 2*PAD], then flip."""
        b, c, s, _ = x.shape
        p = s + 2 * PAD
        padded = F.pad(x, (PAD, PAD, PAD, PAD))  # zeros, uint8
        ar = torch.arange(s, device=x.device)
        rows = shift[:, 0:1] + ar  # (B, S)
        cols = shift[:, 1:2] + ar
        cols = torch.where(flip[:, None], cols.flip(1), cols)  # mirror the crop window
        flat = (rows[:, :, None] * p + cols[:, None, :]).view(b, 1, s * s).expand(b, c, s * s)
        return padded.view(b, c, p * p).gather(2, flat).view(b, c, s, s)

    def train_batches(
        self, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(x, y)``: a fresh permutation, full batches only, augmented if set.

        All randomness (the permutation, then the crop offsets and flips of every image) is
        drawn from ``generator`` when the iteration starts.
        """
        n, bs = self.num_images, self.batch_size
        gdev = generator.device
        perm = torch.randperm(n, generator=generator, device=gdev).to(self.device)
        if self.augment:
            shifts = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator, device=gdev)
            flips = torch.randint(0, 2, (n,), generator=generator, device=gdev).bool()
            shifts, flips = shifts.to(self.device), flips.to(self.device)
        bs_eff = min(bs, n)
        for step in range(self.steps_per_epoch):
            sl = slice(step * bs_eff, (step + 1) * bs_eff)
            idx = perm[sl]
            x = self.images.index_select(0, idx)
            if self.augment:
                x = self._crop_flip(x, shifts[sl], flips[sl])
            yield self.normalize(x), self.labels.index_select(0, idx)

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """``(x, y, n_valid)`` in a fixed order, no augmentation, always ``batch_size`` rows.

        The last partial batch is completed by wrapping around to the start of the set (tiled
        when the set is smaller than a batch); only its first ``n_valid`` rows are new images,
        so count predictions only for ``x[:n_valid]``. Every image is counted exactly once.
        The normalised set is made on the first call and kept: a pool evaluates it once per
        architecture.
        """
        if self._normalized is None:
            self._normalized = self.normalize(self.images)
        n, bs = self.num_images, self.batch_size
        for start in range(0, n, bs):
            n_valid = min(bs, n - start)
            if n_valid == bs:
                x = self._normalized[start : start + bs]
                y = self.labels[start : start + bs]
            else:
                idx = torch.arange(start, start + bs, device=self.device) % n
                x = self._normalized.index_select(0, idx)
                y = self.labels.index_select(0, idx)
            yield x, y, n_valid
