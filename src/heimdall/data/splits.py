"""Fixed train/val/test splits, decided once when a dataset is made.

Assignment is a pure function of (seed, sample id) for random splits and of (seed, grid
cell) for spatially disjoint ones, so it does not depend on batch size, worker count or the
order samples were written in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from heimdall.data.layout import SPLIT_CODES
from heimdall.errors import InputError

__all__ = ["SplitMode", "SplitFractions", "assign_splits", "hash_uniform"]

SplitMode = Literal["random", "grid"]
SplitFractions = tuple[float, float, float]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hash_uniform(seed: int, keys: np.ndarray, salt: int = 0) -> np.ndarray:
    """Uniform [0, 1) values, one per integer key, from a splitmix64 hash of (seed, salt, key)."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.int64).astype(np.uint64)
        z = z + np.uint64((seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK64
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK64
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _codes_from_uniform(u: np.ndarray, fractions: SplitFractions) -> np.ndarray:
    train, val, _ = fractions
    codes = np.full(u.shape, SPLIT_CODES["test"], dtype=np.int8)
    codes[u < train + val] = SPLIT_CODES["val"]
    codes[u < train] = SPLIT_CODES["train"]
    return codes


def check_fractions(fractions: SplitFractions) -> SplitFractions:
    """Validate (train, val, test) fractions: each in [0, 1], summing to 1, train > 0."""
    if len(fractions) != 3 or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise InputError(f"split fractions must be three values in [0, 1], got {fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] <= 0.0:
        raise InputError(f"split fractions must sum to 1 with a non-empty train split, got {fractions}")
    return fractions


def assign_splits(
    sample_id: np.ndarray,
    tx_position_m: np.ndarray,
    mode: SplitMode,
    seed: int,
    fractions: SplitFractions = (0.8, 0.1, 0.1),
    bounds_m: tuple[float, float, float, float] | None = None,
    cell_size_m: float | None = None,
) -> np.ndarray:
    """Split code per sample (0 train, 1 val, 2 test).

    `grid` mode tiles the area (`bounds_m` = east_min, east_max, north_min, north_max) into
    square cells of `cell_size_m` (default: an eighth of the larger side) and gives every
    sample of a cell the same split, so test transmitters lie in places training never saw.
    """
    check_fractions(fractions)
    if mode == "random":
        return _codes_from_uniform(hash_uniform(seed, sample_id, salt=1), fractions)
    if mode != "grid":
        raise InputError(f"unknown split mode {mode!r}; expected random or grid")
    if bounds_m is None:
        raise InputError("grid splits need the area's bounds")
    east_min, east_max, north_min, north_max = bounds_m
    size = cell_size_m or max(east_max - east_min, north_max - north_min) / 8.0
    if not size > 0:
        raise InputError(f"grid cell size must be positive, got {size}")
    col = np.floor((tx_position_m[:, 0] - east_min) / size).astype(np.int64)
    row = np.floor((tx_position_m[:, 1] - north_min) / size).astype(np.int64)
    cell = row * 1_000_003 + col
    return _codes_from_uniform(hash_uniform(seed, cell, salt=2), fractions)
