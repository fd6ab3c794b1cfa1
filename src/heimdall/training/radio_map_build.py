"""Building a `RadioMapNet` from labelled measurements for given hyperparameters.

1. Physics: per-station offsets a_s, one path-loss exponent n and a common offset per
   transmission (the unknown transmit power), by alternating least squares on
   `rss = a_s - 10 n log10(d) + c_i`.
2. Residual maps: each fixed station's residuals smoothed over the grid by a Gaussian
   kernel of length L, shrunk to zero where there is little data; the variance grows from
   the leave-one-out residual variance (dense data) to the plain one (no data). Mobile
   stations (positions spreading over more than `MOBILE_SPREAD_M`) get no map.
3. Prior and fingerprints: a smoothed density of training transmitters, and every training
   fingerprint with its position.

With `fill_absent`, a fixed station missing from a sample is first added as listening and
hearing nothing (`fill_absent_stations`), for files that list only the receivers that heard.

`training.radio_map_fit` chooses the hyperparameters. Distances in metres, powers in dB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from heimdall.data.layout import SampleArrays
from heimdall.data.measured import MOBILE_SPREAD_M
from heimdall.errors import DataError
from heimdall.evaluation.knn import fit_knn
from heimdall.models.radio_map import RadioMapConfig, RadioMapNet
from heimdall.models.track_grids import ScoreGrid
from heimdall.models.tracks import TrackModel

__all__ = [
    "RadioMapHyperparameters", "Physics", "fit_physics", "map_grid", "mobile_stations", "build_radio_map",
    "apply_hyperparameters", "refit_radio_map", "with_score_grid", "MOBILE_SPREAD_M", "station_positions", "fill_absent_stations",
]

#: Grid cells along the transmitters' larger extent.
GRID_CELLS = 90
#: Percentiles of the training transmitters' positions that bound the grid (before the margin).
TX_BOX_PERCENTILES = (0.5, 99.5)
#: Grid margin around the training transmitters, as a share of their larger extent.
GRID_MARGIN = 0.1
#: Prior density bandwidth (share of the extent) and its floor relative to the peak.
PRIOR_BANDWIDTH_SHARE = 1 / 40
PRIOR_FLOOR = 0.05
#: Shrinkage of the residual maps: kernel weight that counts as much as the zero prior.
SHRINKAGE = 1.0
#: Kernel sums ignore centres further than this many length scales (`kernel_sums`).
KERNEL_CUTOFF = 6.0


@dataclass(frozen=True)
class RadioMapHyperparameters:
    """What the cross-fitting chose (stored with the model)."""

    length_scale_m: float
    fingerprint_bandwidth_db: float
    fingerprint_background: float
    fingerprint_weight: float
    temperature: float
    covariance_temperature: float = 1.0
    covariance_floor_m: float = 0.0
    covariance_scale: float = 1.0
    #: d0 of `novelty_factor` (dB); 0: ellipses do not widen with fingerprint novelty.
    novelty_db: float = 0.0
    #: rho of the fingerprint points (`models.radio_map.with_fingerprint_points`); 0: none.
    fingerprint_point_mass: float = 0.0
    #: A fixed station missing from a sample listened and heard nothing (`fill_absent_stations`).
    fill_absent: bool = False
    #: Path-loss exponent held fixed (`training.censored_physics`); None: least squares on
    #: the heard readings (`fit_physics`).
    path_loss_exponent: float | None = None
    #: Weight of the silences' log-probability (`RadioMapNet.silence_weight`); 1: in full.
    silence_weight: float = 1.0
    #: a and g0 (s) of `evaluation.calibration.time_widening_factor`, applied by the runtime
    #: to queries with a timestamp; a = 0: no widening with time.
    time_widening: float = 0.0
    time_scale_s: float = 0.0
    #: k of the k-sigma ellipse that held 95% of the out-of-fold truths of every cross-fitting
    #: scheme (`ellipse95_sigmas`); 0: not measured (the Gaussian's 2.448 is used).
    ellipse95_sigmas: float = 0.0
    #: Receiver offsets per training session (`training.session_offsets`): each session's
    #: first time (s) and its offsets [K][S] (dB), taken out of the training readings and
    #: of a query's sent within that session; empty: one offset per receiver throughout.
    session_starts_s: tuple[float, ...] = field(default=(), repr=False)
    session_offsets_db: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    #: The smoother of timestamped answers along tracks (`models.tracks.TrackModel.to_dict`);
    #: empty: answers one by one.
    track: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["session_starts_s"] = [float(t) for t in self.session_starts_s]
        out["session_offsets_db"] = [[float(v) for v in row] for row in self.session_offsets_db]
        return out


def _finite_heard(samples: SampleArrays) -> np.ndarray:
    return samples.heard & samples.present & np.isfinite(samples.rss_dbm)


def mobile_stations(samples: SampleArrays, num_stations: int) -> np.ndarray:
    """[S] bool: stations whose receiver positions spread beyond `MOBILE_SPREAD_M`."""
    mobile = np.zeros(num_stations, dtype=bool)
    listening = samples.present & (samples.rx_id >= 0) & (samples.rx_id < num_stations)
    stations = samples.rx_id[listening]
    positions = samples.rx_position_m[listening][:, :2].astype(np.float64)
    for s in np.unique(stations):
        p = positions[stations == s]
        mobile[s] = float(np.max(np.linalg.norm(p - np.median(p, axis=0), axis=1))) > MOBILE_SPREAD_M
    return mobile


def station_positions(samples: SampleArrays, num_stations: int, mobile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median position [S,3] m of each station where it listened, fillable [S] bool: fixed
    stations that listened in `samples`)."""
    positions = np.zeros((num_stations, 3))
    fillable = np.zeros(num_stations, dtype=bool)
    listening = samples.present & (samples.rx_id >= 0) & (samples.rx_id < num_stations)
    stations = samples.rx_id[listening]
    points = samples.rx_position_m[listening].astype(np.float64)
    for s in np.unique(stations):
        positions[s] = np.median(points[stations == s], axis=0)
        fillable[s] = not mobile[s]
    return positions, fillable


def fill_absent_stations(samples: SampleArrays, positions_m: np.ndarray, fillable: np.ndarray) -> SampleArrays:
    """`samples` with a receiver per `fillable` station a sample lacks: listening, heard
    nothing, at `positions_m` [S,3]. The same object when no sample lacks one."""
    n, s = len(samples), len(fillable)
    known = samples.present & (samples.rx_id >= 0) & (samples.rx_id < s)
    listed = np.zeros((n, s), dtype=bool)
    listed[np.nonzero(known)[0], samples.rx_id[known]] = True
    extra = fillable[None, :] & ~listed
    width = int(extra.sum(axis=1).max()) if n else 0
    if width == 0:
        return samples
    # Each sample's missing stations first (stable order), in `width` new columns.
    ids = np.argsort(~extra, axis=1, kind="stable")[:, :width]
    valid = np.take_along_axis(extra, ids, axis=1)

    def widen(values: np.ndarray, added: np.ndarray) -> np.ndarray:
        return np.concatenate([values, added.astype(values.dtype)], axis=1)

    return replace(
        samples,
        rx_position_m=widen(samples.rx_position_m, positions_m[ids]),
        rx_id=widen(samples.rx_id, ids),
        rss_dbm=widen(samples.rss_dbm, np.full((n, width), np.nan)),
        snr_db=widen(samples.snr_db, np.full((n, width), np.nan)),
        heard=widen(samples.heard, np.zeros((n, width), dtype=bool)),
        present=widen(samples.present, valid),
        line_of_sight=None if samples.line_of_sight is None else widen(samples.line_of_sight, np.zeros((n, width))),
        obstructions=None if samples.obstructions is None else widen(samples.obstructions, np.zeros((n, width))),
        diffraction_loss_db=None if samples.diffraction_loss_db is None
        else widen(samples.diffraction_loss_db, np.zeros((n, width))),
    )


@dataclass(frozen=True)
class Physics:
    offset_db: np.ndarray  # [S]
    exponent: float
    common_sd_db: float
    rows: np.ndarray  # [M] sample of each heard reading
    station: np.ndarray  # [M]
    rss_db: np.ndarray  # [M]
    residual_db: np.ndarray  # [M]


def fit_physics(
    samples: SampleArrays, num_stations: int, iterations: int = 25, exponent: float | None = None
) -> Physics:
    """Alternating least squares for a_s, n and c_i (see the module docstring); with
    `exponent`, n is held at that value (`training.censored_physics` estimates it where
    receivers often hear nothing) and only a_s and c_i are fitted."""
    heard = _finite_heard(samples) & (samples.rx_id >= 0) & (samples.rx_id < num_stations)
    rows, cols = np.nonzero(heard)
    if rows.size < 3:
        raise DataError("fitting a radio map needs heard readings from known stations")
    station = samples.rx_id[rows, cols]
    rss = samples.rss_dbm[rows, cols].astype(np.float64)
    delta = samples.rx_position_m[rows, cols, :2].astype(np.float64) - samples.tx_position_m[rows].astype(np.float64)
    log_d = np.log10(np.maximum(np.linalg.norm(delta, axis=1), 1.0))
    n_samples = len(samples)
    per_sample = np.maximum(np.bincount(rows, minlength=n_samples), 1)
    per_station = np.maximum(np.bincount(station, minlength=num_stations), 1)
    offset = np.zeros(num_stations)
    common = np.zeros(n_samples)
    fixed = exponent is not None
    exponent = float(exponent) if fixed else 3.0
    for _ in range(iterations):
        common = np.bincount(rows, rss - offset[station] + 10 * exponent * log_d, n_samples) / per_sample
        common -= common[np.bincount(rows, minlength=n_samples) > 0].mean()
        offset = np.bincount(station, rss + 10 * exponent * log_d - common[rows], num_stations) / per_station
        z = rss - offset[station] - common[rows]
        centred = log_d - log_d.mean()
        denominator = 10.0 * float(centred @ centred)
        if denominator > 0 and not fixed:
            exponent = float(np.clip(-((z - z.mean()) @ centred) / denominator, 1.0, 6.0))
    heard_stations = np.bincount(station, minlength=num_stations) > 0
    # A station never heard in training reads like the average station until the runtime
    # re-estimates its offset from what it reports.
    offset[~heard_stations] = offset[heard_stations].mean()
    residual = rss - offset[station] + 10 * exponent * log_d - common[rows]
    observed = np.bincount(rows, minlength=n_samples) > 0
    return Physics(offset, exponent, float(np.std(common[observed])) + 0.5, rows, station, rss, residual)


def map_grid(tx_position_m: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """Grid points [G,2] (east fastest) over the transmitters' box plus a margin, step (m), rows, cols.

    The box spans the 0.5th to 99.5th percentiles, so a handful of stray transmissions far
    away cannot coarsen the grid where nearly all of them are.
    """
    low, high = np.percentile(tx_position_m, TX_BOX_PERCENTILES[0], axis=0), np.percentile(
        tx_position_m, TX_BOX_PERCENTILES[1], axis=0
    )
    extent = max(float(np.max(high - low)), 1.0)
    low, high = low - GRID_MARGIN * extent, high + GRID_MARGIN * extent
    step = float(np.max(high - low)) / GRID_CELLS
    east = np.arange(low[0], high[0] + 0.5 * step, step)
    north = np.arange(low[1], high[1] + 0.5 * step, step)
    grid_east, grid_north = np.meshgrid(east, north)
    return np.stack([grid_east.ravel(), grid_north.ravel()], axis=1), step, len(north), len(east)


def kernel_sums(points: np.ndarray, centres: np.ndarray, length_m: float, values: np.ndarray) -> np.ndarray:
    """sum_i exp(-|p - c_i|^2 / 2L^2) values_i for every point, [P, V].

    Only centres within `KERNEL_CUTOFF` L of a point count: each one left out weighs less
    than exp(-CUTOFF^2 / 2) = 1.5e-8, and the sum costs the pairs that matter instead of
    P x C (a 20,000-transmission campaign: 9 s -> 0.3 s for the leave-one-out sums at the
    shortest length scale).
    """
    out = np.zeros((len(points), values.shape[1]))
    if len(points) == 0 or len(centres) == 0:
        return out
    tree = cKDTree(centres)
    radius = KERNEL_CUTOFF * length_m
    # Rows per chunk: about 4 million pairs at a time however dense the centres are.
    span = np.maximum(np.ptp(centres, axis=0), radius)
    share = min(1.0, math.pi * radius * radius / float(span[0] * span[1]))
    rows = int(np.clip(4_000_000 / max(share * len(centres), 1.0), 64, 8192))
    for start in range(0, len(points), rows):
        chunk = points[start : start + rows]
        pairs = cKDTree(chunk).sparse_distance_matrix(tree, radius, output_type="ndarray")
        weight = np.exp(-0.5 * (pairs["v"] / length_m) ** 2)
        kernel = csr_matrix((weight, (pairs["i"], pairs["j"])), shape=(len(chunk), len(centres)))
        out[start : start + rows] = kernel @ values
    return out


def build_radio_map(
    samples: SampleArrays,
    num_stations: int,
    length_scale_m: float,
    grid: tuple[np.ndarray, float, int, int] | None = None,
    mobile: np.ndarray | None = None,
    fill_absent: bool = False,
    path_loss_exponent: float | None = None,
    silence_weight: float = 1.0,
) -> RadioMapNet:
    """Fit steps 1-3 on `samples` (positions known) for one residual length scale.

    Fingerprint and calibration settings keep their defaults; `fit_radio_map` sets them.
    `fill_absent`: a fixed station missing from a sample listened and heard nothing, in
    training (`fill_absent_stations`) and in every query (`RadioMapNet.with_absent_stations`).
    `path_loss_exponent`: hold n at this value (None: fit it with the offsets).
    `silence_weight`: the weight of the silences' log-probability (`RadioMapNet.silence_weight`).
    """
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    if len(samples) < 10:
        raise DataError(f"fitting a radio map needs at least 10 samples with known positions, got {len(samples)}")
    tx = samples.tx_position_m.astype(np.float64)
    points, step, rows, cols = grid if grid is not None else map_grid(tx)
    mobile = mobile_stations(samples, num_stations) if mobile is None else mobile
    station_position_m, fillable = station_positions(samples, num_stations, mobile)
    if fill_absent:
        samples = fill_absent_stations(samples, station_position_m, fillable)
    physics = fit_physics(samples, num_stations, exponent=path_loss_exponent)
    s, n = num_stations, len(samples)
    residuals = np.zeros((n, s))
    weights = np.zeros((n, s))
    fixed = ~mobile[physics.station]
    residuals[physics.rows[fixed], physics.station[fixed]] = physics.residual_db[fixed]
    weights[physics.rows[fixed], physics.station[fixed]] = 1.0
    both = np.concatenate([residuals, weights], axis=1)
    grid_sums = kernel_sums(points, tx, length_scale_m, both)
    numerator, weight = grid_sums[:, :s], grid_sums[:, s:]
    residual_map = numerator / (weight + SHRINKAGE)
    # Leave-one-out residual variance at the training points (self-weight is exactly 1).
    train_sums = kernel_sums(tx, tx, length_scale_m, both)
    loo = residuals - (train_sums[:, :s] - residuals) / (train_sums[:, s:] - weights + SHRINKAGE)
    counts = np.bincount(physics.station, minlength=s)
    plain = np.bincount(physics.station, physics.residual_db**2, s) / np.maximum(counts, 1)
    overall = float(np.mean(physics.residual_db**2))
    plain = np.where(counts >= 5, plain, overall)
    fixed_counts = weights.sum(axis=0)
    local = (weights * loo**2).sum(axis=0) / np.maximum(fixed_counts, 1)
    local = np.minimum(np.where(fixed_counts >= 5, local, plain), plain)
    sparse = SHRINKAGE / (weight + SHRINKAGE)  # [G,S]: 1 far from data, ->0 where dense
    variance = local[None, :] + (plain - local)[None, :] * sparse
    threshold = np.full(s + 1, np.inf)
    np.minimum.at(threshold, physics.station, physics.rss_db)
    threshold[threshold == np.inf] = -np.inf
    extent = max(float(np.max(tx.max(axis=0) - tx.min(axis=0))), 1.0)
    density = kernel_sums(points, tx, PRIOR_BANDWIDTH_SHARE * extent, np.ones((n, 1)))[:, 0]
    knn = fit_knn(samples, num_stations)
    config = RadioMapConfig(
        num_stations=s, grid_rows=rows, grid_cols=cols, num_fingerprints=len(knn), fill_absent=fill_absent
    )
    net = RadioMapNet(config)
    with torch.no_grad():
        if fill_absent:
            net.station_position_m.copy_(torch.from_numpy(station_position_m))
            net.fill_station.copy_(torch.from_numpy(fillable))
        net.grid_m.copy_(torch.from_numpy(points))
        net.grid_east_m.copy_(torch.from_numpy(points[:cols, 0]))
        net.grid_north_m.copy_(torch.from_numpy(points[::cols, 1]))
        net.grid_step_m.fill_(step)
        net.path_loss_exponent.fill_(physics.exponent)
        net.station_offset_db.copy_(torch.from_numpy(np.append(physics.offset_db, physics.offset_db[counts > 0].mean())))
        net.residual_db.copy_(torch.from_numpy(np.concatenate([residual_map.T, np.zeros((1, len(points)))])))
        generic = np.full((1, len(points)), max(float(plain.max()), overall) * 2.0)
        net.variance_db2.copy_(torch.from_numpy(np.concatenate([variance.T, generic])))
        net.heard_threshold_db.copy_(torch.from_numpy(threshold))
        net.common_offset_sd_db.fill_(physics.common_sd_db)
        net.silence_weight.fill_(silence_weight)
        net.log_prior.copy_(torch.from_numpy(np.log(density / max(float(density.max()), 1e-300) + PRIOR_FLOOR)))
        net.fingerprint_db.copy_(torch.from_numpy(knn.values_db))
        net.fingerprint_mask.copy_(torch.from_numpy(knn.comparable.astype(np.float64)))
        net.fingerprint_position_m.copy_(torch.from_numpy(knn.tx_position_m))
        net.fingerprint_position_bandwidth_m.fill_(1.5 * step)
    return net.eval()


def apply_hyperparameters(net: RadioMapNet, hyper: RadioMapHyperparameters) -> RadioMapNet:
    """Load the chosen fingerprint, temperature, silence and calibration settings into `net`'s buffers."""
    with torch.no_grad():
        net.fingerprint_bandwidth_db.fill_(hyper.fingerprint_bandwidth_db)
        net.fingerprint_background.fill_(hyper.fingerprint_background)
        net.fingerprint_weight.fill_(hyper.fingerprint_weight)
        net.fingerprint_point_mass.fill_(hyper.fingerprint_point_mass)
        net.temperature.fill_(hyper.temperature)
        net.covariance_temperature.fill_(hyper.covariance_temperature)
        net.covariance_floor_m2.fill_(hyper.covariance_floor_m**2)
        net.covariance_scale.fill_(hyper.covariance_scale)
        net.novelty_db.fill_(hyper.novelty_db)
        net.silence_weight.fill_(hyper.silence_weight)
    return net


def with_score_grid(hyper: RadioMapHyperparameters, net: RadioMapNet) -> RadioMapHyperparameters:
    """`hyper` with its smoother's grid set to `net`'s, where it smooths on the map's scores:
    the runtime reads the graph's `grid_log_score` on the grid of the map it deploys, which a
    refit on more samples lays out anew."""
    track = TrackModel.from_dict(hyper.track)
    if track is None or track.score_temperature <= 0:
        return hyper
    grid = ScoreGrid.from_axes(net.grid_east_m.double().numpy(), net.grid_north_m.double().numpy(),
                               float(net.grid_step_m))
    return replace(hyper, track=replace(track, score_grid=grid).to_dict())


def refit_radio_map(samples: SampleArrays, num_stations: int, hyper: RadioMapHyperparameters) -> RadioMapNet:
    """A radio map on `samples` with hyperparameters chosen before (no new cross-fitting)."""
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    net = build_radio_map(
        samples, num_stations, hyper.length_scale_m, fill_absent=hyper.fill_absent,
        path_loss_exponent=hyper.path_loss_exponent, silence_weight=hyper.silence_weight,
    )
    return apply_hyperparameters(net, hyper)
