"""Ranking and search metrics of a trained super-net (spec section 5).

``s`` holds super-net accuracies and ``g`` ground-truth (GT) accuracies as fractions, paired
by architecture: ``s[i]`` and ``g[i]`` belong to the same architecture. Only numpy and scipy
are used, so analysis tools can import this module without torch or Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

BIN_WIDTH = 0.001
"""The default GT bin width t of the sparse correlations: the paper's 0.1% (the authors'
code used 0.01, which is an option, never the default; ``metrics.skdt_threshold``)."""

UNTRAINED_ACC = 0.4
"""Runs whose mean super-net accuracy is below this are flagged untrained (paper Fig. 6)."""

_BIN_EPS = 1e-9  # 0.043 / 0.001 == 42.999...; the nudge keeps boundary values in their bin.
_GT_SLACK = 1e-12  # rounding slack when checking that the pool's GT comes from space_gt


def _vector(x: ArrayLike, name: str, min_len: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} item(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _pair(s: ArrayLike, g: ArrayLike, min_len: int = 2) -> tuple[np.ndarray, np.ndarray]:
    s_arr, g_arr = _vector(s, "s", min_len), _vector(g, "g", min_len)
    if s_arr.size != g_arr.size:
        raise ValueError(f"s and g must pair up: lengths {s_arr.size} != {g_arr.size}")
    return s_arr, g_arr


def _threshold(threshold: float) -> float:
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold}")
    return float(threshold)


def _correlation(fn: Callable, x: np.ndarray, y: np.ndarray) -> float:
    # A constant input leaves tau-b and rho undefined: return nan without scipy's warning.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    stat, _ = fn(x, y)
    return float(stat)


def kendall_tau(s: ArrayLike, g: ArrayLike) -> float:
    """Kendall tau-b between ``s`` and ``g`` (ties corrected); nan if either is constant."""
    return _correlation(stats.kendalltau, *_pair(s, g))


def spearman(s: ArrayLike, g: ArrayLike) -> float:
    """Spearman rho (average ranks for ties); nan if either input is constant."""
    return _correlation(stats.spearmanr, *_pair(s, g))


def gt_bins(g: ArrayLike, threshold: float = BIN_WIDTH) -> np.ndarray:
    """Bin index ``floor(g / threshold + 1e-9)`` per GT accuracy, as int64.

    Architectures in the same ``threshold``-wide bin share a rank; the 1e-9 keeps a value on a
    bin boundary (0.93 at 0.001) in its own bin despite floating-point division.
    """
    t = _threshold(threshold)
    g_arr = _vector(g, "g", 1)
    return np.floor(g_arr / t + _BIN_EPS).astype(np.int64)


def sparse_kendall_tau(s: ArrayLike, g: ArrayLike, threshold: float = BIN_WIDTH) -> float:
    """Sparse Kendall tau (s-KdT): tau-b between ``s`` and ``gt_bins(g, threshold)``."""
    s_arr, g_arr = _pair(s, g)
    return _correlation(stats.kendalltau, s_arr, gt_bins(g_arr, threshold).astype(np.float64))


def sparse_spearman(s: ArrayLike, g: ArrayLike, threshold: float = BIN_WIDTH) -> float:
    """Spearman rho between ``s`` and ``gt_bins(g, threshold)``."""
    s_arr, g_arr = _pair(s, g)
    return _correlation(stats.spearmanr, s_arr, gt_bins(g_arr, threshold).astype(np.float64))


MATRIX_MAX = 1024  # pools up to this size are resampled with n x n matrices (8 MB each);
# beyond, one resample at a time is as fast (about 1,500 on 2 cores) and needs no such memory
_CHUNK = 256  # resamples per matrix product: memory stays bounded whatever --bootstrap says


RANK_CORRELATIONS = ("kendall_tau", "sparse_kendall_tau", "spearman", "sparse_spearman")


def resampled_correlations(
    s: ArrayLike, g: ArrayLike, counts: ArrayLike, threshold: float = BIN_WIDTH
) -> dict[str, np.ndarray]:
    """The four rank correlations (keyed as in ``metrics.json``) of many resamples of one pool
    at once, for bootstrap intervals; nan where a resample leaves one side constant.

    Row b of ``counts`` says how many times each architecture was drawn. Each value equals the
    function's own (:func:`kendall_tau` ... on ``s[idx]``, ``g[idx]``) up to rounding, but the
    pairs are counted with quadratic forms instead of sorting every resample: tau-b's
    concordant minus discordant pairs are ``w S w / 2`` with ``S[i, j] = sign(s_i - s_j)
    sign(g_i - g_j)``, and its tied pairs ``(w T w - sum w) / 2`` with ``T`` the equal pairs
    (copies of one architecture tie with each other); Spearman's average ranks are the drawn
    values below plus half of those equal (plus one half).
    """
    s_arr, g_arr = _pair(s, g)
    w = np.asarray(counts)
    if w.ndim != 2 or w.shape[1] != s_arr.size:
        raise ValueError(f"counts must have shape (resamples, {s_arr.size}), got {w.shape}")
    if w.size and (not np.issubdtype(w.dtype, np.integer) or w.min() < 0 or w.sum(1).min() < 2):
        raise ValueError("counts must be non-negative integers, at least 2 draws per resample")
    w = w.astype(np.float64)
    if len(w) > _CHUNK:
        parts = [
            resampled_correlations(s_arr, g_arr, c, threshold)
            for c in np.split(w.astype(np.int64), range(_CHUNK, len(w), _CHUNK))
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if s_arr.size > MATRIX_MAX:  # n x n matrices would not fit: one resample at a time
        drawn = [np.repeat(np.arange(s_arr.size), row.astype(np.int64)) for row in w]
        return {
            "kendall_tau": np.array([kendall_tau(s_arr[d], g_arr[d]) for d in drawn]),
            "sparse_kendall_tau": np.array(
                [sparse_kendall_tau(s_arr[d], g_arr[d], threshold) for d in drawn]
            ),
            "spearman": np.array([spearman(s_arr[d], g_arr[d]) for d in drawn]),
            "sparse_spearman": np.array(
                [sparse_spearman(s_arr[d], g_arr[d], threshold) for d in drawn]
            ),
        }
    bins = gt_bins(g_arr, threshold).astype(np.float64)
    out = {}
    for name, y in (("", g_arr), ("sparse_", bins)):
        out[f"{name}kendall_tau"] = _resampled_tau(s_arr, y, w)
        out[f"{name}spearman"] = _resampled_rho(s_arr, y, w)
    # within [-1, 1] as scipy's are (rounding can pass them by 1e-16)
    return {k: np.clip(out[k], -1.0, 1.0) for k in RANK_CORRELATIONS}


def _quadratic(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``w[b] @ m @ w[b]`` for every row b."""
    return ((w @ m) * w).sum(axis=1)


def _resampled_tau(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    dx, dy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    drawn = w.sum(axis=1)
    pairs = drawn * (drawn - 1) / 2
    concordance = _quadratic(w, dx * dy) / 2
    ties_x = (_quadratic(w, (dx == 0).astype(np.float64)) - drawn) / 2
    ties_y = (_quadratic(w, (dy == 0).astype(np.float64)) - drawn) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(pairs - ties_x) / np.sqrt(pairs - ties_y)
    return np.where((pairs - ties_x > 0) & (pairs - ties_y > 0), tau, np.nan)


def _resampled_rho(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    drawn = w.sum(axis=1, keepdims=True)

    def ranks(v: np.ndarray) -> np.ndarray:  # each architecture's average rank in each resample
        below = w @ (v[:, None] < v[None, :]).astype(np.float64)
        equal = w @ (v[:, None] == v[None, :]).astype(np.float64)
        return below + (equal + 1) / 2

    rx, ry = ranks(x), ranks(y)
    rx = rx - (w * rx).sum(axis=1, keepdims=True) / drawn
    ry = ry - (w * ry).sum(axis=1, keepdims=True) / drawn
    vx, vy = (w * rx * rx).sum(axis=1), (w * ry * ry).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (w * rx * ry).sum(axis=1) / np.sqrt(vx * vy)
    # a constant side has all ranks equal: its variance is 0 up to rounding
    scale = drawn[:, 0] ** 3
    return np.where((vx > 1e-9 * scale) & (vy > 1e-9 * scale), rho, np.nan)


def top_n_indices(s: ArrayLike, top_n: int) -> np.ndarray:
    """Indices of the ``top_n`` largest ``s``, best first.

    Ties are broken by the lower index first (a stable sort), so the selection is
    reproducible whatever the sort implementation.
    """
    s_arr = _vector(s, "s", 1)
    if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)):
        raise ValueError(f"top_n must be an int, got {top_n!r}")
    if not 1 <= top_n <= s_arr.size:
        raise ValueError(f"top_n must be in [1, {s_arr.size}], got {top_n}")
    return np.argsort(-s_arr, kind="stable")[:top_n].astype(np.int64)


def p_beat_random(s: ArrayLike, g: ArrayLike, space_gt: ArrayLike, top_n: int = 3) -> float:
    """Probability P>R that ``top_n`` random architectures are all worse than the search's.

    g* is the best GT accuracy among the ``top_n`` architectures by ``s``. Its rank r is
    counted in ``space_gt`` (GT of every architecture of the searched (sub-)space) from the
    best: r = 1 + number of entries strictly greater than g*, so architectures tied with g*
    do not push it down. With N = len(space_gt), P>R = (1 - r / N) ** top_n.
    The pool is drawn from the space, so a g* outside the range of ``space_gt`` (beyond a
    1e-12 rounding slack) means mismatched inputs and raises ``ValueError``.
    """
    s_arr, g_arr = _pair(s, g, min_len=1)
    space = _vector(space_gt, "space_gt", 1)
    top = top_n_indices(s_arr, top_n)
    if _no_choice(s_arr, top_n):
        return float("nan")
    best = g_arr[top].max()
    if not space.min() - _GT_SLACK <= best <= space.max() + _GT_SLACK:
        raise ValueError(
            f"best GT of the top {top_n} ({best}) lies outside space_gt's range "
            f"[{space.min()}, {space.max()}]: space_gt must hold the GT of the searched space"
        )
    rank = min(1 + int(np.count_nonzero(space > best)), space.size)
    return float((1.0 - rank / space.size) ** top_n)


def final_performance(s: ArrayLike, g: ArrayLike, top_n: int = 3) -> float:
    """Mean GT accuracy of the ``top_n`` architectures by super-net accuracy (NaN where
    the super-net ranks none above another, as for P>R)."""
    s_arr, g_arr = _pair(s, g, min_len=1)
    top = top_n_indices(s_arr, top_n)
    return float("nan") if _no_choice(s_arr, top_n) else float(g_arr[top].mean())


def _no_choice(s: np.ndarray, top_n: int) -> bool:
    """Whether a super-net whose accuracies are `s` picks no top n at all: every accuracy is
    the same (a collapsed super-net) and the pool is larger than n, so any n would be the
    pool's first n in draw order, a random search rather than the super-net's (the paper
    prints N/A there). Ties only at the top n's boundary still go to the earlier entry."""
    return s.size > top_n and bool(np.all(s == s[0]))


def _json_safe(x: float) -> float | None:
    return None if math.isnan(x) else x


def summarize(
    s: ArrayLike,
    g: ArrayLike,
    space_gt: ArrayLike,
    *,
    threshold: float = BIN_WIDTH,
    top_n: int = 3,
) -> dict[str, float | None]:
    """All per-run metrics as plain floats, keyed as in ``metrics.json``.

    ``supernet_acc_std`` is the population std (ddof=0) over the pool. An undefined
    correlation (constant input) is ``None`` so that the dict serialises as strict JSON; so are
    P>R and the final performance of a super-net that gives every architecture the same accuracy.
    """
    s_arr, g_arr = _pair(s, g)
    return {
        "supernet_acc_mean": float(s_arr.mean()),
        "supernet_acc_std": float(s_arr.std(ddof=0)),
        "kendall_tau": _json_safe(kendall_tau(s_arr, g_arr)),
        "sparse_kendall_tau": _json_safe(sparse_kendall_tau(s_arr, g_arr, threshold)),
        "spearman": _json_safe(spearman(s_arr, g_arr)),
        "sparse_spearman": _json_safe(sparse_spearman(s_arr, g_arr, threshold)),
        "p_beat_random": _json_safe(p_beat_random(s_arr, g_arr, space_gt, top_n)),
        "final_performance": _json_safe(final_performance(s_arr, g_arr, top_n)),
    }


def is_untrained(supernet_acc_mean: float) -> bool:
    """True when a run's mean super-net accuracy is below ``UNTRAINED_ACC``."""
    return bool(supernet_acc_mean < UNTRAINED_ACC)
