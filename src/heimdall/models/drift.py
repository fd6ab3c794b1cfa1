"""Receiver drift re-estimated from the transmissions being localised, with no labels.

A radio map reports each heard reading's residual at its answer; a receiver whose
calibration drifted since training reads high (or low) at every transmission of a batch,
so its mean residual over the batch measures the drift. The runtime
(`export.localizer.Localizer.predict`) and the fit's ellipse calibration
(`training.radio_map_fit`) both run a second pass on the readings corrected here. Powers in dB.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_HEARD_FOR_DRIFT", "OFFSET_SHRINKAGE", "corrected_rss", "station_corrections"]

#: Pseudo-count (readings) shrinking a station's re-estimated offset toward zero: one
#: transmission moves it by a tenth of its residual, a few hundred by nearly all of it.
OFFSET_SHRINKAGE = 10.0
#: Fewest known receivers that must have heard a transmission for its residuals to count.
#: The residuals are taken after the transmission's common offset (its unknown transmit
#: power), which takes up a lone reading whole and leaves two readings only their
#: difference, split evenly: neither says which receiver drifted, and counted as readings
#: they only pulled every estimate toward zero.
MIN_HEARD_FOR_DRIFT = 3


def station_corrections(rx_id: np.ndarray, heard: np.ndarray, residual_db: np.ndarray, num_stations: int) -> np.ndarray:
    """Per-station offset drift (dB, [S]) re-estimated from a batch's residuals, shrunk toward 0.

    `residual_db` [N, R]: each heard reading minus what the model expected at its answer.
    Only transmissions heard by at least `MIN_HEARD_FOR_DRIFT` known receivers count.
    """
    known = heard & (rx_id >= 0) & (rx_id < num_stations)
    known &= (known.sum(axis=1, keepdims=True) >= MIN_HEARD_FOR_DRIFT) & np.isfinite(residual_db)
    station = rx_id[known]
    total = np.bincount(station, residual_db[known].astype(np.float64), num_stations)
    count = np.bincount(station, minlength=num_stations)
    return total / (count + OFFSET_SHRINKAGE)


def corrected_rss(
    rx_id: np.ndarray, heard: np.ndarray, rss_dbm: np.ndarray, residual_db: np.ndarray, num_stations: int
) -> np.ndarray:
    """[N, R] readings (dB) with each known receiver's `station_corrections` taken out of its
    heard readings; 0 where not heard (the graph's input convention)."""
    correction = station_corrections(rx_id, heard, residual_db, num_stations)
    known = heard & (rx_id >= 0) & (rx_id < num_stations)
    station = np.clip(rx_id, 0, max(num_stations - 1, 0))
    return np.where(heard, rss_dbm, 0.0) - np.where(known, correction[station], 0.0)
