"""Receiver offsets per measurement session, for campaigns measured over several days.

Uncalibrated receivers drift between days (temperature, gain settings, a cable changed).
One offset per receiver leaves each day's drift in the residual maps, where it reads as
shadowing of the streets walked that day. Here the labelled samples are cut into sessions
(`data.sessions`: runs of timestamps with no gap longer than 6 hours), and each fixed receiver's
offset in each session is estimated against the other sessions: its residuals on that
session's transmissions minus the other sessions' residuals kernel-smoothed at the same
places, each reading weighted by how much the other sessions measured there. Where the
sessions walked different streets a day's offset and its streets' shadowing cannot be told
apart, so the estimates are shrunk toward no drift by a drift variance estimated from the
data (empirical Bayes: the raw estimates' spread less their sampling variance); a campaign
that did not drift is left nearly alone. `training.radio_map_fit` fits the map on the
shifted readings only where its cross-fitting says it pays, and the runtime shifts a query
sent within a training session by that session's offsets (`data.sessions`). Powers in dB,
times in seconds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.data.sessions import session_index, session_starts, shift_readings
from heimdall.training.radio_map_build import (
    SHRINKAGE, RadioMapHyperparameters, fit_physics, kernel_sums, mobile_stations,
)

__all__ = ["estimate_session_offsets", "fit_session_offsets"]

#: Kernel length of the other sessions' residuals, as a share of the transmitters' extent.
LENGTH_SHARE = 1.0 / 60.0
#: Rounds of estimate, shift and refit of the physics.
ROUNDS = 3


def estimate_session_offsets(samples: SampleArrays, num_stations: int, session: np.ndarray) -> np.ndarray:
    """Offsets [K, S] (dB) of each fixed station in each of the K sessions (`session` [N],
    0..K-1), relative to the others and shrunk toward 0; mobile stations get 0."""
    sessions = int(session.max()) + 1 if session.size else 0
    total = np.zeros((sessions, num_stations))
    if sessions < 2:
        return total
    mobile = mobile_stations(samples, num_stations)
    tx = samples.tx_position_m.astype(np.float64)
    length_m = max(float(np.max(np.ptp(tx, axis=0))), 1.0) * LENGTH_SHARE
    for _ in range(ROUNDS):
        physics = fit_physics(shift_readings(samples, session, total), num_stations)
        fixed = ~mobile[physics.station]
        residual = np.zeros((len(samples), num_stations))
        weight = np.zeros((len(samples), num_stations))
        residual[physics.rows[fixed], physics.station[fixed]] = physics.residual_db[fixed]
        weight[physics.rows[fixed], physics.station[fixed]] = 1.0
        raw = np.zeros((sessions, num_stations))
        variance = np.full((sessions, num_stations), np.inf)
        for k in range(sessions):
            inside = session == k
            others = (~inside)[:, None]
            sums = kernel_sums(tx[inside], tx, length_m, np.concatenate([residual * others, weight * others], axis=1))
            expected = sums[:, :num_stations] / (sums[:, num_stations:] + SHRINKAGE)
            # A reading counts by how much the other sessions measured at its place.
            trust = sums[:, num_stations:] / (sums[:, num_stations:] + 1.0) * weight[inside]
            difference = residual[inside] - expected
            trust_sum = trust.sum(axis=0)
            usable = trust_sum > 1.0
            mean = (trust * difference).sum(axis=0) / np.maximum(trust_sum, 1e-12)
            spread = (trust * (difference - mean) ** 2).sum(axis=0) / np.maximum(trust_sum, 1e-12)
            effective = trust_sum**2 / np.maximum((trust**2).sum(axis=0), 1e-12)
            raw[k, usable] = mean[usable]
            variance[k, usable] = spread[usable] / effective[usable]
        usable = np.isfinite(variance)
        if not usable.any():
            break
        drift_variance = max(0.0, float(np.mean(raw[usable] ** 2 - variance[usable])))
        total += np.where(usable, raw * drift_variance / (drift_variance + np.where(usable, variance, 1.0)), 0.0)
    return total


def fit_session_offsets(
    samples: SampleArrays, num_stations: int, hyper: RadioMapHyperparameters
) -> tuple[SampleArrays, RadioMapHyperparameters]:
    """`samples` with each session's offsets taken out, and `hyper` with the sessions' starts
    and offsets to store; unchanged where the samples lack timestamps or span one session."""
    samples = samples.select(np.all(np.isfinite(samples.tx_position_m), axis=1))
    if samples.timestamp_s is None:
        return samples, hyper
    starts = session_starts(samples.timestamp_s)
    if len(starts) < 2:
        return samples, hyper
    session = session_index(samples.timestamp_s, starts, samples.timestamp_s)
    offsets = estimate_session_offsets(samples, num_stations, session)
    table = tuple(tuple(float(v) for v in row) for row in offsets)
    return shift_readings(samples, session, offsets), replace(
        hyper, session_starts_s=tuple(float(t) for t in starts), session_offsets_db=table
    )
