"""A seeded, download-free image classification set with real (but not trivial) class structure.

Each class owns a fixed smooth colour pattern (a random low-resolution grid upsampled
bilinearly) and a fixed oriented stripe texture. An image of a class is a randomly shifted
window of its class pattern and texture, with a random contrast and brightness, plus a smooth
random colour blob shared by no class (a distractor) and per-pixel noise. A small CNN learns it
well above chance within a couple of epochs, but not perfectly.

Only a :class:`numpy.random.Generator` (PCG64) and elementwise IEEE arithmetic (no matmul, no
transcendental functions) are used, so the bytes are the same on every run and platform.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SYNTHETIC_MEAN", "SYNTHETIC_STD", "make_synthetic"]

#: Fixed normalisation constants for the synthetic set (per channel, pixel values in [0, 1]).
#: The generator is scaled so that its pixels have about this mean and standard deviation.
SYNTHETIC_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SYNTHETIC_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)

_GRID = 4  # resolution of the random grids that are upsampled into smooth patterns
_DISTRACTORS = 64  # size of the bank of class-free distractor blobs
_TEXTURE = 0.35  # amplitude of the class stripe texture (pattern amplitude is 1)
_CONTRAST = (0.3, 0.9)  # range of the per-image class-signal contrast
_DISTRACTOR = 0.9  # amplitude of the class-free blob
_NOISE = 1.6  # width of the uniform per-pixel noise
_SCALE = 100.0  # signal units to uint8 steps
_CHUNK = 256  # images generated at a time (cache-sized work; part of the definition of the data)


def _upsample_weights(grid: int, size: int) -> np.ndarray:
    """(grid, size) bilinear weights mapping ``grid`` samples onto ``size`` pixels (align corners)."""
    pos = np.arange(size, dtype=np.float32) * np.float32(grid - 1) / np.float32(max(size - 1, 1))
    lo = np.minimum(pos.astype(np.int64), grid - 2)
    frac = pos - lo.astype(np.float32)
    w = np.zeros((grid, size), dtype=np.float32)
    cols = np.arange(size)
    w[lo, cols] = np.float32(1) - frac
    w[lo + 1, cols] = frac
    return w


def _upsample(g: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of (..., G, G) grids to (..., size, size), in a fixed summation order."""
    grid = g.shape[-1]
    w = _upsample_weights(grid, size)
    # along x: (..., G, size)
    tmp = g[..., :, 0:1] * w[0]
    for j in range(1, grid):
        tmp = tmp + g[..., :, j : j + 1] * w[j]
    # along y: (..., size, size)
    out = tmp[..., 0:1, :] * w[0][:, None]
    for i in range(1, grid):
        out = out + tmp[..., i : i + 1, :] * w[i][:, None]
    return out


def make_synthetic(
    num_images: int, image_size: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` seeded images of ``num_classes`` balanced classes.

    Returns ``(images, labels)``: uint8 (N, 3, S, S) with S = ``image_size`` and int64 (N,)
    (class counts differ by at most one; order shuffled). The same arguments give the same
    bytes on every run and platform.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if image_size < 4:
        raise ValueError(f"image_size must be >= 4, got {image_size}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    proto_rng, image_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    f32 = np.float32
    size = image_size
    shift = max(1, size // 8)  # random translation of up to +-shift pixels
    canvas = size + 2 * shift

    # ---- class prototypes: a smooth colour pattern plus an oriented stripe texture
    grids = proto_rng.random((num_classes, 3, _GRID, _GRID), dtype=f32) * f32(2) - f32(1)
    patterns = _upsample(grids, canvas)  # (C, 3, canvas, canvas) in [-1, 1]
    # stripes: sign of ((a*x + b*y) mod period) against period/2, with class-specific a, b, period
    a = proto_rng.integers(-2, 3, size=num_classes)
    b = proto_rng.integers(1, 3, size=num_classes) * proto_rng.choice([-1, 1], size=num_classes)
    period = proto_rng.integers(3, 7, size=num_classes)
    stripe_colour = proto_rng.random((num_classes, 3), dtype=f32) * f32(2) - f32(1)
    yy, xx = np.meshgrid(np.arange(canvas), np.arange(canvas), indexing="ij")
    phase = (a[:, None, None] * xx + b[:, None, None] * yy) % period[:, None, None]
    stripes = np.where(2 * phase < period[:, None, None], f32(1), f32(-1))
    textures = stripes[:, None] * stripe_colour[:, :, None, None]  # (C, 3, canvas, canvas)
    prototypes = patterns + f32(_TEXTURE) * textures
    # distractors: smooth colour blobs that belong to no class
    distractors = f32(_DISTRACTOR) * _upsample(
        proto_rng.random((_DISTRACTORS, 3, _GRID, _GRID), dtype=f32) * f32(2) - f32(1), canvas
    )

    # ---- per-image draws
    labels = (np.arange(num_images) % num_classes).astype(np.int64)
    labels = labels[image_rng.permutation(num_images)]
    off = image_rng.integers(0, 2 * shift + 1, size=(num_images, 4))
    which = image_rng.integers(0, _DISTRACTORS, size=num_images)
    contrast = f32(_CONTRAST[0]) + f32(_CONTRAST[1] - _CONTRAST[0]) * image_rng.random(
        num_images, dtype=f32
    )
    brightness = (image_rng.random((num_images, 3), dtype=f32) - f32(0.5)) * f32(0.6)

    # windows[c, ch, dy, dx] is the (size, size) crop at offset (dy, dx)
    proto_win = np.lib.stride_tricks.sliding_window_view(prototypes, (size, size), axis=(2, 3))
    dist_win = np.lib.stride_tricks.sliding_window_view(distractors, (size, size), axis=(2, 3))

    images = np.empty((num_images, 3, size, size), dtype=np.uint8)
    # fixed chunk size (the noise stream is drawn chunk by chunk, so it must not depend on N)
    for lo in range(0, num_images, _CHUNK):
        hi = min(lo + _CHUNK, num_images)
        sl = slice(lo, hi)
        x = proto_win[labels[sl], :, off[sl, 0], off[sl, 1]]  # (n, 3, S, S)
        x *= contrast[sl, None, None, None]
        x += dist_win[which[sl], :, off[sl, 2], off[sl, 3]]
        x += brightness[sl, :, None, None]
        noise = noise_rng.random((hi - lo, 3, size, size), dtype=f32)
        noise -= f32(0.5)
        noise *= f32(_NOISE)
        x += noise
        # to uint8 around 128 (std about 0.25 of the range, as SYNTHETIC_STD says);
        # truncation of a value clipped to [0, 255.5] is floor(x * _SCALE + 128.5)
        x *= f32(_SCALE)
        x += f32(128.5)
        np.clip(x, f32(0), f32(255.5), out=x)
        images[sl] = x
    return images, labels
