"""k-nearest-neighbour RSS fingerprinting: a model-free baseline for measured data.

A fingerprint is a sample's RSS per station (dB) over the station indices `rx_id` in
`[0, num_stations)`; receivers with an unknown station index are ignored. Each station is
in one of three states:

- heard: its RSS;
- present but not heard: a floor value (below every heard value, see `fit_knn`), or left
  out of the comparison when `not_heard_margin_db` is None;
- absent (not listening, or not in the sample): left out of the comparison.

The distance between two fingerprints is the root-mean-square RSS difference (dB) over the
stations comparable in both. With `mean_removed=True` (the default) the mean difference
over those common stations is subtracted first, i.e. each fingerprint is mean-removed over
the stations the pair shares: the distance is then blind to a common offset of a sample's
RSS values, which is what an unknown transmitter power is (and what a per-campaign offset
of uncalibrated receivers is, e.g. POWDER's dB relative to each device). Pairs sharing
fewer than `min_common_stations` stations are never neighbours.

The estimate is the mean (or inverse-distance-weighted mean) of the k nearest training
samples' `tx_position_m`, east/north metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError, InputError

__all__ = ["KnnModel", "fit_knn", "choose_k", "DEFAULT_K_CANDIDATES"]

DEFAULT_K_CANDIDATES: tuple[int, ...] = (1, 2, 3, 5, 8, 13, 21)
#: Working-memory bound of one block of query-by-train temporaries (bytes, ~150 MB).
_BLOCK_BYTES = 150_000_000
#: Added to distances (dB) before inverse-distance weighting, so an exact match is finite.
_WEIGHT_EPS_DB = 1e-3


def _fingerprints(
    samples: SampleArrays, num_stations: int, not_heard_margin_db: float | None, mean_removed: bool,
    floor_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(values [N, S] float64, 0 where not comparable; comparable mask [N, S] bool)."""
    n = len(samples)
    values = np.zeros((n, num_stations))
    comparable = np.zeros((n, num_stations), dtype=bool)
    known = (samples.rx_id >= 0) & (samples.rx_id < num_stations) & samples.present
    rows, slots = np.nonzero(known)
    stations = samples.rx_id[rows, slots]
    heard = samples.heard[rows, slots]
    rss = samples.rss_dbm[rows, slots].astype(np.float64)
    if not_heard_margin_db is None:
        rows, stations, heard, rss = rows[heard], stations[heard], heard[heard], rss[heard]
    if mean_removed:
        # The floor follows the sample's own weakest heard value, so adding a constant to a
        # sample's RSS moves its floor with it and the offset-free distance is unchanged.
        weakest = np.full(n, np.inf)
        np.minimum.at(weakest, rows[heard], rss[heard])
        fill = weakest[rows] - (not_heard_margin_db or 0.0)
    else:
        fill = np.full(len(rows), floor_db)
    values[rows, stations] = np.where(heard, rss, fill)
    comparable[rows, stations] = True
    # A sample that heard nothing has no weakest value; it has nothing to compare.
    bad = ~np.isfinite(values)
    comparable &= ~bad
    values[bad] = 0.0
    return values, comparable


@dataclass(frozen=True)
class KnnModel:
    """Training fingerprints and positions; see the module docstring for the distance."""

    values_db: np.ndarray  # [T, S] float64, 0 where not comparable
    comparable: np.ndarray  # [T, S] bool
    tx_position_m: np.ndarray  # [T, 2] float64 east/north
    num_stations: int
    mean_removed: bool
    not_heard_margin_db: float | None
    floor_db: float  # fill of not-heard stations when not mean_removed
    min_common_stations: int

    def __len__(self) -> int:
        return int(self.tx_position_m.shape[0])

    def fingerprints(self, samples: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
        """`samples` as (values [N, S] dB, comparable [N, S] bool), built as for training."""
        return _fingerprints(samples, self.num_stations, self.not_heard_margin_db, self.mean_removed, self.floor_db)

    def distances_db(self, values_db: np.ndarray, comparable: np.ndarray) -> np.ndarray:
        """[Q, T] fingerprint distances (dB) of Q query fingerprints to the training set.

        inf where a pair shares fewer than `min_common_stations` stations.
        """
        q_mask = comparable.astype(np.float64)
        t_mask = self.comparable.astype(np.float64)
        q = values_db * q_mask
        t = self.values_db * t_mask
        # Sums over common stations by matrix products: n = |common|,
        # s1 = sum(q - t), s2 = sum((q - t)^2).
        common = q_mask @ t_mask.T
        s1 = q @ t_mask.T - q_mask @ t.T
        s2 = (q * q) @ t_mask.T + q_mask @ (t * t).T - 2.0 * (q @ t.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_sq = s2 / common
            if self.mean_removed:
                mean_sq = mean_sq - (s1 / common) ** 2
        distance = np.sqrt(np.maximum(mean_sq, 0.0))
        distance[common < self.min_common_stations] = np.inf
        return distance

    def neighbours(self, samples: SampleArrays, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices [N, k] int64, distances [N, k] dB) of the k nearest training samples.

        Sorted nearest first; distance inf (index arbitrary) where fewer than k training
        samples are comparable.
        """
        if not 1 <= k <= len(self):
            raise InputError(f"k must be in [1, {len(self)}] (training samples), got {k}")
        values, comparable = self.fingerprints(samples)
        n = len(samples)
        index = np.zeros((n, k), dtype=np.int64)
        distance = np.full((n, k), np.inf)
        block = max(1, _BLOCK_BYTES // (8 * 6 * max(len(self), 1)))
        for start in range(0, n, block):
            stop = min(start + block, n)
            d = self.distances_db(values[start:stop], comparable[start:stop])
            part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, axis=1)[:, :k]
            part_d = np.take_along_axis(d, part, axis=1)
            order = np.argsort(part_d, axis=1, kind="stable")
            index[start:stop] = np.take_along_axis(part, order, axis=1)
            distance[start:stop] = np.take_along_axis(part_d, order, axis=1)
        return index, distance

    def predict(self, samples: SampleArrays, k: int, weighted: bool = False) -> np.ndarray:
        """[N, 2] east/north metres: mean position of the k nearest training samples.

        `weighted` uses weights 1 / (distance_db + 1e-3). NaN for a sample with no
        comparable training sample.
        """
        index, distance = self.neighbours(samples, k)
        return _average(self.tx_position_m, index, distance, k, weighted)


def _average(positions_m: np.ndarray, index: np.ndarray, distance: np.ndarray, k: int, weighted: bool) -> np.ndarray:
    """Mean of the first k neighbours' positions over those at finite distance, [N, 2]."""
    index, distance = index[:, :k], distance[:, :k]
    usable = np.isfinite(distance)
    weight = np.where(usable, 1.0 / (np.where(usable, distance, 0.0) + _WEIGHT_EPS_DB) if weighted else 1.0, 0.0)
    total = weight.sum(axis=1, keepdims=True)
    estimate = np.einsum("nk,nkc->nc", weight, positions_m[index]) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, estimate, np.nan)


def fit_knn(
    train: SampleArrays,
    num_stations: int,
    mean_removed: bool = True,
    not_heard_margin_db: float | None = 10.0,
    min_common_stations: int = 3,
) -> KnnModel:
    """Store the training fingerprints of `train` (samples with a known position).

    `num_stations`: the station axis (usually `len(network)`). Not-heard stations are filled
    with a floor `not_heard_margin_db` (dB) below the weakest heard value: the sample's own
    weakest heard RSS when `mean_removed`, the training set's weakest otherwise; None leaves
    them out of the comparison. With `mean_removed`, `min_common_stations` is at least 2
    (one common station always matches exactly once its offset is removed).
    """
    if num_stations < 1:
        raise InputError(f"num_stations must be >= 1, got {num_stations}")
    if not_heard_margin_db is not None and not (np.isfinite(not_heard_margin_db) and not_heard_margin_db >= 0):
        raise InputError(f"not_heard_margin_db must be >= 0 or None, got {not_heard_margin_db}")
    known = np.all(np.isfinite(train.tx_position_m), axis=1)
    train = train.select(known)
    if len(train) == 0:
        raise DataError("kNN needs training samples with a known transmitter position")
    heard_rss = train.rss_dbm[train.heard]
    weakest_db = float(heard_rss.min()) if heard_rss.size else 0.0
    floor_db = weakest_db - (not_heard_margin_db or 0.0)
    values, comparable = _fingerprints(train, num_stations, not_heard_margin_db, mean_removed, floor_db)
    return KnnModel(
        values_db=values,
        comparable=comparable,
        tx_position_m=train.tx_position_m.astype(np.float64),
        num_stations=num_stations,
        mean_removed=mean_removed,
        not_heard_margin_db=not_heard_margin_db,
        floor_db=floor_db,
        min_common_stations=max(int(min_common_stations), 2 if mean_removed else 1),
    )


def choose_k(
    model: KnnModel,
    val: SampleArrays,
    candidates: Sequence[int] = DEFAULT_K_CANDIDATES,
    weighted: bool = False,
) -> int:
    """The candidate k with the smallest median position error (metres) on `val`.

    Candidates larger than the training set are skipped; ties go to the smaller k.
    Neighbours are searched once, for the largest candidate.
    """
    usable = sorted({int(k) for k in candidates if 1 <= int(k) <= len(model)})
    if not usable:
        raise InputError(f"no candidate k in {tuple(candidates)} fits {len(model)} training samples")
    known = np.all(np.isfinite(val.tx_position_m), axis=1)
    if not known.any():
        raise DataError("choosing k needs validation samples with a known transmitter position")
    val = val.select(known)
    index, distance = model.neighbours(val, usable[-1])
    truth = val.tx_position_m.astype(np.float64)
    best_k, best_error = usable[0], np.inf
    for k in usable:
        error_m = np.linalg.norm(_average(model.tx_position_m, index, distance, k, weighted) - truth, axis=1)
        # A sample no training sample is comparable to counts as infinitely wrong.
        median_m = float(np.median(np.where(np.isfinite(error_m), error_m, np.inf)))
        if median_m < best_error:
            best_k, best_error = k, median_m
    return best_k
