"""Where a transmission heard by one receiver may have been: the places its training heard at that level.

One power reading fixes a level, not a place: every place the receiver hears at that level
fits it. A bundle stores, per receiver and per level (1 dB steps), the mean and covariance of
the training transmitters that receiver heard within `TOLERANCE_DB` of it, whatever others
heard them too. A one-receiver answer's ellipse is then widened by the second moment of those
places about the answer (`Localizer.predict`, through `TrainingArea.check`), where the
distance from the answer to the receiver alone says nothing of a transmitter heard as
weakly far on the other side (docs/REAL_DATA.md). Positions in metres about the bundle's
reference point, levels in dBm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays

__all__ = ["MIN_PLACES", "TOLERANCE_DB", "OneReceiverPlaces"]

#: Training readings within this many dB of a level count as heard at that level.
TOLERANCE_DB = 2.0
#: Level step (dB) of the stored table.
STEP_DB = 1.0
#: Training transmitters a level needs for its places to be stored (fewer: the runtime falls
#: back to the distance from the answer to the receiver).
MIN_PLACES = 3


@dataclass(frozen=True)
class OneReceiverPlaces:
    """Per station (index into the bundle's station ids): levels [K] (dBm), the places'
    mean [K, 2] (m) and covariance [K, 2, 2] (m^2)."""

    levels_dbm: tuple[np.ndarray, ...]
    mean_m: tuple[np.ndarray, ...]
    covariance_m2: tuple[np.ndarray, ...]

    @classmethod
    def from_samples(cls, samples: SampleArrays, num_stations: int) -> OneReceiverPlaces:
        """The table of labelled `samples` (positions known) for stations 0..num_stations-1."""
        known = np.all(np.isfinite(samples.tx_position_m), axis=1)
        heard = samples.heard & samples.present & np.isfinite(samples.rss_dbm) & known[:, None]
        levels, means, covariances = [], [], []
        for station in range(num_stations):
            rows, slots = np.nonzero(heard & (samples.rx_id == station))
            level = samples.rss_dbm[rows, slots].astype(np.float64)
            place = samples.tx_position_m[rows].astype(np.float64)
            grid = (np.arange(np.floor(level.min()), np.ceil(level.max()) + STEP_DB, STEP_DB)
                    if len(level) >= MIN_PLACES else np.zeros(0))
            kept_level, kept_mean, kept_cov = [], [], []
            for centre in grid:
                near = place[np.abs(level - centre) <= TOLERANCE_DB]
                if len(near) >= MIN_PLACES:
                    kept_level.append(centre)
                    kept_mean.append(near.mean(axis=0))
                    kept_cov.append(np.cov(near.T, bias=True))
            levels.append(np.asarray(kept_level, dtype=np.float64))
            means.append(np.asarray(kept_mean, dtype=np.float64).reshape(-1, 2))
            covariances.append(np.asarray(kept_cov, dtype=np.float64).reshape(-1, 2, 2))
        return cls(tuple(levels), tuple(means), tuple(covariances))

    def to_config(self) -> dict[str, Any]:
        """The `one_receiver_places` entry of a bundle's config.yaml (metres rounded to 0.1)."""
        return {
            "tolerance_db": TOLERANCE_DB,
            "stations": [
                {"level_dbm": [float(v) for v in level],
                 "mean_m": [[round(float(x), 1) for x in row] for row in mean],
                 "covariance_m2": [[round(float(c[0, 0]), 1), round(float(c[0, 1]), 1), round(float(c[1, 1]), 1)]
                                   for c in cov]}
                for level, mean, cov in zip(self.levels_dbm, self.mean_m, self.covariance_m2, strict=True)
            ],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OneReceiverPlaces | None:
        """The table a bundle's config stores; None where it stores none (older bundles)."""
        entry = config.get("one_receiver_places")
        if not isinstance(entry, dict) or not entry.get("stations"):
            return None
        levels, means, covariances = [], [], []
        for station in entry["stations"]:
            levels.append(np.asarray(station["level_dbm"], dtype=np.float64))
            means.append(np.asarray(station["mean_m"], dtype=np.float64).reshape(-1, 2))
            packed = np.asarray(station["covariance_m2"], dtype=np.float64).reshape(-1, 3)
            covariances.append(np.stack([packed[:, [0, 1]], packed[:, [1, 2]]], axis=1))
        return cls(tuple(levels), tuple(means), tuple(covariances))

    def spread_m2(self, samples: SampleArrays, position_m: np.ndarray) -> np.ndarray:
        """[N, 2, 2] (m^2): for each sample heard by one known receiver at a stored level, the
        second moment about its answer `position_m` [N, 2] of the places heard at that level;
        NaN elsewhere (several receivers, an unknown one, a level its training never heard)."""
        spread = np.full((len(position_m), 2, 2), np.nan)
        heard = samples.heard & samples.present
        for i in np.flatnonzero(heard.sum(axis=1) == 1):
            slot = int(np.flatnonzero(heard[i])[0])
            station, level = int(samples.rx_id[i, slot]), float(samples.rss_dbm[i, slot])
            if not 0 <= station < len(self.levels_dbm) or not np.isfinite(level) or not len(self.levels_dbm[station]):
                continue
            k = int(np.argmin(np.abs(self.levels_dbm[station] - level)))
            if abs(self.levels_dbm[station][k] - level) > STEP_DB / 2:
                continue
            offset = self.mean_m[station][k] - position_m[i]
            spread[i] = self.covariance_m2[station][k] + np.outer(offset, offset)
        return spread
