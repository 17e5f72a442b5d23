"""A procedural, download-free image set on which the architecture of a small CNN matters.

Every image holds one patch of a fine periodic texture on a smooth coloured background, with
coloured per-pixel noise and (in half of the images) a distractor patch of random binary noise.
The class is the texture, one of ten patterns of period 2, 3 or 4 pixels:

====  ============================  ====  ============================
  0   horizontal stripes, period 2    5   dot lattice, period 3
  1   vertical stripes, period 2      6   line grid, period 3
  2   checkerboard, period 2          7   horizontal stripes, period 4
  3   horizontal lines, period 3      8   vertical stripes, period 4
  4   vertical lines, period 3        9   checkerboard of 2x2 blocks
====  ============================  ====  ============================

The patch has a random size (half the image side to all of it), position and phase; the
texture has a random amplitude and sign (bright or dark lines) on top of the background, whose
colour, like the noise's and the distractor's, is random. So brightness, colour, area and
position carry no class information: the network must resolve the period and orientation of a
weak, noisy, high-frequency pattern. Average pooling early in a cell blurs exactly these
frequencies away, while convolutions at full resolution and skip paths keep them, so the cell
decides how well (and how fast) a small network learns the task.

Labels are invariant to the usual augmentation: every texture maps to itself under a
horizontal flip and under shifts.

Only a :class:`numpy.random.Generator` (PCG64), integer arithmetic and elementwise float32
additions, multiplications and divisions are used (no transcendental functions, no matmul),
in a fixed order, so the same arguments give the same bytes on every run and platform. The
textures are constants: the ``seed`` only decides which images are drawn, so sets generated
with different seeds (training images, held-out test images) come from the same task.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_CLASSES",
    "PROCEDURAL_MEAN",
    "PROCEDURAL_STD",
    "TEXTURES",
    "make_procedural",
    "texture_maps",
]

#: Fixed normalisation constants (per channel, pixel values in [0, 1]); the generator is scaled
#: so that its pixels have about this mean and standard deviation.
PROCEDURAL_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
PROCEDURAL_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)

#: The class names, in label order.
TEXTURES: tuple[str, ...] = (
    "hstripes2",
    "vstripes2",
    "checker2",
    "hlines3",
    "vlines3",
    "dots3",
    "grid3",
    "hstripes4",
    "vstripes4",
    "checker4",
)
MAX_CLASSES = len(TEXTURES)

# ---- the definition of the data: changing any of these changes every image (and the
# ---- shipped ground truth of the embedded space, which was measured on these images)
_AMPLITUDE = (0.3, 0.9)  # texture amplitude range (signal units; the sign is random)
_NOISE = 1.2  # width of the centred uniform per-pixel noise
_BACKGROUND = 0.6  # half-range of the smooth background colour field
_BG_GRID = 3  # resolution of the random grid that is upsampled into the background
_COVER = (0.5, 1.0)  # patch side as a share of the image side
_PHASES = 12  # texture phases drawn per axis (a multiple of every period)
_DISTRACTOR_P = 0.5  # share of images with a random binary-noise patch
_DISTRACTOR_AMPLITUDE = (0.3, 0.9)
_SCALE = 100.0  # signal units to uint8 steps
_SEED_SALT = 0x7E87  # keeps these streams apart from other generators seeded alike


def texture_maps(kind: np.ndarray, py: np.ndarray, px: np.ndarray, size: int) -> np.ndarray:
    """(n, S, S) float32 0/1 maps of texture ``kind[i]`` at phase ``(py[i], px[i])``."""
    n = len(kind)
    ar = np.arange(size, dtype=np.int64)
    y = ar[None, :, None] + np.asarray(py, dtype=np.int64)[:, None, None]  # (n, S, 1)
    x = ar[None, None, :] + np.asarray(px, dtype=np.int64)[:, None, None]  # (n, 1, S)
    shape = (n, size, size)

    def full(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, shape)

    maps = np.stack(
        [
            full(y % 2 == 0),
            full(x % 2 == 0),
            full((x + y) % 2 == 0),
            full(y % 3 == 0),
            full(x % 3 == 0),
            full((y % 3 == 0) & (x % 3 == 0)),
            full((y % 3 == 0) | (x % 3 == 0)),
            full(y % 4 < 2),
            full(x % 4 < 2),
            full((y // 2 + x // 2) % 2 == 0),
        ]
    )  # (T, n, S, S)
    return maps[np.asarray(kind, dtype=np.int64), np.arange(n)].astype(np.float32)


def _box(size: int, y0: np.ndarray, x0: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n, S, S) float32 masks of the boxes [y0, y0 + h) x [x0, x0 + w)."""
    ar = np.arange(size, dtype=np.int64)
    rows = (ar[None, :] >= y0[:, None]) & (ar[None, :] < (y0 + h)[:, None])
    cols = (ar[None, :] >= x0[:, None]) & (ar[None, :] < (x0 + w)[:, None])
    return (rows[:, :, None] & cols[:, None, :]).astype(np.float32)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling (corners aligned) of (..., G, G) to (..., S, S), in a fixed order."""
    g = grid.shape[-1]
    pos = np.arange(size, dtype=np.float32) * np.float32(g - 1) / np.float32(max(size - 1, 1))
    lo = np.minimum(pos.astype(np.int64), g - 2)
    frac = pos - lo.astype(np.float32)
    one = np.float32(1)
    rows = grid[..., lo, :] * (one - frac)[:, None] + grid[..., lo + 1, :] * frac[:, None]
    return rows[..., lo] * (one - frac) + rows[..., lo + 1] * frac


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) random colour directions whose largest component is +-1."""
    c = rng.random((n, 3), dtype=np.float32) * np.float32(2) - np.float32(1)
    peak = np.maximum(np.abs(c).max(axis=1, keepdims=True), np.float32(0.05))
    return c / peak


def _uniform(rng: np.random.Generator, n: int, lo_hi: tuple[float, float]) -> np.ndarray:
    lo, hi = (np.float32(v) for v in lo_hi)
    return lo + (hi - lo) * rng.random(n, dtype=np.float32)


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2, size=n).astype(np.float32) * np.float32(2) - np.float32(1)


def make_procedural(
    num_images: int, image_size: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` seeded images of ``num_classes`` (2..10) balanced texture classes.

    Returns ``(images, labels)``: uint8 (N, 3, S, S) with S = ``image_size`` (>= 8) and int64
    (N,) (class counts differ by at most one; order shuffled); label k is ``TEXTURES[k]``. The
    same arguments give the same bytes on every run and platform; another ``seed`` draws
    other images of the same task.
    """
    n, size, classes = int(num_images), int(image_size), int(num_classes)
    if n < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must lie in 2..{MAX_CLASSES}, got {num_classes}")
    f32 = np.float32
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SEED_SALT]))

    # every draw below happens in this order, once per call, for all images at a time
    labels = (np.arange(n) % classes).astype(np.int64)[rng.permutation(n)]
    grid = (rng.random((n, 3, _BG_GRID, _BG_GRID), dtype=f32) - f32(0.5)) * f32(2 * _BACKGROUND)
    images = _upsample(grid, size)  # (n, 3, S, S) background

    # distractor: a box of random binary noise in a random colour
    has_d = (rng.random(n, dtype=f32) < f32(_DISTRACTOR_P)).astype(f32)
    dh = rng.integers(3, size // 2 + 1, size=n)
    dw = rng.integers(3, size // 2 + 1, size=n)
    dy = rng.integers(0, size - dh + 1)
    dx = rng.integers(0, size - dw + 1)
    bits = rng.integers(0, 2, size=(n, size, size)).astype(f32) * f32(2) - f32(1)
    d_amp = _uniform(rng, n, _DISTRACTOR_AMPLITUDE)
    d_col = _colours(rng, n)

    # the textured patch: grey (the same on all channels), random amplitude and sign
    lo, hi = int(_COVER[0] * size), int(_COVER[1] * size)
    ph = rng.integers(lo, hi + 1, size=n)
    pw = rng.integers(lo, hi + 1, size=n)
    py0 = rng.integers(0, size - ph + 1)
    px0 = rng.integers(0, size - pw + 1)
    phase_y = rng.integers(0, _PHASES, size=n)
    phase_x = rng.integers(0, _PHASES, size=n)
    amp = _uniform(rng, n, _AMPLITUDE) * _signs(rng, n)

    patch = _box(size, py0, px0, ph, pw)
    texture = patch * (texture_maps(labels, phase_y, phase_x, size) * f32(2) - f32(1))
    distractor = _box(size, dy, dx, dh, dw) * has_d[:, None, None] * (f32(1) - patch)
    images += (texture * amp[:, None, None])[:, None]
    images += (distractor * bits * d_amp[:, None, None])[:, None] * d_col[:, :, None, None]

    noise = rng.random((n, 3, size, size), dtype=f32) - f32(0.5)
    images += noise * f32(_NOISE)
    # to uint8 around 128: truncation of a value clipped to [0, 255.5] is a rounding
    images *= f32(_SCALE)
    images += f32(128.5)
    np.clip(images, f32(0), f32(255.5), out=images)
    return images.astype(np.uint8), labels
