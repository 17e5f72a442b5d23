"""How nasheur's sweeper and launcher reach into submitit's job arrays.

hydra-submitit-launcher submits a sweep with ``submitit.AutoExecutor.map_array`` and waits
for the jobs it returns, all within its ``launch``; the only way to change what it submits or
how it waits is to wrap that method for the duration of the launch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nasheur.jobguard import NoResult  # noqa: F401  (its home: where both plugins find it)

if TYPE_CHECKING:  # no generic alias among a plugin module's names (tests/test_packaging.py)
    # wrap(original map_array, executor, fn, *iterables) -> the jobs the launcher waits for
    Wrapper = Callable[..., list[Any]]


@contextmanager
def map_array_wrapped(wrap: Wrapper) -> Iterator[None]:
    """Within the block, ``AutoExecutor.map_array(fn, *iterables)`` is ``wrap(original,
    executor, fn, *iterables)``; blocks nest (the inner wraps the outer's). Without submitit
    installed, nothing changes."""
    try:
        import submitit
    except ImportError:
        yield
        return
    cls = submitit.AutoExecutor
    own = cls.__dict__.get("map_array")
    original = cls.map_array

    def map_array(executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        return wrap(original, executor, fn, *iterables)

    cls.map_array = map_array
    try:
        yield
    finally:
        if own is not None:
            cls.map_array = own
        else:
            del cls.map_array
