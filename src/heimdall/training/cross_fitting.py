"""Cross-fitting the labelled samples: the folds of each scheme and one score for their medians.

`training.radio_map_fit` chooses a radio map's settings by predicting each fold from the
others under several schemes (random, spatial blocks, forward time blocks); this module
deals the folds and combines the schemes' out-of-fold median errors (m) into one score.
"""

from __future__ import annotations

import numpy as np

from heimdall.data.layout import SampleArrays

__all__ = ["CROSS_FOLDS", "combined_median_m", "cross_fitting_folds", "cross_fitting_schemes"]

#: Folds of each cross-fitting scheme.
CROSS_FOLDS = 3
#: Added to each scheme's median before the geometric mean (`combined_median_m`): a median of
#: 0 m (every held-out transmitter at a training place) must not dominate the score.
MEDIAN_FLOOR_M = 1.0
#: Distinct timestamps needed before time-ordered blocks join the cross-fitting.
MIN_DISTINCT_TIMES = 10 * CROSS_FOLDS


def combined_median_m(medians: list[float]) -> float:
    """One score (m) for the out-of-fold medians of several cross-fitting schemes: their
    geometric mean (each plus `MEDIAN_FLOOR_M`), inf for none.

    Geometric, not arithmetic: a setting is judged by relative changes, so the scheme with
    the larger errors (extrapolation to unmeasured places, often several times the random
    folds' median) cannot outvote a large gain in the other by a few metres of its noise.
    """
    if not medians:
        return np.inf
    return float(np.exp(np.mean(np.log(np.asarray(medians) + MEDIAN_FLOOR_M))) - MEDIAN_FLOOR_M)


def cross_fitting_folds(samples: SampleArrays, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Fold index per sample: random; contiguous blocks in time order ("time", samples sharing
    a timestamp share a fold); or square spatial blocks (a tenth of the extent) dealt to folds."""
    n = len(samples)
    if scheme == "random":
        return rng.permutation(n) % CROSS_FOLDS
    if scheme == "time":
        assert samples.timestamp_s is not None
        _, rank = np.unique(samples.timestamp_s, return_inverse=True)
        first = np.searchsorted(np.sort(rank), rank)  # ties take the position of their first
        return np.minimum(first * CROSS_FOLDS // n, CROSS_FOLDS - 1)
    tx = samples.tx_position_m.astype(np.float64)
    cell = max(float(np.max(tx.max(axis=0) - tx.min(axis=0))) / 10.0, 1.0)
    keys = np.floor((tx - tx.min(axis=0)) / cell).astype(np.int64)
    _, block = np.unique(keys[:, 0] * 1_000_003 + keys[:, 1], return_inverse=True)
    return rng.permutation(int(block.max()) + 1)[block] % CROSS_FOLDS


def cross_fitting_schemes(samples: SampleArrays) -> tuple[str, ...]:
    """The cross-fitting schemes for `samples`: random and spatial blocks always, and
    time-ordered blocks when every sample has a timestamp and there are enough distinct ones
    (a later stretch of a campaign, or another month, is the shift a deployed model meets)."""
    times = samples.timestamp_s
    if times is None or not np.all(np.isfinite(times)) or len(np.unique(times)) < MIN_DISTINCT_TIMES:
        return ("random", "spatial")
    return ("random", "spatial", "time")
