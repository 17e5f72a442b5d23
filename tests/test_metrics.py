"""Tests of nasheur.metrics against scipy, a brute-force tau-b and hand-computed answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from nasheur import metrics as M
from tests.conftest import METRIC_KEYS

SEEDS = range(25)


def brute_tau_b(x, y) -> float:
    """Textbook tau-b: (C - D) / sqrt((n0 - n1)(n0 - n2)), O(n^2) over all pairs.

    n0 = number of pairs, n1 = pairs tied in x, n2 = pairs tied in y (a pair tied in both
    counts in n1 and n2 and is neither concordant nor discordant).
    """
    n = len(x)
    conc = disc = tied_x = tied_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            tied_x += dx == 0
            tied_y += dy == 0
            if dx * dy > 0:
                conc += 1
            elif dx * dy < 0:
                disc += 1
    n0 = n * (n - 1) // 2
    return (conc - disc) / math.sqrt((n0 - tied_x) * (n0 - tied_y))


def _random_pair(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.1, 0.9, n)
    g = 0.8 * s + rng.normal(0, 0.05, n)
    return s, g


# --- agreement with scipy and with the brute force ------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_scipy_continuous(seed):
    s, g = _random_pair(seed)
    assert M.kendall_tau(s, g) == pytest.approx(stats.kendalltau(s, g)[0], abs=1e-12)
    assert M.spearman(s, g) == pytest.approx(stats.spearmanr(s, g)[0], abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_scipy_with_ties(seed):
    s, g = _random_pair(seed)
    s, g = np.round(s, 1), np.round(g, 2)  # many ties in both
    assert M.kendall_tau(s, g) == pytest.approx(stats.kendalltau(s, g)[0], abs=1e-12)
    assert M.spearman(s, g) == pytest.approx(stats.spearmanr(s, g)[0], abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_brute_force_tau_b(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(3, 25))
    x = rng.integers(0, 4, n)
    y = rng.integers(0, 4, n)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        x[0], y[0] = x[0] + 1, y[0] + 1  # keep tau-b defined
    assert M.kendall_tau(x, y) == pytest.approx(brute_tau_b(x, y), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_sparse_matches_integer_bins(seed):
    # GT on a 0.0001 grid: g = k / 10000, so its 0.001 bin is k // 10 in exact integer
    # arithmetic (one in ten values sits exactly on a bin boundary).
    rng = np.random.default_rng(2000 + seed)
    k = rng.integers(8500, 8700, 80)
    g = k / 10000
    s = k / 10000 + rng.normal(0, 0.01, k.size)
    bins = k // 10
    assert np.array_equal(M.gt_bins(g), bins)
    assert M.sparse_kendall_tau(s, g) == pytest.approx(brute_tau_b(s, bins), abs=1e-12)
    assert M.sparse_spearman(s, g) == pytest.approx(stats.spearmanr(s, bins)[0], abs=1e-12)
    coarse = k // 100  # threshold 0.01
    assert M.sparse_kendall_tau(s, g, threshold=0.01) == pytest.approx(
        brute_tau_b(s, coarse), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_paired_by_architecture(seed):
    # Shuffling the pool (both lists together) changes nothing: pairs, not positions, count.
    s, g = _random_pair(seed)
    perm = np.random.default_rng(seed).permutation(s.size)
    space = np.concatenate([g, [0.0, 1.0]])
    a, b = M.summarize(s, g, space), M.summarize(s[perm], g[perm], space)
    assert a == pytest.approx(b, abs=1e-12)


# --- hand-computed correlations ----------------------------------------------------------------


def test_perfect_and_reversed_order():
    s, g = [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]
    assert M.kendall_tau(s, g) == pytest.approx(1.0)
    assert M.spearman(s, g) == pytest.approx(1.0)
    assert M.kendall_tau(s, g[::-1]) == pytest.approx(-1.0)
    assert M.spearman(s, g[::-1]) == pytest.approx(-1.0)


def test_tau_b_with_ties_by_hand():
    # s = [1, 2, 2, 3], g = [1, 2, 3, 3]; the 6 pairs: (0,1) (0,2) (0,3) (1,3) concordant,
    # (1,2) tied in s only, (2,3) tied in g only. tau-b = (4 - 0) / sqrt((6-1)(6-1)) = 0.8.
    assert M.kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)


def test_spearman_by_hand():
    # Rank differences d = [0, 1, 1, 0]: rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    assert M.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_spearman_with_ties_by_hand():
    # average ranks: [1, 1, 2, 2] -> [1.5, 1.5, 3.5, 3.5]; Pearson of the ranks: centred
    # (-1.5, -.5, .5, 1.5) and (-1, -1, 1, 1), 4 / (sqrt(5) * 2)
    assert M.spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(2 / math.sqrt(5))


def test_shared_bin_by_hand():
    # g = [0.9001, 0.9005, 0.95] -> bins [900, 900, 950]. With s increasing, pair (0,1) is
    # tied in the bins only, (0,2) and (1,2) are concordant: C = 2, D = 0, n0 = 3, n1 = 0,
    # n2 = 1, so s-KdT = 2 / sqrt(3 * 2) = 0.8165; the plain tau on g is 1.
    s, g = [0.1, 0.2, 0.3], [0.9001, 0.9005, 0.95]
    assert list(M.gt_bins(g)) == [900, 900, 950]
    assert M.kendall_tau(s, g) == pytest.approx(1.0)
    assert M.sparse_kendall_tau(s, g) == pytest.approx(2 / math.sqrt(6))


def test_bin_boundaries():
    # Plain division falls just short of some boundaries (0.7 / 0.001 == 699.999...), which is
    # why the +1e-9 nudge exists; every boundary must land in its own bin.
    assert math.floor(0.7 / 0.001) == 699
    assert math.floor(0.29 / 0.01) == 28
    assert M.gt_bins([0.7, 0.93]).tolist() == [700, 930]
    assert M.gt_bins([0.29], threshold=0.01).tolist() == [29]
    assert M.gt_bins([0.93 - 1e-7, 0.9309999]).tolist() == [929, 930]
    assert M.gt_bins(np.arange(1001) / 1000).tolist() == list(range(1001))
    assert M.gt_bins([0.93], threshold=0.01).tolist() == [93]
    assert M.gt_bins([0.5]).dtype == np.int64


def test_larger_threshold_merges_more():
    # At 0.001 the bins 931, 938, 945 are distinct, so reversed s gives -1. At 0.01 they are
    # 93, 93, 94: pair (0,1) is tied in the bins only and the other two are discordant,
    # so tau-b = -2 / sqrt(3 * 2).
    s, g = [0.3, 0.2, 0.1], [0.931, 0.938, 0.945]
    assert M.sparse_kendall_tau(s, g) == pytest.approx(-1.0)
    assert M.gt_bins(g, threshold=0.01).tolist() == [93, 93, 94]
    assert M.sparse_kendall_tau(s, g, threshold=0.01) == pytest.approx(-2 / math.sqrt(6))


def test_constant_input_is_nan():
    assert math.isnan(M.kendall_tau([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))
    assert math.isnan(M.spearman([0.1, 0.2, 0.3], [0.7, 0.7, 0.7]))
    assert math.isnan(M.sparse_kendall_tau([0.1, 0.2, 0.3], [0.9001, 0.9002, 0.9009]))


# --- top-n, P>R and final performance ---------------------------------------------------------


def test_top_n_indices_stable():
    s = [0.5, 0.9, 0.5, 0.9, 0.1]
    assert M.top_n_indices(s, 1).tolist() == [1]
    assert M.top_n_indices(s, 3).tolist() == [1, 3, 0]
    assert M.top_n_indices(s, 5).tolist() == [1, 3, 0, 2, 4]


SPACE = np.arange(1, 11) / 10  # N = 10 architectures, GT 0.1 .. 1.0


def test_p_beat_random_best_of_space():
    # Top 3 by s are indices 0, 1, 2 whose best GT is 1.0, the best of the space: r = 1.
    s, g = [0.9, 0.8, 0.7, 0.1], [0.3, 1.0, 0.2, 0.9]
    assert M.p_beat_random(s, g, SPACE) == pytest.approx((1 - 1 / 10) ** 3)


def test_p_beat_random_worst_of_space():
    s, g = [0.9, 0.8, 0.7, 0.1], [0.1, 0.1, 0.1, 1.0]
    assert M.p_beat_random(s, g, SPACE) == 0.0


def test_p_beat_random_middle_by_hand():
    # Best GT of the top 3 is 0.7; 0.8, 0.9, 1.0 beat it, so r = 4: (1 - 4/10)^3 = 0.216.
    s, g = [0.9, 0.8, 0.7, 0.1], [0.7, 0.2, 0.5, 1.0]
    assert M.p_beat_random(s, g, SPACE) == pytest.approx(0.216)
    # n = 1: only index 0 is taken; n = 2 with its own exponent.
    assert M.p_beat_random(s, g, SPACE, top_n=1) == pytest.approx(0.6)
    assert M.p_beat_random(s, g, SPACE, top_n=2) == pytest.approx(0.36)


def test_p_beat_random_ties():
    # Ties in s: top-1 is the lower index (0, GT 0.5), not index 1 (GT 1.0): r = 6.
    s, g = [0.5, 0.5, 0.1], [0.5, 1.0, 0.9]
    assert M.p_beat_random(s, g, SPACE, top_n=1) == pytest.approx(1 - 6 / 10)
    # Ties in the space: only strictly better entries count, so g* = 0.9 has r = 1.
    assert M.p_beat_random([1.0, 0.0], [0.9, 0.5], [0.9, 0.9, 0.8, 0.5], top_n=2) == (
        pytest.approx(0.75**2)
    )


def test_final_performance_by_hand():
    s, g = [0.2, 0.9, 0.5, 0.7, 0.1], [0.91, 0.93, 0.80, 0.86, 0.95]
    assert M.final_performance(s, g) == pytest.approx((0.93 + 0.86 + 0.80) / 3)
    assert M.final_performance(s, g, top_n=1) == pytest.approx(0.93)


def test_a_collapsed_supernet_selects_no_top_n():
    # every architecture at the same accuracy: any top 3 would be the first 3 drawn, a random
    # search; the paper prints N/A, the metrics say NaN (None in summarize)
    s, g = [0.1] * 5, [0.9, 0.8, 0.7, 0.95, 0.99]
    assert math.isnan(M.final_performance(s, g))
    assert math.isnan(M.p_beat_random(s, g, g))
    out = M.summarize(s, g, g)
    assert out["final_performance"] is None and out["p_beat_random"] is None
    # a pool of exactly n needs no choice; ties only at the boundary keep the stable order
    assert M.final_performance([0.1] * 3, [0.9, 0.8, 0.7]) == pytest.approx(0.8)
    assert M.final_performance(
        [0.5, 0.1, 0.1, 0.1], [0.9, 0.8, 0.7, 0.6], top_n=2
    ) == pytest.approx(0.85)


# --- summarize and untrained flag -------------------------------------------------------------


def test_summarize_values():
    s, g = [0.2, 0.4, 0.6, 0.8], [0.90, 0.92, 0.91, 0.95]
    out = M.summarize(s, g, SPACE.tolist() + g)
    assert set(out) == METRIC_KEYS
    assert all(type(v) is float for v in out.values())
    assert out["supernet_acc_mean"] == pytest.approx(0.5)
    assert out["supernet_acc_std"] == pytest.approx(math.sqrt(0.05))  # ddof = 0
    # pairs: 5 concordant (all but 0.92 > 0.91 against 0.4 < 0.6), 1 discordant, no ties
    assert out["kendall_tau"] == pytest.approx(4 / 6)
    assert out["spearman"] == pytest.approx(0.8)  # GT ranks 1, 3, 2, 4: 1 - 6*2/(4*15)
    assert out["final_performance"] == pytest.approx((0.95 + 0.91 + 0.92) / 3)
    json.dumps(out, allow_nan=False)


def test_summarize_bins_the_sparse_correlations_and_no_others():
    # GT in two 0.1%-wide bins, [900, 900, 950, 950], with the super-net's order inside each:
    # plain correlations see a perfect ranking, the sparse ones the ties. Worked by hand:
    # tau-b = (4 - 0) / sqrt(6 * (6 - 2)); Spearman with GT ranks 1.5, 1.5, 3.5, 3.5 gives
    # sum (-1.5, -.5, .5, 1.5) x (-1, -1, 1, 1) / (sqrt(5) x 2)
    s, g = [0.1, 0.2, 0.3, 0.4], [0.9001, 0.9005, 0.9502, 0.9508]
    out = M.summarize(s, g, g)
    assert out["kendall_tau"] == pytest.approx(1.0)
    assert out["spearman"] == pytest.approx(1.0)
    assert out["sparse_kendall_tau"] == pytest.approx(2 / math.sqrt(6))
    assert out["sparse_spearman"] == pytest.approx(2 / math.sqrt(5))
    # the top 3 hold the best GT of the space searched: rank 1 of 4, (1 - 1/4)^3
    assert out["p_beat_random"] == pytest.approx(0.75**3)
    assert out["final_performance"] == pytest.approx((0.9005 + 0.9502 + 0.9508) / 3)
    # 10%-wide bins put every GT in one: the sparse correlations are undefined, not plain
    coarse = M.summarize(s, g, g, threshold=0.1)
    assert coarse["sparse_kendall_tau"] is None and coarse["sparse_spearman"] is None
    assert coarse["kendall_tau"] == pytest.approx(1.0)
    # top_n reaches P>R and the final performance: the top 1 is the best of 4
    top1 = M.summarize(s, g, g, top_n=1)
    assert top1["p_beat_random"] == pytest.approx(0.75)
    assert top1["final_performance"] == pytest.approx(0.9508)


def test_summarize_constant_s_is_json_safe():
    out = M.summarize([0.3, 0.3, 0.3], [0.90, 0.92, 0.91], [0.90, 0.91, 0.92, 0.93])
    assert set(out) == METRIC_KEYS
    for key in ("kendall_tau", "sparse_kendall_tau", "spearman", "sparse_spearman"):
        assert out[key] is None
    assert out["supernet_acc_std"] == 0.0
    assert json.loads(json.dumps(out, allow_nan=False))["kendall_tau"] is None


def test_is_untrained():
    assert M.UNTRAINED_ACC == 0.4
    assert M.is_untrained(0.39)
    assert not M.is_untrained(0.4)
    assert not M.is_untrained(0.9)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: M.kendall_tau([0.1, 0.2], [0.1, 0.2, 0.3]),
        lambda: M.kendall_tau([0.1], [0.2]),
        lambda: M.spearman([], []),
        lambda: M.spearman([0.1, math.nan], [0.1, 0.2]),
        lambda: M.kendall_tau([0.1, 0.2], [0.1, math.inf]),
        lambda: M.kendall_tau([[0.1, 0.2]], [[0.1, 0.2]]),
        lambda: M.sparse_kendall_tau([0.1, 0.2], [0.1, 0.2], threshold=0),
        lambda: M.sparse_spearman([0.1, 0.2], [0.1, 0.2], threshold=-0.01),
        lambda: M.gt_bins([0.1], threshold=math.nan),
        lambda: M.gt_bins([]),
        lambda: M.top_n_indices([0.1, 0.2], 0),
        lambda: M.top_n_indices([0.1, 0.2], 3),
        lambda: M.top_n_indices([0.1, 0.2], 1.5),
        lambda: M.final_performance([], [], top_n=1),
        lambda: M.final_performance([0.1, 0.2], [0.1, 0.2], top_n=3),
        lambda: M.p_beat_random([0.1, 0.2], [0.1, 0.2], [], top_n=1),
        lambda: M.p_beat_random([0.1, 0.2], [0.1, 0.2], [0.1, 0.2], top_n=0),
        lambda: M.p_beat_random([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], SPACE, top_n=4),
        lambda: M.p_beat_random([0.1, 0.2], [0.1, 0.99], [0.1, 0.5], top_n=2),  # g* > space
        lambda: M.p_beat_random([0.1, 0.2], [0.01, 0.02], [0.1, 0.5], top_n=2),  # g* < space
    ],
)
def test_invalid_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_summarize_refuses_a_threshold_that_bins_nothing():
    with pytest.raises(ValueError, match="threshold"):
        M.summarize([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], SPACE, threshold=0)


@pytest.mark.parametrize("seed", range(6))
# matrices; matrices 7 resamples at a time; a resample at a time
@pytest.mark.parametrize(("matrix_max", "chunk"), [(1024, 256), (1024, 7), (1, 256)])
def test_resampled_correlations_equal_each_resample_s_own(seed, matrix_max, chunk, monkeypatch):
    monkeypatch.setattr(M, "MATRIX_MAX", matrix_max)
    monkeypatch.setattr(M, "_CHUNK", chunk)
    # the bootstrap's quadratic forms against scipy on each resample itself: ties in both
    # inputs (rounded values), a GT that bins coarsely, and a constant super-net
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    s = np.round(rng.uniform(0.5, 0.9, n), int(rng.integers(1, 4)))
    g = np.round(rng.uniform(0.85, 0.95, n), int(rng.integers(2, 5)))
    if seed == 0:
        s[:] = 0.5
    draws = [rng.integers(n, size=n) for _ in range(25)]
    counts = np.array([np.bincount(d, minlength=n) for d in draws])
    got = M.resampled_correlations(s, g, counts, threshold=0.001)
    for b, d in enumerate(draws):
        want = {
            "kendall_tau": M.kendall_tau(s[d], g[d]),
            "sparse_kendall_tau": M.sparse_kendall_tau(s[d], g[d], 0.001),
            "spearman": M.spearman(s[d], g[d]),
            "sparse_spearman": M.sparse_spearman(s[d], g[d], 0.001),
        }
        for name, value in want.items():
            if np.isnan(value):
                assert np.isnan(got[name][b]), (name, b)
            else:
                assert got[name][b] == pytest.approx(value, abs=1e-12), (name, b)


def test_resampled_correlations_never_leave_minus_one_one():
    # a super-net that ranks as the GT does: each resample's tau-b is 1 (-1 against the GT
    # reversed), which the quadratic forms miss by 2e-16 where copies of one architecture tie
    # (this seed's resamples include such: 0.9999999999999998 and 1.0000000000000002 come up)
    rng = np.random.default_rng(0)
    s = rng.random(10)
    counts = rng.multinomial(10, np.full(10, 1 / 10), size=300)
    for g, bound in ((s, 1.0), (-s, -1.0)):
        for name, values in M.resampled_correlations(s, g, counts, threshold=0.001).items():
            if name.startswith("sparse_"):
                continue  # the GT's bins of -s are other ranks
            assert np.nanmax(np.abs(values)) <= 1.0, name
            assert np.nanmax(np.abs(values - bound)) < 1e-12, name


@pytest.mark.parametrize(
    "counts",
    [
        np.ones(5, dtype=int),
        np.ones((2, 4), dtype=int),
        np.full((1, 5), 0.4),
        -np.ones((1, 5), dtype=int),
        np.array([[0, 1, 0, 0, 0]]),  # one draw: a correlation needs two
    ],
)
def test_resampled_correlations_refuse_counts_that_are_no_resamples(counts):
    with pytest.raises(ValueError, match="counts"):
        M.resampled_correlations(np.arange(5.0), np.arange(5.0), counts)


def test_two_draws_of_one_architecture_are_a_resample_without_a_correlation():
    # the boundary: two copies of one architecture are a resample (2 draws) whose two sides
    # are constant, so every correlation is undefined, as kendall_tau([1, 1], [1, 1]) is
    got = M.resampled_correlations(np.arange(5.0), np.arange(5.0), np.array([[0, 2, 0, 0, 0]]))
    assert set(got) == set(M.RANK_CORRELATIONS)
    assert all(math.isnan(v[0]) for v in got.values())


def test_the_default_bin_width_is_the_papers_everywhere():
    # spec section 5: t = 0.001 by default (the authors' 0.01 is an option, never the default),
    # for the job's config, the metrics and a table's record that does not say its width
    from nasheur.config import MetricsConfig
    from nasheur.results.tables import RECOMPUTED_WIDTH, sparse_width

    assert MetricsConfig().skdt_threshold == M.BIN_WIDTH == 0.001
    assert sparse_width({}) == sparse_width({"config": {"metrics": {}}}) == 0.001
    # a record's own width wins, and the one a table recomputed with wins over that
    assert sparse_width({"config": {"metrics": {"skdt_threshold": 0.01}}}) == 0.01
    assert (
        sparse_width({"config": {"metrics": {"skdt_threshold": 0.01}}, RECOMPUTED_WIDTH: 0.005})
        == 0.005
    )


# --- boundaries that the cases above leave open (mutation audit) ------------------------------


def test_a_constant_side_is_nan_without_a_warning(recwarn):
    """One side constant (a collapsed super-net, or a pool of one GT value): every correlation
    is NaN and nothing is warned, whichever side it is (a sweep of hundreds of runs would
    otherwise print scipy's warning for each)."""
    varied, flat = [0.1, 0.5, 0.3, 0.9], [0.5] * 4
    for fn in (M.kendall_tau, M.spearman, M.sparse_kendall_tau, M.sparse_spearman):
        assert math.isnan(fn(flat, varied)) and math.isnan(fn(varied, flat))
    assert not [w for w in recwarn if "constant" in str(w.message).lower()]


def test_p_beat_random_tells_a_near_miss_of_the_space_apart():
    """g* 1e-4 above the space's best (a pool's GT from another table than space_gt, or a
    rounding of percent) is refused, not ranked first; within 1e-12 it still ranks, and a g*
    at the bottom of that slack counts as the worst of the space: r = N, P>R = 0 (spec 5),
    never a negative base raised to n."""
    space = np.array([0.5, 0.6, 0.7, 0.8])
    with pytest.raises(ValueError, match="space_gt"):
        M.p_beat_random([0.9, 0.1], [0.8001, 0.5], space, top_n=1)
    assert M.p_beat_random([0.9, 0.1], [0.8 + 1e-13, 0.5], space, top_n=1) == 0.75
    for n in (1, 2, 3):
        s, g = [0.9, 0.8, 0.7, 0.1], [0.5 - 5e-13] * 3 + [0.8]
        assert M.p_beat_random(s, g, space, top_n=n) == 0.0


def test_top_n_ties_go_to_the_earlier_entry_in_a_large_pool():
    """Among equal super-net accuracies the earlier pool entry is taken, also in a pool of
    200 (where an unstable sort reorders ties): the selection, and so P>R and the final
    performance, reproduce from metrics.json. Known answer: the first n indices of the tie."""
    s = np.full(200, 0.5)
    s[[7, 150]] = 0.9  # two clear leaders, then 198 tied entries
    assert M.top_n_indices(s, 10).tolist() == [7, 150, 0, 1, 2, 3, 4, 5, 6, 8]
    g = np.linspace(0.5, 0.95, 200)
    expected = (g[7] + g[150] + g[0]) / 3
    assert M.final_performance(s, g) == pytest.approx(expected)


def test_bins_of_the_real_nb201_table_follow_its_percent_strings(shared_nb201_csv):
    """The real table's accuracies are percent strings, read as fractions: 995 test accuracies
    (93.1, 81.52, ...) lie on a 0.1% boundary, where plain floor(g / t) loses 91 of them to
    rounding (0.931 / 0.001 == 930.999...). Each bin must be the one exact decimal arithmetic
    on the string gives, and the sparse correlations (valid against test accuracy, a super-net
    that ranks well) scipy's on those bins."""
    import csv
    from decimal import ROUND_FLOOR, Decimal

    from nasheur.groundtruth import load_ground_truth

    with open(shared_nb201_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [r["arch_str"] for r in rows]
    s = np.asarray(load_ground_truth(shared_nb201_csv, metric="valid").lookup(keys))
    g = np.asarray(load_ground_truth(shared_nb201_csv, metric="test").lookup(keys))
    for t, width in ((0.001, Decimal("0.1")), (0.01, Decimal("1"))):
        exact = np.array(
            [int((Decimal(r["test_acc"]) / width).to_integral_value(ROUND_FLOOR)) for r in rows]
        )
        assert np.array_equal(M.gt_bins(g, t), exact), t
        assert M.sparse_kendall_tau(s, g, t) == pytest.approx(
            stats.kendalltau(s, exact).statistic, abs=1e-12
        )
        assert M.sparse_spearman(s, g, t) == pytest.approx(
            stats.spearmanr(s, exact).statistic, abs=1e-12
        )
    # the table has such boundaries: without them this test would check nothing
    assert np.count_nonzero(np.floor(g / 0.001) != M.gt_bins(g)) > 50


# --- boundaries of GT values as the loaders make them, n = 2, a space of NB101's size ------


def test_bins_of_gt_made_as_the_loaders_make_it():
    """GT values are sums, means and percent conversions, which miss an exact 0.1% boundary by
    one ulp (spec 5: b = floor(g / t + 1e-9)): the mean of three NB101 repeats, NDS's
    (100 - error) / 100, 0.1 + 0.2. Each must land in the bin of its exact decimal value."""
    mean_of_repeats = (0.9007 + 0.901 + 0.9013) / 3  # 0.9009999999999999
    nds = (100 - 6.9) / 100  # 0.9309999999999999 (NDS stores the error in percent)
    assert math.floor(mean_of_repeats / 0.001) == 900 and math.floor(nds / 0.001) == 930
    assert M.gt_bins([mean_of_repeats, nds, 0.1 + 0.2]).tolist() == [901, 931, 300]
    assert M.gt_bins([1 - 0.07], threshold=0.01).tolist() == [93]  # 0.9299999999999999
    # so two architectures at the same exact GT, one computed each way, share a rank
    s = [0.2, 0.1, 0.3]
    g = [mean_of_repeats, 0.901, 0.95]
    assert M.kendall_tau(s, g) == pytest.approx(1 / 3)  # the ulp orders the pair (0, 1)
    assert M.sparse_kendall_tau(s, g) == pytest.approx(2 / math.sqrt(6))  # tied in the bins


def test_two_architectures():
    """n = 2, the smallest pool a correlation takes: +-1, or undefined (NaN) where the two
    share a GT bin; the top 1 of two is a choice, so P>R and final performance are defined."""
    s, g = [0.6, 0.4], [0.93, 0.91]
    for fn in (M.kendall_tau, M.spearman, M.sparse_kendall_tau, M.sparse_spearman):
        assert fn(s, g) == pytest.approx(1.0) and fn(s, g[::-1]) == pytest.approx(-1.0)
    assert math.isnan(M.sparse_kendall_tau(s, [0.9301, 0.9309]))
    assert math.isnan(M.sparse_spearman(s, [0.9301, 0.9309]))
    assert M.final_performance(s, g, top_n=1) == 0.93
    assert M.p_beat_random(s, g, [0.91, 0.93], top_n=1) == pytest.approx(0.5)


def test_p_beat_random_over_nb101_sized_space_is_not_the_papers_complement():
    """Spec 5: P>R = (1 - r/N)^n with N = 423,624 on NB101; the paper prints 1 - (1 - r/N)^n,
    which would be near 0 here. The best of the space found (r = 1) with n = 3."""
    n_archs = 423_624
    space = np.linspace(0.1, 0.95, n_archs)
    s, g = [0.9, 0.8, 0.7, 0.1], [space[-1], 0.5, 0.4, 0.3]
    p = M.p_beat_random(s, g, space)
    assert p == pytest.approx((1 - 1 / n_archs) ** 3, rel=1e-15)
    assert p > 0.99999
