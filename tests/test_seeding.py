"""The derived random streams: one per (seed, stream, epoch or stage), reproducible, and
distinct where the numbers differ other than by trailing zeros."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from nasheur.seeding import STREAMS, derive_seed, numpy_rng


def _documented_seed(seed: int, stream: str, *more: int) -> int:
    # the derivation written out: numpy's SeedSequence (stable across numpy versions, NEP 19)
    # of (seed, CRC-32 of the stream's name, *more), its first 64-bit word cut to 63 bits
    words = np.random.SeedSequence([seed, zlib.crc32(stream.encode()), *more])
    return int(words.generate_state(1, np.uint64)[0]) >> 1


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("more", [(), (0,), (3,), (7, 2)])
def test_a_stream_seed_is_the_documented_derivation(stream, more):
    # a resumed job (possibly under another numpy or on another machine) derives its epoch's
    # streams again: the derivation itself is the contract, not only its determinism in one
    # process (Python's hash() of the name, for one, changes from process to process)
    assert derive_seed(5, stream, *more) == _documented_seed(5, stream, *more)


def test_every_extra_component_and_its_order_tell_streams_apart():
    # (epoch, stage) pairs: the second number counts, and (1, 2) is not (2, 1) nor (0, 3)
    seeds = [derive_seed(0, "evaluate", *m) for m in [(7, 2), (7, 3), (1, 2), (2, 1), (0, 3)]]
    assert len(set(seeds)) == len(seeds)
    firsts = [numpy_rng(0, "evaluate", 7, stage).integers(1 << 30) for stage in range(4)]
    assert len(set(firsts)) == 4


def test_stream_seeds_use_all_63_bits():
    # a 63-bit seed: the top bit (2**62) is set in about half of them, never 2**63
    seeds = [derive_seed(s, "sampler", epoch) for s in range(4) for epoch in range(16)]
    assert max(seeds) < 2**63
    assert 16 <= sum(s >= 2**62 for s in seeds) <= 48


def test_numpy_rng_is_seeded_with_the_derived_seed():
    a = numpy_rng(2, "pool", 1).integers(1 << 62, size=4)
    b = np.random.default_rng(derive_seed(2, "pool", 1)).integers(1 << 62, size=4)
    assert np.array_equal(a, b)


def test_an_unknown_stream_is_refused_by_name():
    with pytest.raises(KeyError, match="'sampler2'"):
        derive_seed(0, "sampler2")
    with pytest.raises(KeyError, match="unknown random stream 'Data'"):
        numpy_rng(0, "Data")  # names are case-sensitive


def test_trailing_zeros_name_the_same_stream():
    # SeedSequence pads its entropy with zeros (derive_seed's docstring): (s, pool) is
    # (s, pool, 0), which is why the job numbers its extra pools' streams from 1
    assert derive_seed(3, "pool") == derive_seed(3, "pool", 0)
    assert derive_seed(3, "pool") != derive_seed(3, "pool", 1)
