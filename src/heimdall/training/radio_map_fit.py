"""Fitting a `RadioMapNet` to labelled measurements, hyperparameters chosen on held-out folds.

`fit_radio_map` is what `heimdall train` runs on a measured dataset. Steps:

1. Physics: per-station offsets a_s, one path-loss exponent n and a common offset per
   transmission (the unknown transmit power), by alternating least squares on
   `rss = a_s - 10 n log10(d) + c_i`.
2. Residual maps: each fixed station's residuals smoothed over the grid by a Gaussian
   kernel of length L, shrunk to zero where there is little data; the variance grows from
   the leave-one-out residual variance (dense data) to the plain one (no data). Mobile
   stations (positions spreading over more than `MOBILE_SPREAD_M`) get no map.
3. Prior and fingerprints: a smoothed density of training transmitters, and every training
   fingerprint with its position.
4. Choice and calibration: L, the fingerprint bandwidth and background, the fingerprint
   weight and the temperature minimise the mean of the median errors under random and
   under spatial-block cross-fitting of the labelled samples (so the choice serves both
   the interpolation users do on a campaign's paths and the extrapolation to places nobody
   measured); then the covariance temperature, floor and scale bring the 1- and 2-sigma
   coverage of the same out-of-fold predictions to 0.393 / 0.865.

All distances in metres, powers in dB.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError
from heimdall.evaluation.knn import fit_knn
from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.models.radio_map import RadioMapConfig, RadioMapNet

__all__ = [
    "RadioMapHyperparameters", "RadioMapFit", "fit_radio_map", "build_radio_map", "refit_radio_map",
    "apply_hyperparameters", "MOBILE_SPREAD_M",
]

log = logging.getLogger(__name__)

#: A station whose receiver positions stray further than this (metres) from their median is mobile.
MOBILE_SPREAD_M = 25.0
#: Grid cells along the transmitters' larger extent.
GRID_CELLS = 90
#: Percentiles of the training transmitters' positions that bound the grid (before the margin).
TX_BOX_PERCENTILES = (0.5, 99.5)
#: Grid margin around the training transmitters, as a share of their larger extent.
GRID_MARGIN = 0.1
#: Kernel length scales of the residual maps tried, as shares of the transmitters' extent.
LENGTH_SCALE_SHARES = (1 / 120, 1 / 60, 1 / 30)
FINGERPRINT_BANDWIDTHS_DB = (1.0, 2.0, 4.0)
FINGERPRINT_BACKGROUNDS = (1.0e-3, 1.0e-2)
FINGERPRINT_WEIGHTS = (0.5, 1.0, 2.0, 4.0)
TEMPERATURES = (0.25, 0.5, 1.0, 2.0)
#: Widening scales d0 (dB) tried for `novelty_factor` (0: none), and the cap on d (dB).
NOVELTY_SCALES_DB = (0.0, 1.0, 2.0, 4.0, 8.0)
NOVELTY_CAP_DB = 20.0
#: Rounds of coordinate descent over the settings above.
SEARCH_ROUNDS = 2
#: Folds of each cross-fitting scheme, and the held-out samples scored per scheme at most.
CROSS_FOLDS = 3
CROSS_SAMPLES = 1500
#: Prior density bandwidth (share of the extent) and its floor relative to the peak.
PRIOR_BANDWIDTH_SHARE = 1 / 40
PRIOR_FLOOR = 0.05
#: Shrinkage of the residual maps: kernel weight that counts as much as the zero prior.
SHRINKAGE = 1.0
#: Samples per chunk when evaluating the grid likelihood (memory: chunk x G x R floats).
_CHUNK = 32
_TARGETS = ((1.0, 1.0 - math.exp(-0.5)), (2.0, 1.0 - math.exp(-2.0)))


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

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RadioMapFit:
    """A fitted model and what its fit measured on out-of-fold predictions."""

    net: RadioMapNet
    hyperparameters: RadioMapHyperparameters
    #: Median out-of-fold error (m) per cross-fitting scheme, and coverage after calibration.
    cross_validation: dict[str, float]


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


@dataclass(frozen=True)
class _Physics:
    offset_db: np.ndarray  # [S]
    exponent: float
    common_sd_db: float
    rows: np.ndarray  # [M] sample of each heard reading
    station: np.ndarray  # [M]
    rss_db: np.ndarray  # [M]
    residual_db: np.ndarray  # [M]


def _fit_physics(samples: SampleArrays, num_stations: int, iterations: int = 25) -> _Physics:
    """Alternating least squares for a_s, n and c_i (see the module docstring)."""
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
    exponent = 3.0
    for _ in range(iterations):
        common = np.bincount(rows, rss - offset[station] + 10 * exponent * log_d, n_samples) / per_sample
        common -= common[np.bincount(rows, minlength=n_samples) > 0].mean()
        offset = np.bincount(station, rss + 10 * exponent * log_d - common[rows], num_stations) / per_station
        z = rss - offset[station] - common[rows]
        centred = log_d - log_d.mean()
        denominator = 10.0 * float(centred @ centred)
        if denominator > 0:
            exponent = float(np.clip(-((z - z.mean()) @ centred) / denominator, 1.0, 6.0))
    heard_stations = np.bincount(station, minlength=num_stations) > 0
    # A station never heard in training reads like the average station until the runtime
    # re-estimates its offset from what it reports.
    offset[~heard_stations] = offset[heard_stations].mean()
    residual = rss - offset[station] + 10 * exponent * log_d - common[rows]
    observed = np.bincount(rows, minlength=n_samples) > 0
    return _Physics(offset, exponent, float(np.std(common[observed])) + 0.5, rows, station, rss, residual)


def _grid(tx_position_m: np.ndarray) -> tuple[np.ndarray, float, int, int]:
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


def _kernel_sums(points: np.ndarray, centres: np.ndarray, length_m: float, values: np.ndarray) -> np.ndarray:
    """sum_i exp(-|p - c_i|^2 / 2L^2) values_i for every point, [P, V] (chunked)."""
    out = np.zeros((len(points), values.shape[1]))
    c = torch.from_numpy(centres)
    v = torch.from_numpy(values)
    for start in range(0, len(points), 2048):
        p = torch.from_numpy(points[start : start + 2048])
        kernel = torch.exp(-0.5 * torch.cdist(p, c).square() / length_m**2)
        out[start : start + 2048] = (kernel @ v).numpy()
    return out


def build_radio_map(
    samples: SampleArrays,
    num_stations: int,
    length_scale_m: float,
    grid: tuple[np.ndarray, float, int, int] | None = None,
    mobile: np.ndarray | None = None,
) -> RadioMapNet:
    """Fit steps 1-3 on `samples` (positions known) for one residual length scale.

    Fingerprint and calibration settings keep their defaults; `fit_radio_map` sets them.
    """
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    if len(samples) < 10:
        raise DataError(f"fitting a radio map needs at least 10 samples with known positions, got {len(samples)}")
    tx = samples.tx_position_m.astype(np.float64)
    points, step, rows, cols = grid if grid is not None else _grid(tx)
    mobile = mobile_stations(samples, num_stations) if mobile is None else mobile
    physics = _fit_physics(samples, num_stations)
    s, n = num_stations, len(samples)
    residuals = np.zeros((n, s))
    weights = np.zeros((n, s))
    fixed = ~mobile[physics.station]
    residuals[physics.rows[fixed], physics.station[fixed]] = physics.residual_db[fixed]
    weights[physics.rows[fixed], physics.station[fixed]] = 1.0
    both = np.concatenate([residuals, weights], axis=1)
    grid_sums = _kernel_sums(points, tx, length_scale_m, both)
    numerator, weight = grid_sums[:, :s], grid_sums[:, s:]
    residual_map = numerator / (weight + SHRINKAGE)
    # Leave-one-out residual variance at the training points (self-weight is exactly 1).
    train_sums = _kernel_sums(tx, tx, length_scale_m, both)
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
    density = _kernel_sums(points, tx, PRIOR_BANDWIDTH_SHARE * extent, np.ones((n, 1)))[:, 0]
    knn = fit_knn(samples, num_stations)
    config = RadioMapConfig(num_stations=s, grid_rows=rows, grid_cols=cols, num_fingerprints=len(knn))
    net = RadioMapNet(config)
    with torch.no_grad():
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
        net.log_prior.copy_(torch.from_numpy(np.log(density / max(float(density.max()), 1e-300) + PRIOR_FLOOR)))
        net.fingerprint_db.copy_(torch.from_numpy(knn.values_db))
        net.fingerprint_mask.copy_(torch.from_numpy(knn.comparable.astype(np.float64)))
        net.fingerprint_position_m.copy_(torch.from_numpy(knn.tx_position_m))
        net.fingerprint_position_bandwidth_m.fill_(1.5 * step)
    return net.eval()


def _inputs(samples: SampleArrays) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(samples.rx_position_m.astype(np.float32)),
        torch.from_numpy(samples.rx_id.astype(np.int64)),
        torch.from_numpy(np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32)),
        torch.from_numpy(samples.heard.astype(bool)),
        torch.from_numpy(samples.present.astype(bool)),
    )


@dataclass
class _HeldOut:
    """Log terms of held-out samples under one fold's map, per fingerprint setting."""

    truth_m: np.ndarray  # [N,2]
    grid_m: torch.Tensor
    log_prior: torch.Tensor
    log_likelihood: torch.Tensor  # [N,G]
    log_density: dict[tuple[float, float], torch.Tensor]  # (bandwidth, background) -> [N,G]
    nearest_db: np.ndarray  # [N] distance to the nearest training fingerprint


def _held_out_terms(net: RadioMapNet, samples: SampleArrays, shared: _HeldOut | None = None) -> _HeldOut:
    """Log terms of `samples` under `net`; `density` reuses the fingerprint terms of a map
    with the same fingerprints and grid (they do not depend on the residual length scale)."""
    lls, distances, indices = [], [], []
    with torch.no_grad():
        for start in range(0, len(samples), _CHUNK):
            part = samples.select(np.arange(start, min(start + _CHUNK, len(samples))))
            rx, rx_id, rss, heard, present = _inputs(part)
            station = net._stations(rx_id)
            lls.append(net.map_log_likelihood(rx, station, rss, heard, present))
            if shared is None:
                d, i = net.fingerprint_neighbours(station, rss, heard, present)
                distances.append(d)
                indices.append(i)
        truth = samples.tx_position_m.astype(np.float64)
        if shared is not None:
            return _HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), shared.log_density, shared.nearest_db)
        distance, index = torch.cat(distances), torch.cat(indices)
        density = {}
        for bandwidth, background in itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS):
            parts = [
                net.fingerprint_log_density(distance[s : s + _CHUNK], index[s : s + _CHUNK],
                                            torch.tensor(bandwidth), torch.tensor(background))
                for s in range(0, len(samples), _CHUNK)
            ]
            density[(bandwidth, background)] = torch.cat(parts)
    return _HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), density, distance[:, 0].double().numpy())


def _posterior_mean(held: _HeldOut, key: tuple[float, float], weight: float, temperature: float) -> np.ndarray:
    scaled = (held.log_likelihood + weight * temperature * held.log_density[key]) / temperature
    return (torch.softmax(scaled + held.log_prior, dim=1) @ held.grid_m).double().numpy()


def _posterior_moments(
    held: _HeldOut, key: tuple[float, float], weight: float, temperature: float, covariance_temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    scaled = held.log_likelihood + weight * temperature * held.log_density[key]
    w = torch.softmax(scaled / temperature + held.log_prior, dim=1)
    mean = w @ held.grid_m
    wide = torch.softmax(scaled / covariance_temperature + held.log_prior, dim=1)
    spread = held.grid_m[None] - mean[:, None, :]
    covariance = torch.einsum("bg,bgi,bgj->bij", wide, spread, spread)
    return mean.double().numpy(), covariance.double().numpy()


def _folds(samples: SampleArrays, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Fold index per sample: random, or square spatial blocks (a tenth of the extent) dealt to folds."""
    n = len(samples)
    if scheme == "random":
        return rng.permutation(n) % CROSS_FOLDS
    tx = samples.tx_position_m.astype(np.float64)
    cell = max(float(np.max(tx.max(axis=0) - tx.min(axis=0))) / 10.0, 1.0)
    keys = np.floor((tx - tx.min(axis=0)) / cell).astype(np.int64)
    _, block = np.unique(keys[:, 0] * 1_000_003 + keys[:, 1], return_inverse=True)
    return rng.permutation(int(block.max()) + 1)[block] % CROSS_FOLDS


def novelty_factor(nearest_db: np.ndarray, novelty_db: float) -> np.ndarray:
    """Covariance multiplier 1 + (d / d0)^2 for a query d dB from its nearest training fingerprint.

    d is capped at `NOVELTY_CAP_DB`; d0 = 0 turns the widening off. The same formula runs
    in `RadioMapNet.summarize`.
    """
    if novelty_db <= 0:
        return np.ones_like(nearest_db)
    return 1.0 + (np.minimum(nearest_db, NOVELTY_CAP_DB) / novelty_db) ** 2


def _calibrate(
    delta_m: np.ndarray, covariance_m2: np.ndarray, step_m: float, groups: np.ndarray
) -> tuple[float, float, float]:
    """(misfit, scale, floor_m): scale * (covariance + floor^2 I) best matching 1/2-sigma coverage.

    The misfit adds each group's (cross-fitting scheme's) squared coverage errors, so one
    setting must hold for interpolation and extrapolation alike.
    """
    floors = np.concatenate([[0.0], step_m * np.exp(np.linspace(np.log(0.25), np.log(40.0), 24))])
    scales = np.exp(np.linspace(np.log(0.05), np.log(50.0), 300))
    best = (np.inf, 1.0, 0.0)
    eye = np.eye(2)
    for floor in floors:
        d2 = mahalanobis_sq(delta_m, covariance_m2 + (floor * floor + step_m * step_m / 12.0) * eye)
        misfit = np.zeros(len(scales))
        for group in np.unique(groups):
            part = d2[groups == group]
            misfit += sum(((part[None, :] <= k * k * scales[:, None]).mean(axis=1) - target) ** 2 for k, target in _TARGETS)
        i = int(np.argmin(misfit))
        if misfit[i] < best[0] - 1e-12:
            best = (float(misfit[i]), float(scales[i]), float(floor))
    return best


def fit_radio_map(
    samples: SampleArrays,
    num_stations: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RadioMapFit:
    """Choose hyperparameters by cross-fitting `samples`, calibrate, refit on all of them.

    `samples`: every labelled sample the model may learn from (positions known).
    `progress(done, total)` is called after each fold's map.
    """
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    if len(samples) < 30:
        raise DataError(f"a radio map needs at least 30 labelled samples, got {len(samples)}")
    rng = np.random.default_rng(seed)
    tx = samples.tx_position_m.astype(np.float64)
    extent = max(float(np.max(tx.max(axis=0) - tx.min(axis=0))), 1.0)
    lengths = [share * extent for share in LENGTH_SCALE_SHARES]
    mobile = mobile_stations(samples, num_stations)
    schemes = ("random", "spatial")
    total = len(schemes) * CROSS_FOLDS * len(lengths)
    done = 0
    # held[scheme][length index] -> list of per-fold held-out terms
    held: dict[str, list[list[_HeldOut]]] = {s: [[] for _ in lengths] for s in schemes}
    for scheme in schemes:
        folds = _folds(samples, scheme, rng)
        chosen = rng.permutation(len(samples))[: min(CROSS_SAMPLES, len(samples))]
        for fold in range(CROSS_FOLDS):
            train = samples.select(folds != fold)
            test_index = np.intersect1d(np.nonzero(folds == fold)[0], chosen)
            if len(train) < 10 or len(test_index) == 0:
                done += len(lengths)
                continue
            grid = _grid(train.tx_position_m.astype(np.float64))
            shared = None
            for li, length in enumerate(lengths):
                net = build_radio_map(train, num_stations, length, grid=grid, mobile=mobile)
                terms = _held_out_terms(net, samples.select(test_index), shared)
                shared = terms
                held[scheme][li].append(terms)
                done += 1
                if progress is not None:
                    progress(done, total + 1)
    keys = list(itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS))
    scores: dict[tuple, tuple[float, list[float]]] = {}

    def score(choice: tuple) -> float:
        """Mean over schemes of the out-of-fold median error (m) for (length index, key, weight, T)."""
        if choice not in scores:
            li, key, weight, temperature = choice
            medians = []
            for scheme in schemes:
                errors = [np.linalg.norm(_posterior_mean(h, key, weight, temperature) - h.truth_m, axis=1)
                          for h in held[scheme][li]]
                if errors:
                    medians.append(float(np.median(np.concatenate(errors))))
            scores[choice] = (float(np.mean(medians)) if medians else np.inf, medians)
        return scores[choice][0]

    # Coordinate descent over the four settings (a full product is 30x the softmaxes for the
    # same choice on the data tried): each in turn takes its best value, the others held.
    options = (range(len(lengths)), keys, FINGERPRINT_WEIGHTS, TEMPERATURES)
    choice = (len(lengths) // 2, (2.0, 1.0e-2), 1.0, 0.5)
    for _ in range(SEARCH_ROUNDS):
        for axis, values in enumerate(options):
            choice = min((choice[:axis] + (v,) + choice[axis + 1 :] for v in values), key=score)
    li, key, weight, temperature = choice
    medians = scores[choice][1]
    # Covariance temperature, floor and scale on the same out-of-fold predictions.
    step = float(_grid(tx)[1])
    calibration: tuple[float, ...] | None = None
    held_best = [(si, h) for si, s in enumerate(schemes) for h in held[s][li]]
    means = [_posterior_moments(h, key, weight, temperature, temperature)[0] for _, h in held_best]
    deltas = np.concatenate([h.truth_m - mean for (_, h), mean in zip(held_best, means, strict=True)])
    groups = np.concatenate([np.full(len(h.truth_m), si) for si, h in held_best])
    nearest = np.concatenate([h.nearest_db for _, h in held_best])
    for factor in (1.0, 2.0, 4.0, 8.0):
        covariances = np.concatenate(
            [_posterior_moments(h, key, weight, temperature, temperature * factor)[1] for _, h in held_best]
        )
        for novelty_db in NOVELTY_SCALES_DB:
            widened = covariances * novelty_factor(nearest, novelty_db)[:, None, None]
            misfit, scale, floor = _calibrate(deltas, widened, step, groups)
            if calibration is None or misfit < calibration[0]:
                calibration = (misfit, factor, scale, floor, novelty_db)
    assert calibration is not None
    _, factor, scale, floor, novelty_db = calibration
    hyper = RadioMapHyperparameters(
        length_scale_m=lengths[li],
        fingerprint_bandwidth_db=key[0],
        fingerprint_background=key[1],
        fingerprint_weight=weight,
        temperature=temperature,
        covariance_temperature=temperature * factor,
        covariance_floor_m=floor,
        covariance_scale=scale,
        novelty_db=novelty_db,
    )
    net = apply_hyperparameters(build_radio_map(samples, num_stations, hyper.length_scale_m, mobile=mobile), hyper)
    if progress is not None:
        progress(total + 1, total + 1)
    report = {f"cv_{s}_median_error_m": m for s, m in zip(schemes, medians, strict=False)}
    log.info("radio map: %s; out-of-fold medians %s", hyper, report)
    return RadioMapFit(net=net, hyperparameters=hyper, cross_validation=report)


def apply_hyperparameters(net: RadioMapNet, hyper: RadioMapHyperparameters) -> RadioMapNet:
    """Load the chosen fingerprint, temperature and calibration settings into `net`'s buffers."""
    with torch.no_grad():
        net.fingerprint_bandwidth_db.fill_(hyper.fingerprint_bandwidth_db)
        net.fingerprint_background.fill_(hyper.fingerprint_background)
        net.fingerprint_weight.fill_(hyper.fingerprint_weight)
        net.temperature.fill_(hyper.temperature)
        net.covariance_temperature.fill_(hyper.covariance_temperature)
        net.covariance_floor_m2.fill_(hyper.covariance_floor_m**2)
        net.covariance_scale.fill_(hyper.covariance_scale)
        net.novelty_db.fill_(hyper.novelty_db)
    return net


def refit_radio_map(samples: SampleArrays, num_stations: int, hyper: RadioMapHyperparameters) -> RadioMapNet:
    """A radio map on `samples` with hyperparameters chosen before (no new cross-fitting)."""
    known = np.all(np.isfinite(samples.tx_position_m), axis=1)
    samples = samples.select(known)
    return apply_hyperparameters(build_radio_map(samples, num_stations, hyper.length_scale_m), hyper)
