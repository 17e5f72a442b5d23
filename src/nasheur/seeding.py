"""One seed for everything: each random stream of a job is derived from (seed, stream, ...).

Streams are derived per epoch rather than carried over, so a job resumed from a checkpoint
draws exactly the numbers an uninterrupted one would.
"""

from __future__ import annotations

import zlib

import numpy as np

STREAMS = ("init", "data", "sampler", "torch", "pool", "calibrate", "evaluate", "subset")


def _stream_id(stream: str) -> int:
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}")
    return zlib.crc32(stream.encode())


def derive_seed(seed: int, stream: str, *more: int) -> int:
    """A 63-bit seed for `stream`, stable across platforms and numpy versions.

    numpy's SeedSequence pads its entropy with zeros, so trailing zeros of `more` name the
    same stream: ``(seed, "pool")`` is ``(seed, "pool", 0)``. A stream called both with and
    without a number starts its numbers at 1 (the job's extra pools do)."""
    state = np.random.SeedSequence([seed, _stream_id(stream), *more]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def numpy_rng(seed: int, stream: str, *more: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, stream, *more))
