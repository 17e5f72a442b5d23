"""Path samplers (spec section 3, README "Random-A on NB201", "FairNAS") and the seeds of the
random streams that feed them (resume draws the numbers an uninterrupted job would)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from nasheur.seeding import STREAMS, derive_seed, numpy_rng
from nasheur.spaces import get_space
from nasheur.spaces.nb201 import unique_str

NB201 = get_space("nb201")

# (FairNAS's per-position coverage and Random-A's choice of an encoding are pinned in
# test_nb101_space.py, test_darts_space.py and test_supernet_nb201.py; the orders are here)


def _ops_by_position(space: str, path) -> list:
    """The op of each position (NB201 edge, NB101 interior vertex, DARTS op slot) of a path."""
    if space == "nb201":
        return list(path.ops)
    if space == "nb101":
        return list(path.ops[1:-1])
    return [op for cell in (path.normal, path.reduce) for op, _ in cell.pairs]


@pytest.mark.parametrize("space", ["nb201", "nb101", "darts_nds"])
def test_fairnas_orders_are_uniform_permutations_per_position(space):
    # spec: "a random permutation of the o ops per position". Each op once per position is
    # checked elsewhere; here the order: under a uniform permutation the ops of the first
    # two paths at a position are each of the o(o-1) ordered pairs with chance 1/(o(o-1)).
    # A random cyclic shift (o of the o! orders) would give only o of those pairs.
    searched = get_space(space)
    rng = np.random.default_rng(0)
    pairs: Counter = Counter()
    for _ in range(400):
        first, second = (_ops_by_position(space, p) for p in searched.fair_paths(rng)[:2])
        pairs.update(zip(first, second, strict=True))
    ops = {a for a, _ in pairs} | {b for _, b in pairs}
    ordered = [(a, b) for a in ops for b in ops if a != b]
    assert set(pairs) == set(ordered), sorted(set(ordered) - set(pairs))
    assert stats.chisquare([pairs[k] for k in ordered]).pvalue > 1e-3


def test_nb201_fairnas_draws_each_edges_order_on_its_own():
    # one order shared by the 6 edges would make each of the 5 paths a single-op cell
    rng = np.random.default_rng(0)
    draws = [NB201.fair_paths(rng) for _ in range(1_000)]
    orders = [[tuple(p.ops[e] for p in paths) for e in range(6)] for paths in draws]
    same = sum(o[0] == o[1] for o in orders)  # 1,000 / 120 = 8.3 expected
    assert same < 30
    single = sum(len(set(p.ops)) == 1 for paths in draws for p in paths)
    assert single < 20  # 5,000 paths x 5 / 5^6 = 1.6 expected


def test_random_a_on_nb201_draws_every_unique_cell_alike():
    # spec: Random-A is uniform over the 6,466 unique cells; 100,000 draws give each about
    # 15.5, so a cell never drawn (chance 6,466 e^-15.5, 1e-3) or a skewed share fails
    nb201_classes = {unique_str(arch) for arch in NB201.enumerate()}  # the official rule
    assert len(nb201_classes) == 6_466
    rng = np.random.default_rng(0)
    n = 100_000
    counts = Counter(unique_str(NB201.sample_unique(rng)) for _ in range(n))
    assert set(counts) == nb201_classes
    assert stats.chisquare([counts[c] for c in nb201_classes]).pvalue > 1e-3


# ------------------------------------------------------------------------------- seeding


def test_a_stream_seed_is_the_same_on_every_call_and_63_bits():
    # resuming a job derives the epoch's seeds again: they must come out as they did
    for stream in STREAMS:
        for more in ((), (0,), (7, 2)):
            s = derive_seed(3, stream, *more)
            assert s == derive_seed(3, stream, *more)
            assert 0 <= s < 2**63  # a 63-bit seed, as torch and numpy both take it
    a, b = numpy_rng(3, "sampler", 5), numpy_rng(3, "sampler", 5)
    assert np.array_equal(a.integers(1 << 30, size=8), b.integers(1 << 30, size=8))


def test_each_epoch_stream_and_seed_draws_its_own_numbers():
    # streams are derived per epoch (seeding.py): epoch 1 must not replay epoch 0's batches,
    # nor the data stream the sampler's, nor seed 1 seed 0's
    seeds = {
        (seed, stream, epoch): derive_seed(seed, stream, epoch)
        for seed in (0, 1)
        for stream in STREAMS
        for epoch in range(4)
    }
    assert len(set(seeds.values())) == len(seeds)
    assert derive_seed(0, "pool") != derive_seed(0, "pool", 1)  # a second pool's stream
    firsts = [numpy_rng(0, "sampler", e).integers(1 << 30) for e in range(4)]
    assert len(set(firsts)) == 4
    with pytest.raises(KeyError):
        derive_seed(0, "no-such-stream")


def test_each_epoch_of_a_job_draws_from_its_own_epochs_streams(tmp_path, monkeypatch):
    # seeding.py: the sampler's and the data's streams are derived per epoch from (seed,
    # stream, epoch), so a job resumed at epoch e draws what an uninterrupted one would
    import nasheur.training
    from nasheur.config import validate
    from nasheur.job import run_job
    from tests.conftest import TINY_JOB, compose_job, write_nb201_gt

    seen = []
    real = nasheur.training.train_epoch

    def spy(*args, rng, generator, **kwargs):
        seen.append((dict(rng.bit_generator.state), generator.initial_seed()))
        return real(*args, rng=rng, generator=generator, **kwargs)

    monkeypatch.setattr(nasheur.training, "train_epoch", spy)
    gt = write_nb201_gt(tmp_path / "gt.csv")
    cfg = compose_job([*TINY_JOB, "protocol.epochs=2", "seed=4", f"ground_truth.path={gt}"])
    validate(cfg)
    run_job(cfg, output_dir=tmp_path / "job")
    assert len(seen) == 2
    for epoch, (state, data_seed) in enumerate(seen):
        assert state == numpy_rng(4, "sampler", epoch).bit_generator.state
        assert data_seed == derive_seed(4, "data", epoch)
    assert seen[0][1] != seen[1][1]
