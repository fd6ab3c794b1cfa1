"""Fixed receivers that are not where the model was trained with them.

A radio map learns, per receiver, how the signal reaches that receiver's place from every
point of the area (its residual map) and what it read there (its fingerprints). A gateway
moved to another roof keeps its id, so the runtime would compare its new readings with the
old place's map without a word. `TrainingPositions` (from the bundle's `config.yaml`
network: each receiver's median position over the training data, mobile ones marked
"(mobile)" by the importer) lets the runtime say so: each sample a moved receiver listened
to gets `WARN_RECEIVER_MOVED`, and `Localizer.predict` names the receivers and distances in
the log. The answer itself is the model's: on a simulated city network, reading the moved
gateway as a receiver the model does not know (the path-loss law only) gained too little
and too unevenly over keeping its id, while a map fitted again gained much more
(`benchmarks/moved_receiver.py`, docs/OPERATIONS.md, "A receiver moved since training").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.data.measured import MOBILE_SPREAD_M, MOBILE_SUFFIX
from heimdall.geo import ReferencePoint, geodetic_to_enu
from heimdall.network import ReceiverNetwork

__all__ = ["WARN_RECEIVER_MOVED", "MOVED_RECEIVER_M", "TrainingPositions"]

WARN_RECEIVER_MOVED = "receiver_moved_since_training"

#: A fixed receiver listening further than this (metres, horizontally) from its training
#: position has moved: the spread beyond which the importer calls a receiver mobile, so a
#: GPS fix's scatter or a rounded coordinate does not count.
MOVED_RECEIVER_M = MOBILE_SPREAD_M


@dataclass(frozen=True)
class TrainingPositions:
    """Where each station of a bundle listened in training: east/north [S, 2] (metres about
    the bundle's reference point), NaN for mobile stations and ones the network lacks."""

    station_ids: tuple[str, ...]
    position_m: np.ndarray

    @classmethod
    def from_config(
        cls, config: dict[str, Any], reference: ReferencePoint, station_ids: list[str]
    ) -> TrainingPositions | None:
        """The positions of a bundle's `config.yaml`; None when it names no network (old bundles)
        or no station of the network is fixed."""
        network_data = config.get("network")
        if not isinstance(network_data, dict) or not network_data.get("receivers"):
            return None
        fixed = {
            r.receiver_id: r for r in ReceiverNetwork.from_dict(network_data).receivers
            if not r.name.endswith(MOBILE_SUFFIX)
        }
        position_m = np.full((len(station_ids), 2), np.nan)
        for s, station_id in enumerate(station_ids):
            receiver = fixed.get(station_id)
            if receiver is not None:
                east, north, _up = geodetic_to_enu(receiver.lat_deg, receiver.lon_deg, receiver.alt_m, reference)
                position_m[s] = float(east), float(north)
        if not np.isfinite(position_m).any():
            return None
        return cls(station_ids=tuple(station_ids), position_m=position_m)

    def distance_m(self, samples: SampleArrays) -> np.ndarray:
        """[N, R] horizontal distance (m) of each listening receiver from where its station
        listened in training; 0 for unknown and mobile stations and absent receivers."""
        s = len(self.station_ids)
        known = samples.present & (samples.rx_id >= 0) & (samples.rx_id < s)
        trained = self.position_m[np.where(known, samples.rx_id, 0)]  # [N, R, 2]
        offset = samples.rx_position_m[..., :2].astype(np.float64) - trained
        distance = np.hypot(offset[..., 0], offset[..., 1])
        return np.where(known & np.isfinite(distance), distance, 0.0)

    def moved(self, samples: SampleArrays) -> tuple[np.ndarray, dict[str, float]]:
        """([N] bool: a moved receiver listened to the sample, {station id: farthest distance
        (m)} of the moved stations), moved meaning further than `MOVED_RECEIVER_M`."""
        distance = self.distance_m(samples)
        moved = distance > MOVED_RECEIVER_M
        # Per station at once: a relocated gateway in a large file is thousands of readings.
        station = samples.rx_id[moved]
        far_m = np.zeros(len(self.station_ids))
        np.maximum.at(far_m, station, distance[moved])
        return moved.any(axis=1), {self.station_ids[s]: float(far_m[s]) for s in np.unique(station)}
