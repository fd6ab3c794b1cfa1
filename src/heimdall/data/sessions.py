"""Measurement sessions: the days of a campaign, and a query's session by its time.

A campaign measured over several days is cut where consecutive transmissions are more than
`SESSION_GAP_S` apart; `training.session_offsets` estimates each receiver's offset in each
session, and the runtime (`export.localizer`) takes a query's session offsets out of its
readings when it was sent within a training session. Numpy only, so the runtime stays light.
Times in seconds, powers in dB.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from heimdall.data.layout import SampleArrays

__all__ = ["SESSION_GAP_S", "session_index", "session_starts", "shift_readings"]

#: A pause longer than this (s) between consecutive transmissions starts a new session.
SESSION_GAP_S = 6 * 3600.0


def session_starts(times_s: np.ndarray) -> np.ndarray:
    """First time (s, whole seconds, floored) of each session of `times_s`; NaN times ignored."""
    known = np.sort(np.asarray(times_s, dtype=np.float64)[np.isfinite(times_s)])
    if known.size == 0:
        return np.zeros(0)
    first = np.concatenate([[True], np.diff(known) > SESSION_GAP_S])
    return np.floor(known[first])


def session_index(times_s: np.ndarray, starts_s: np.ndarray, training_times_s: np.ndarray) -> np.ndarray:
    """Session [N] of each time: that of the nearest training time when it lies within
    `SESSION_GAP_S`, else -1 (a new day, or no timestamp)."""
    times_s = np.asarray(times_s, dtype=np.float64)
    out = np.full(times_s.shape, -1, dtype=np.int64)
    known = np.sort(np.asarray(training_times_s, dtype=np.float64).ravel())
    known = known[np.isfinite(known)]
    if known.size == 0 or len(starts_s) == 0:
        return out
    finite = np.isfinite(times_s)
    t = times_s[finite]
    right = np.clip(np.searchsorted(known, t), 0, known.size - 1)
    left = np.clip(right - 1, 0, known.size - 1)
    nearest = np.where(np.abs(known[right] - t) < np.abs(known[left] - t), known[right], known[left])
    session = np.searchsorted(np.asarray(starts_s, dtype=np.float64), nearest, side="right") - 1
    out[finite] = np.where((np.abs(nearest - t) <= SESSION_GAP_S) & (session >= 0), session, -1)
    return out


def shift_readings(samples: SampleArrays, session: np.ndarray, offsets_db: np.ndarray) -> SampleArrays:
    """`samples` with each heard reading of a sample in session k at known station s lowered
    by `offsets_db[k, s]`; samples in session -1 unchanged."""
    num_stations = offsets_db.shape[1] if offsets_db.ndim == 2 else 0
    known = samples.heard & (samples.rx_id >= 0) & (samples.rx_id < num_stations) & (session[:, None] >= 0)
    if not known.any():
        return samples
    rows, cols = np.nonzero(known)
    rss = samples.rss_dbm.astype(np.float64)
    rss[rows, cols] -= offsets_db[session[rows], samples.rx_id[rows, cols]]
    return replace(samples, rss_dbm=rss.astype(samples.rss_dbm.dtype))
