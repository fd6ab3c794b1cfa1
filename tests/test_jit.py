"""Compiled kernels: cached on disk where possible, compiled in memory where not."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from heimdall import jit


def _total(x: np.ndarray) -> float:
    acc = 0.0
    for value in x:
        acc += value
    return acc


def test_kernel_compiles_and_keeps_nan_meaning() -> None:
    """fastmath here is reassociation only: a NaN still reaches the result."""
    total = jit.kernel(_total)
    assert total(np.arange(10, dtype=np.float32)) == 45.0
    assert np.isnan(total(np.array([1.0, np.nan, 2.0], dtype=np.float32)))


def test_kernel_without_a_cache_location_compiles_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only install with no home directory: numba refuses `cache=True` at decoration;
    the kernel must still work, compiled per process."""
    real_njit = numba.njit
    asked: list[bool] = []

    def njit(**options):
        asked.append(options["cache"])
        if options["cache"]:
            raise RuntimeError("cannot cache function '_total': no locator available")
        return real_njit(**options)

    monkeypatch.setattr(jit.numba, "njit", njit)
    total = jit.kernel(_total)
    assert asked == [True, False]
    assert total(np.ones(4, dtype=np.float32)) == 4.0
