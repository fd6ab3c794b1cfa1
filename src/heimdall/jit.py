"""Compiled loops (numba) for the few steps of IQ synthesis that torch runs as many passes.

A torch step is one pass over memory per operation: |X|^2 then a mean then a filterbank is
three passes over the 3.7 MB spectrum of one transmission, each from the L3 cache. A
compiled loop does the whole step while the data is in L1. The kernels are plain Python
loops over numpy arrays (float32, complex numbers as interleaved re/im pairs), compiled on
first call and cached on disk next to their source (or in the user's cache directory when
that is read-only), so later processes load them in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numba

__all__ = ["kernel"]

F = TypeVar("F", bound=Callable)

#: Reassociation lets sums vectorise; NaN and inf keep their IEEE meaning (no "nnan"/"ninf"),
#: so a non-finite input still shows in the output instead of being assumed away.
_FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz"})


def kernel(func: F) -> F:
    """`func` compiled in nopython mode, without the GIL, cached on disk where possible.

    Kernels take arrays and write into arrays they are given; bounds are not checked, so
    their callers check shapes first.
    """
    options = {"fastmath": set(_FASTMATH), "nogil": True, "boundscheck": False}
    try:
        return numba.njit(cache=True, **options)(func)
    except RuntimeError:
        # No writable place for the cache (a read-only install without a home directory):
        # compile in every process instead.
        return numba.njit(cache=False, **options)(func)
