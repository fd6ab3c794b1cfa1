"""A fixed receiver that listens from elsewhere than in training is named, and its samples flagged."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays
from heimdall.export.bundle import write_bundle_files
from heimdall.export.localizer import Localizer
from heimdall.export.moved_receivers import MOVED_RECEIVER_M, WARN_RECEIVER_MOVED, TrainingPositions
from heimdall.export.onnx_export import export_onnx
from heimdall.geo import ReferencePoint, local_to_ground
from heimdall.network import Receiver, ReceiverNetwork
from heimdall.training.radio_map_build import build_radio_map

REFERENCE = ReferencePoint(45.0, 9.0, 0.0)
STATIONS = 6
IDS = [f"s{i}" for i in range(STATIONS)]
#: Receivers on a 1.2 km circle round the reference; s5 is a bus (its network position nominal).
ANGLE = np.linspace(0.0, 2 * np.pi, STATIONS, endpoint=False)
RECEIVERS_M = np.stack([1200.0 * np.cos(ANGLE), 1200.0 * np.sin(ANGLE)], axis=1)
ALTITUDE_M = 1400.0


def _network() -> ReceiverNetwork:
    lat, lon = local_to_ground(RECEIVERS_M[:, 0], RECEIVERS_M[:, 1], REFERENCE)
    return ReceiverNetwork(
        name="ring",
        receivers=tuple(
            Receiver(receiver_id=i, name=f"{i} (mobile)" if i == "s5" else i, lat_deg=float(a), lon_deg=float(o),
                     alt_m=ALTITUDE_M)
            for i, a, o in zip(IDS, lat, lon, strict=True)
        ),
        frequency_hz=462.7e6,
    )


def _campaign(rng: np.random.Generator, n: int) -> SampleArrays:
    tx = rng.uniform(-900.0, 900.0, (n, 2))
    distance = np.maximum(np.linalg.norm(RECEIVERS_M[None] - tx[:, None], axis=2), 1.0)
    rss = -40.0 - 30.0 * np.log10(distance) + rng.normal(0.0, 2.0, (n, STATIONS))
    return SampleArrays.from_fixed_receivers(RECEIVERS_M, tx, rss, np.ones((n, STATIONS), dtype=bool))


def _moved(samples: SampleArrays, station: int, east_m: float) -> SampleArrays:
    position = samples.rx_position_m.copy()
    position[:, station, 0] += east_m
    return dataclasses.replace(samples, rx_position_m=position)


@pytest.fixture(scope="module")
def positions() -> TrainingPositions:
    found = TrainingPositions.from_config({"network": _network().to_dict()}, REFERENCE, IDS)
    assert found is not None
    return found


def test_training_positions_are_the_fixed_receivers_of_the_bundle_network(positions: TrainingPositions) -> None:
    np.testing.assert_allclose(positions.position_m[:5], RECEIVERS_M[:5], atol=0.5)
    assert np.isnan(positions.position_m[5]).all()  # the bus: no fixed place to compare with
    # Old bundles (no network) and networks of mobile receivers only: nothing to check against.
    assert TrainingPositions.from_config({}, REFERENCE, IDS) is None
    buses = {"network": dataclasses.replace(_network(), receivers=_network().receivers[5:]).to_dict()}
    assert TrainingPositions.from_config(buses, REFERENCE, IDS) is None


def test_a_receiver_moved_by_more_than_a_gps_scatter_is_flagged(positions: TrainingPositions) -> None:
    samples = _campaign(np.random.default_rng(0), 4)
    # Where it was trained, but at ground level: a query file without rx_alt_m is not a move.
    flagged, farthest = positions.moved(samples)
    assert not flagged.any() and farthest == {}
    distance = positions.distance_m(_moved(samples, 2, 300.0))
    np.testing.assert_allclose(distance[:, 2], 300.0, atol=0.5)
    assert np.all(distance[:, [0, 1, 3, 4, 5]] < 0.5)
    # A GPS fix a few metres off, or a coordinate rounded to 4 decimals (about 11 m), is not.
    assert not positions.moved(_moved(samples, 2, 0.9 * MOVED_RECEIVER_M))[0].any()
    flagged, farthest = positions.moved(_moved(samples, 2, 1.1 * MOVED_RECEIVER_M))
    assert flagged.all() and farthest == {"s2": pytest.approx(1.1 * MOVED_RECEIVER_M, abs=0.5)}
    # The bus goes where it goes; an id the model does not know has no training place.
    assert not positions.moved(_moved(samples, 5, 2000.0))[0].any()
    unknown_ids = np.where(samples.rx_id == 2, UNKNOWN_STATION, samples.rx_id)
    unknown = dataclasses.replace(_moved(samples, 2, 500.0), rx_id=unknown_ids)
    assert not positions.moved(unknown)[0].any()
    # Only the samples the moved receiver listened to are flagged.
    present = samples.present.copy()
    present[:2, 2] = False
    flagged, _ = positions.moved(_moved(dataclasses.replace(samples, present=present, heard=present), 2, 500.0))
    assert flagged.tolist() == [False, False, True, True]


def test_localizer_flags_and_names_a_moved_receiver_and_keeps_its_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    net = build_radio_map(_campaign(rng, 300), STATIONS, length_scale_m=200.0)
    export_onnx(net, tmp_path / "model.onnx")
    config = {"name": "ring", "version": 1, "reference_point": {"lat_deg": 45.0, "lon_deg": 9.0, "alt_m": 0.0},
              "station_ids": IDS, "max_batch": 16, "network": _network().to_dict(), "dataset_kind": "measured"}
    write_bundle_files(tmp_path, config, {}, "test bundle")
    localizer = Localizer(tmp_path)
    test = _campaign(rng, 20)
    with caplog.at_level(logging.WARNING, logger="heimdall.export.localizer"):
        usual = localizer.predict(test)
    assert all(WARN_RECEIVER_MOVED not in w for w in usual.warnings) and "away from where" not in caplog.text
    moved = _moved(test, 1, 400.0)
    with caplog.at_level(logging.WARNING, logger="heimdall.export.localizer"):
        flagged = localizer.predict(moved)
    assert all(WARN_RECEIVER_MOVED in w for w in flagged.warnings)
    assert "1 receiver(s) listening away from where the model was trained with them (s1 400 m)" in caplog.text
    # The warning says so; the answer and its ellipse are what the model gives for that input.
    raw = localizer.predict(moved, check_area=False)
    assert raw.warnings == ((),) * len(test)
    np.testing.assert_allclose(flagged.position_m, raw.position_m)
    np.testing.assert_allclose(flagged.covariance_m2, raw.covariance_m2)
