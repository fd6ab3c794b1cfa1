"""Move samples between local frames and station numberings (dataset -> model bundle)."""

from __future__ import annotations

import dataclasses

import numpy as np

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays
from heimdall.geo import ReferencePoint, enu_to_geodetic, geodetic_to_enu, ground_to_local

__all__ = ["align_samples"]


def align_samples(
    samples: SampleArrays,
    from_reference: ReferencePoint,
    to_reference: ReferencePoint,
    from_station_ids: list[str],
    to_station_ids: list[str],
) -> SampleArrays:
    """`samples` re-expressed about `to_reference` with `to_station_ids` numbering.

    Stations the target does not know become `UNKNOWN_STATION`; when frames and numbering
    already agree the samples are returned unchanged.
    """
    result = samples
    if from_reference != to_reference:
        pos = samples.rx_position_m.reshape(-1, 3).astype(np.float64)
        lat, lon, alt = enu_to_geodetic(pos[:, 0], pos[:, 1], pos[:, 2], from_reference)
        e, n, u = geodetic_to_enu(lat, lon, alt, to_reference)
        rx = np.column_stack([e, n, u]).reshape(samples.rx_position_m.shape).astype(np.float32)
        tx_e, tx_n = ground_to_local(samples.tx_lat_deg, samples.tx_lon_deg, to_reference)
        tx = np.column_stack([tx_e, tx_n]).astype(np.float32)
        result = dataclasses.replace(result, rx_position_m=rx, tx_position_m=tx)
    if list(from_station_ids) != list(to_station_ids):
        lookup = {sid: i for i, sid in enumerate(to_station_ids)}
        table = np.array([lookup.get(sid, UNKNOWN_STATION) for sid in from_station_ids] + [UNKNOWN_STATION])
        ids = np.where((samples.rx_id >= 0) & (samples.rx_id < len(from_station_ids)), samples.rx_id, -1)
        result = dataclasses.replace(result, rx_id=table[ids].astype(np.int64))
    return result
