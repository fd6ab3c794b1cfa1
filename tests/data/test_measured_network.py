"""Building a receiver network from measurements where many receiver ids share a place.

Issue 20, finding 2: the collision nudge of `network_from_measurements` grew as n^3 with
receivers sharing a position (400 ids: 12.7 s; 1,957 ids over 7 positions: killed after
10 minutes). Its speed is measured by benchmarks/network_import.py (target: 1 s a case);
these tests check what it builds.
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.measured import COLLISION_NUDGE_M, network_from_measurements
from heimdall.data.measurements import MeasurementTable
from heimdall.geo import haversine_m
from heimdall.errors import InputError
from heimdall.network import Receiver, ReceiverNetwork


def _table(lat: np.ndarray, lon: np.ndarray) -> MeasurementTable:
    m = len(lat)
    return MeasurementTable(
        sample_id=np.array(["s0"] * m, dtype=object),
        receiver_id=np.array([f"id-{i:05d}" for i in range(m)], dtype=object),
        rx_lat_deg=np.asarray(lat, dtype=np.float64), rx_lon_deg=np.asarray(lon, dtype=np.float64),
        rx_alt_m=np.zeros(m), rss_dbm=np.full(m, -60.0), snr_db=np.full(m, np.nan),
        tx_lat_deg=np.full(m, 40.76), tx_lon_deg=np.full(m, -111.84),
    )


def test_thousand_receivers_at_one_position_are_moved_apart_in_steps() -> None:
    table = _table(np.full(1000, 40.76), np.full(1000, -111.84))
    network = network_from_measurements(table, "crowd", 462.7e6)
    assert len(network) == 1000
    # Moved east in steps of the nudge: receiver k sits k steps from the first (the sphere
    # of haversine and the ellipsoid of the local frame differ by a few parts per thousand).
    first, last = network.receivers[0], network.receivers[-1]
    assert first.lat_deg == 40.76 and first.lon_deg == -111.84
    assert abs(haversine_m(first.lat_deg, first.lon_deg, last.lat_deg, last.lon_deg) - 999 * COLLISION_NUDGE_M) < 0.01 * 999 * COLLISION_NUDGE_M


def test_two_thousand_ids_over_seven_positions_all_get_a_place_of_their_own() -> None:
    """The shape of the reported 150 KB CSV: 1,957 ids over 7 positions."""
    rng = np.random.default_rng(0)
    spots = np.column_stack([40.76 + 0.001 * np.arange(7), np.full(7, -111.84)])
    pick = rng.integers(0, 7, 1957)
    network = network_from_measurements(_table(spots[pick, 0], spots[pick, 1]), "crowd", 462.7e6)
    assert len(network) == 1957
    positions = network.positions_enu_m()
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=2) + np.eye(1957) * 1e9
    assert gaps.min() >= 0.99 * COLLISION_NUDGE_M  # no two ids left on one spot


def test_nudge_places_like_the_step_by_step_rule() -> None:
    """Three ids at one spot and one 2 m east of it: the steps skip the taken places."""
    lat = np.array([40.76, 40.76, 40.76])
    lon = np.array([-111.84, -111.84, -111.84])
    network = network_from_measurements(_table(lat, lon), "tiny", 462.7e6)
    positions = network.positions_enu_m()
    east = np.sort(positions[:, 0] - positions[:, 0].min())
    np.testing.assert_allclose(east, [0.0, COLLISION_NUDGE_M, 2 * COLLISION_NUDGE_M], atol=1e-3)


def test_network_separation_check_names_the_first_pair() -> None:
    receivers = [Receiver(f"r{i}", f"r{i}", 40.0 + 0.001 * i, -111.0) for i in range(3000)]
    assert len(ReceiverNetwork("big", tuple(receivers))) == 3000
    clash = [*receivers[:5], Receiver("dup-b", "b", 40.002, -111.0), Receiver("dup-a", "a", 40.001, -111.0)]
    with pytest.raises(InputError, match="receivers 'r1' and 'dup-a' are 0.000 m apart"):
        ReceiverNetwork("clash", tuple(clash))
