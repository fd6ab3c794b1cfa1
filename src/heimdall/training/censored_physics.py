"""The path-loss exponent of a network whose receivers often hear nothing (censored readings).

Least squares on the heard readings alone is biased where most links are not heard: far
away, only the transmissions that happened to arrive strong are heard, so power seems to
fall off more slowly than it does (a 3.5 law fits as about 2.2 on a sparse 37-gateway
network where each gateway hears one transmission in ten). A receiver that listened and
heard nothing says its reading was below the weakest levels it reported; a Tobit
model uses that (the threshold is a low quantile of its heard readings,
`station_sensitivity_db`):

    heard:  rss ~ N(mu, sigma^2),   silent: P = eps + (1 - eps) Phi((threshold - mu) / sigma),
    mu = a_s - 10 n log10(d) + c_i,

with `eps` the chance that a receiver missed a transmission for reasons other than its
level (switched off, a collision), so such a miss cannot force the law. The fit is EM
(a silent reading is replaced by its expected value below the threshold, then the same
alternating least squares as `fit_physics`), accelerated by SQUAREM (Varadhan and Roland,
2008), which turns the hundreds of plain EM steps a mostly-censored campaign needs into
a few dozen. Powers in dB, distances in metres.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from heimdall.data.layout import SampleArrays
from heimdall.training.radio_map_build import Physics, fit_physics

__all__ = [
    "censored_path_loss_exponent", "silent_readings", "station_sensitivity_db", "MISSED_PROBABILITY",
    "SENSITIVITY_QUANTILE",
]

#: eps above: the chance a listening receiver missed a transmission whatever its level.
MISSED_PROBABILITY = 0.02
#: Quantile of a station's heard readings taken as its sensitivity (`station_sensitivity_db`).
SENSITIVITY_QUANTILE = 0.05
#: EM evaluations (each SQUAREM step costs three).
EM_EVALUATIONS = 60
#: Alternating least-squares passes per EM step.
INNER_PASSES = 3
_EXPONENT_BOUNDS = (1.0, 6.0)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def station_sensitivity_db(station: np.ndarray, rss_db: np.ndarray, num_stations: int) -> np.ndarray:
    """[S] the level below which each station hears nothing: the `SENSITIVITY_QUANTILE`
    quantile of its heard readings (inf for a station never heard).

    Not the weakest reading: one lucky decode far below the others would otherwise tell the
    fit that every silence of that station was weaker still, and steepen the law (3.85 for a
    true 3.0 on `benchmarks/radio_map_fit.py`'s campaign, 2.93 with this quantile; on a
    sharp sensitivity it costs a little: 3.37 for a true 3.5 on `benchmarks/not_received.py`'s).
    """
    threshold = np.full(num_stations, np.inf)
    for s in np.unique(station):
        threshold[s] = float(np.quantile(rss_db[station == s].astype(np.float64), SENSITIVITY_QUANTILE))
    return threshold


def silent_readings(samples: SampleArrays, num_stations: int) -> np.ndarray:
    """[N,R] bool: known stations that listened and heard nothing."""
    known = (samples.rx_id >= 0) & (samples.rx_id < num_stations)
    return samples.present & ~samples.heard & known


class _Readings:
    """Heard and silent readings of known stations, flattened, with their log-distances."""

    def __init__(self, samples: SampleArrays, num_stations: int) -> None:
        known = (samples.rx_id >= 0) & (samples.rx_id < num_stations)
        heard = samples.heard & samples.present & np.isfinite(samples.rss_dbm) & known
        rows, cols = np.nonzero(heard | silent_readings(samples, num_stations))
        is_heard = heard[rows, cols]
        station = samples.rx_id[rows, cols]
        threshold = station_sensitivity_db(station[is_heard], samples.rss_dbm[rows, cols][is_heard], num_stations)
        # A station never heard has no level to be below: its silences say nothing.
        keep = is_heard | np.isfinite(threshold[station])
        rows, cols, station, self.is_heard = rows[keep], cols[keep], station[keep], is_heard[keep]
        delta = samples.rx_position_m[rows, cols, :2].astype(np.float64) - samples.tx_position_m[rows].astype(np.float64)
        self.log_d = np.log10(np.maximum(np.linalg.norm(delta, axis=1), 1.0))
        self.rss_db = np.where(self.is_heard, samples.rss_dbm[rows, cols], 0.0).astype(np.float64)
        self.threshold_db = np.where(self.is_heard, 0.0, threshold[station])
        self.rows, self.station = rows, station
        self.num_samples, self.num_stations = len(samples), num_stations
        self.per_sample = np.maximum(np.bincount(rows, minlength=self.num_samples), 1)
        self.per_station = np.maximum(np.bincount(station, minlength=num_stations), 1)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        s, n = self.num_stations, self.num_samples
        return theta[:s], theta[s : s + n], float(theta[s + n]), float(np.exp(theta[s + n + 1]))

    def mean_db(self, offset: np.ndarray, common: np.ndarray, exponent: float) -> np.ndarray:
        return offset[self.station] - 10.0 * exponent * self.log_d + common[self.rows]

    def log_likelihood(self, theta: np.ndarray) -> float:
        offset, common, exponent, sigma = self.unpack(theta)
        mu = self.mean_db(offset, common, exponent)
        heard = -0.5 * ((self.rss_db - mu) / sigma) ** 2 - np.log(sigma) - _LOG_SQRT_2PI
        below = np.logaddexp(np.log(MISSED_PROBABILITY), np.log1p(-MISSED_PROBABILITY) + log_ndtr((self.threshold_db - mu) / sigma))
        return float(np.where(self.is_heard, heard, below).sum())

    def em_step(self, theta: np.ndarray) -> np.ndarray:
        """One EM step: expected silent readings, then alternating least squares."""
        offset, common, exponent, sigma = self.unpack(theta)
        mu = self.mean_db(offset, common, exponent)
        a = (self.threshold_db - mu) / sigma
        log_below = log_ndtr(a)
        ratio = np.exp(-0.5 * a * a - _LOG_SQRT_2PI - log_below)  # phi(a) / Phi(a)
        censored = (1.0 - MISSED_PROBABILITY) * np.exp(log_below)
        share = censored / (MISSED_PROBABILITY + censored)  # chance the silence was the level's
        filled = np.where(self.is_heard, self.rss_db, mu - share * sigma * ratio)
        second = sigma**2 * (share * (1.0 - a * ratio) + (1.0 - share))  # E[(rss - mu)^2]
        spread = np.where(self.is_heard, 0.0, np.maximum(second - (filled - mu) ** 2, 0.0))
        centred = self.log_d - self.log_d.mean()
        denominator = 10.0 * float(centred @ centred)
        for _ in range(INNER_PASSES):
            common = np.bincount(self.rows, filled - offset[self.station] + 10 * exponent * self.log_d, self.num_samples)
            common = common / self.per_sample
            common -= common.mean()
            offset = np.bincount(self.station, filled + 10 * exponent * self.log_d - common[self.rows], self.num_stations)
            offset = offset / self.per_station
            z = filled - offset[self.station] - common[self.rows]
            if denominator > 0:
                exponent = float(np.clip(-((z - z.mean()) @ centred) / denominator, *_EXPONENT_BOUNDS))
        residual = filled - self.mean_db(offset, common, exponent)
        sigma = float(np.sqrt(np.mean(residual**2 + spread)))
        return np.concatenate([offset, common, [exponent, np.log(max(sigma, 1e-3))]])


def censored_path_loss_exponent(samples: SampleArrays, num_stations: int, start: Physics | None = None) -> float:
    """The Tobit estimate of the path-loss exponent n (module docstring).

    `start`: the heard-only fit to start from (`fit_physics` of `samples` when None).
    Equals the least-squares exponent when no known station was ever silent.
    """
    start = fit_physics(samples, num_stations) if start is None else start
    readings = _Readings(samples, num_stations)
    if readings.is_heard.all():
        return start.exponent
    heard = readings.is_heard
    common = np.bincount(
        readings.rows[heard],
        (readings.rss_db + 10 * start.exponent * readings.log_d - start.offset_db[readings.station])[heard],
        readings.num_samples,
    ) / np.maximum(np.bincount(readings.rows[heard], minlength=readings.num_samples), 1)
    sigma = max(float(np.std(start.residual_db)), 0.1)
    theta = np.concatenate([start.offset_db, common, [start.exponent, np.log(sigma)]])
    best = readings.log_likelihood(theta)
    evaluations = 0
    while evaluations < EM_EVALUATIONS:
        once = readings.em_step(theta)
        twice = readings.em_step(once)
        r, v = once - theta, twice - 2.0 * once + theta
        # SQUAREM (scheme S3): extrapolate along the EM path, then one EM step to stabilise;
        # fall back to the plain double step whenever the jump lowers the likelihood.
        alpha = -max(float(np.linalg.norm(r)) / max(float(np.linalg.norm(v)), 1e-12), 1.0)
        jumped = readings.em_step(theta - 2.0 * alpha * r + alpha * alpha * v)
        evaluations += 3
        value = readings.log_likelihood(jumped)
        if not np.isfinite(value) or value < best:
            jumped, value = twice, readings.log_likelihood(twice)
        theta, best = jumped, value
    return readings.unpack(theta)[2]
