"""Log-distance maximum likelihood with per-receiver offsets: a classical baseline for real data.

Model, per heard receiver s of transmission i (RSS in dB, distances in metres, east/north):

    rss_is = a_s - 10 n log10(d_is) + c_i + noise

`a_s` is the station's offset (real receivers are not calibrated against each other, e.g.
POWDER's "dB relative to each device"), `c_i` the transmission's common offset (unknown
transmit power, antenna) and `n` the path-loss exponent. `fit_ml_offsets` estimates n and the
a_s on training samples with known positions; `MlOffsetsModel.predict` removes each heard
receiver's offset and searches east/north by grid maximum likelihood with c_i profiled out
(`baselines.mle_grid`: mean-removed residuals over the heard receivers, coarse-to-fine).

Stations are the `rx_id` indices of `SampleArrays`; a receiver whose index the model has no
offset for (unknown, or never heard in training) uses the mean offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError, InputError
from heimdall.evaluation.baselines import GridSpec, mle_grid

__all__ = ["MlOffsetsModel", "fit_ml_offsets", "search_grid"]

#: Coarse cells across the larger side of the search area (mle_grid refines 16x). Near a
#: receiver the noise-free cost is steep: coarser grids miss the true basin more often.
_GRID_CELLS = 128
#: Padding of the search area around the training transmitters, as a share of their extent.
_GRID_PADDING = 0.05
#: Distances are clamped here (metres), as in `baselines`, so a receiver on top of a point is finite.
_MIN_DISTANCE_M = 1.0


@dataclass(frozen=True)
class MlOffsetsModel:
    """Fitted path-loss exponent, station offsets and the search grid (about the samples' frame)."""

    path_loss_exponent: float
    offset_db: np.ndarray  # [S] per station index; mean offset where the station was never heard
    known: np.ndarray  # [S] bool, station heard in training (its offset was fitted)
    sigma_db: float  # RMS residual of the fit, dB
    grid: GridSpec

    @property
    def mean_offset_db(self) -> float:
        """Offset (dB) used for receivers the model has no offset for."""
        return float(self.offset_db[self.known].mean()) if self.known.any() else 0.0

    def offsets_of(self, rx_id: np.ndarray) -> np.ndarray:
        """Offset (dB) per receiver slot [N, R]; the mean offset for unknown stations."""
        ids = np.asarray(rx_id)
        valid = (ids >= 0) & (ids < len(self.offset_db))
        fitted = valid & self.known[np.where(valid, ids, 0)]
        return np.where(fitted, self.offset_db[np.where(valid, ids, 0)], self.mean_offset_db)

    def predict(self, samples: SampleArrays, grid: GridSpec | None = None, refine: bool = True) -> np.ndarray:
        """[N, 2] east/north metres; NaN for a sample no receiver heard.

        Adding a constant to one sample's RSS (transmit power) does not move its estimate:
        the common offset is profiled out.
        """
        rss_db = samples.rss_dbm.astype(np.float64) - self.offsets_of(samples.rx_id)
        return mle_grid(
            samples.rx_position_m.astype(np.float64),
            np.where(samples.heard, rss_db, np.nan),
            samples.heard,
            grid or self.grid,
            path_loss_exponent=self.path_loss_exponent,
            shadowing_sigma_db=max(self.sigma_db, 1e-3),
            refine=refine,
        )


def search_grid(samples: SampleArrays) -> GridSpec:
    """Grid over the transmitters' extent (east/north metres), padded by 5% of it.

    Where training transmitters were is the prior: far from every receiver the likelihood
    is nearly flat, and a wider search area pulls noisy estimates out into it.
    """
    tx = samples.tx_position_m.astype(np.float64)
    tx = tx[np.all(np.isfinite(tx), axis=1)]
    if len(tx) == 0:
        raise DataError("no transmitter position to place a search grid on")
    low, high = tx.min(axis=0), tx.max(axis=0)
    side_m = max(float(np.max(high - low)), 100.0)
    pad_m = _GRID_PADDING * side_m
    return GridSpec(
        float(low[0] - pad_m), float(high[0] + pad_m), float(low[1] - pad_m), float(high[1] + pad_m),
        step_m=(side_m + 2.0 * pad_m) / _GRID_CELLS,
    )


def fit_ml_offsets(
    train: SampleArrays,
    num_stations: int,
    prior_weight: float = 1.0,
    fallback_exponent: float = 3.0,
    grid: GridSpec | None = None,
) -> MlOffsetsModel:
    """Least-squares n and station offsets a_s of `rss = a_s - 10 n log10(d) + c_i` on `train`.

    This is the fixed point of alternating least squares over (c_i) and (a_s, n), reached
    directly: each c_i has the closed form "mean over sample i's heard receivers of
    rss - a_s + 10 n log10(d)", so substituting it (centring every sample's rows over its
    heard receivers) leaves a linear least-squares problem in the S offsets and n only.
    Samples with fewer than two heard receivers carry no information and are skipped.

    `prior_weight` adds that many pseudo-observations pulling each offset to zero: it fixes
    the offsets' common level (a shift of every a_s is absorbed by the c_i) and keeps a
    station heard in a handful of samples near the others instead of wherever its few
    readings put it. Stations never heard keep the mean offset. `grid` defaults to
    `search_grid(train)`. Needs known transmitter positions.
    """
    if num_stations < 1:
        raise InputError(f"num_stations must be >= 1, got {num_stations}")
    if not (np.isfinite(prior_weight) and prior_weight > 0):
        raise InputError(f"prior_weight must be positive, got {prior_weight}")
    train = train.select(np.all(np.isfinite(train.tx_position_m), axis=1))
    rx_id = train.rx_id
    heard = train.heard & (rx_id >= 0) & (rx_id < num_stations)
    usable = heard.sum(axis=1) >= 2
    if not usable.any():
        raise DataError("fitting receiver offsets needs training samples with two or more heard known receivers")
    rows, slots = np.nonzero(heard & usable[:, None])
    station = rx_id[rows, slots]
    offset_m = train.rx_position_m[rows, slots, :2].astype(np.float64) - train.tx_position_m[rows].astype(np.float64)
    log_d = np.log10(np.maximum(np.hypot(offset_m[:, 0], offset_m[:, 1]), _MIN_DISTANCE_M))
    rss = train.rss_dbm[rows, slots].astype(np.float64)
    design = np.zeros((len(rows), num_stations + 1))
    design[np.arange(len(rows)), station] = 1.0
    design[:, -1] = -10.0 * log_d
    # Centre each sample's rows: the profiled-out common offset c_i.
    count = np.bincount(rows, minlength=len(train))[rows][:, None]
    design_sum = np.zeros((len(train), num_stations + 1))
    np.add.at(design_sum, rows, design)
    rss_sum = np.bincount(rows, weights=rss, minlength=len(train))
    design_c = design - design_sum[rows] / count
    rss_c = rss - rss_sum[rows] / count[:, 0]
    known = np.bincount(station, minlength=num_stations) > 0
    ridge = np.zeros(num_stations + 1)
    ridge[:num_stations] = prior_weight
    normal = design_c.T @ design_c + np.diag(ridge)
    solution = np.linalg.lstsq(normal, design_c.T @ rss_c, rcond=None)[0]
    exponent = float(solution[-1])
    distance_spread = float(np.sum(design_c[:, -1] ** 2))
    if not (np.isfinite(exponent) and exponent > 0 and distance_spread > 1e-6 * len(rows)):
        exponent = fallback_exponent  # distances too alike in every sample to identify n
        solution = np.linalg.lstsq(
            normal[:-1, :-1], design_c[:, :-1].T @ (rss_c - design_c[:, -1] * exponent), rcond=None
        )[0]
    offsets = np.asarray(solution[:num_stations], dtype=np.float64)
    residual = rss_c - design_c[:, :num_stations] @ offsets - design_c[:, -1] * exponent
    dof = max(len(rows) - int(usable.sum()) - int(known.sum()) - 1, 1)
    offsets = np.where(known, offsets, offsets[known].mean())
    return MlOffsetsModel(
        path_loss_exponent=exponent,
        offset_db=offsets,
        known=known,
        sigma_db=float(np.sqrt(np.sum(residual**2) / dof)),
        grid=grid or search_grid(train),
    )
