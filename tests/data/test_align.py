"""Moving samples between frames and station numberings."""

from __future__ import annotations

import numpy as np

from heimdall.data.align import align_samples
from heimdall.data.shards import DatasetReader
from heimdall.data.layout import UNKNOWN_STATION
from heimdall.geo import ReferencePoint, haversine_m, local_to_ground
from heimdall.pipelines import generate


def test_round_trip_between_frames_and_numberings(ctx) -> None:
    generate(ctx, "al", 1100, seed=4)
    reader = DatasetReader(ctx.store, "al")
    samples = reader.load("test")
    ids = reader.manifest.station_ids
    other_ref = ReferencePoint(44.0, 9.5)
    other_ids = list(reversed(ids[1:])) + ["new-station"]
    moved = align_samples(samples, reader.manifest.reference, other_ref, ids, other_ids)
    # The first station is unknown to the target numbering; the others keep their identity.
    assert np.all(moved.rx_id[samples.rx_id == 0] == UNKNOWN_STATION)
    known = samples.rx_id > 0
    assert [other_ids[i] for i in moved.rx_id[known][:20]] == [ids[i] for i in samples.rx_id[known][:20]]
    # Transmitters stay on the same spot of the Earth.
    lat, lon = local_to_ground(moved.tx_position_m[:, 0].astype(float), moved.tx_position_m[:, 1].astype(float), other_ref)
    assert np.max(haversine_m(lat, lon, samples.tx_lat_deg, samples.tx_lon_deg)) < 0.1
    back = align_samples(moved, other_ref, reader.manifest.reference, other_ids, other_ids)
    np.testing.assert_allclose(back.rx_position_m, samples.rx_position_m, atol=0.05)
    same = align_samples(samples, reader.manifest.reference, reader.manifest.reference, ids, ids)
    assert same is samples
