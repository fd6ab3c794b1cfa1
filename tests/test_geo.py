"""Tests for heimdall.geo: distances, bearings, WGS84/ENU conversions, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.errors import InputError
from heimdall.geo import (
    EARTH_RADIUS_M,
    ReferencePoint,
    bearing_deg,
    ecef_to_geodetic,
    enu_to_geodetic,
    geodetic_to_ecef,
    geodetic_to_enu,
    haversine_m,
    validate_lat_lon,
)

TORINO = (45.044, 7.672)
MILANO_BAGGIO = (45.478, 9.123)


def _law_of_cosines_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the spherical law of cosines (not haversine_m's formula)."""
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    cos_c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(l2 - l1)
    return EARTH_RADIUS_M * math.acos(cos_c)


def test_one_degree_of_latitude_is_111_2_km() -> None:
    assert haversine_m(45.0, 7.0, 46.0, 7.0) == pytest.approx(111_195.08, abs=1.0)


def test_torino_milano_distance_matches_independent_computations() -> None:
    distance_m = float(haversine_m(*TORINO, *MILANO_BAGGIO))
    assert distance_m == pytest.approx(_law_of_cosines_m(*TORINO, *MILANO_BAGGIO), rel=1e-9)
    # The straight chord between the WGS84 points differs from the arc by < 0.01 % at
    # this range, so it checks the spherical value against the ellipsoid to 0.5 %.
    a = np.array(geodetic_to_ecef(*TORINO, 0.0))
    b = np.array(geodetic_to_ecef(*MILANO_BAGGIO, 0.0))
    assert distance_m == pytest.approx(float(np.linalg.norm(a - b)), rel=0.005)
    assert 120_000 < distance_m < 135_000


def test_haversine_broadcasts_and_is_symmetric() -> None:
    lats = np.array([44.0, 45.0, 46.0])
    d = haversine_m(45.0, 7.0, lats, 7.0)
    assert d.shape == (3,)
    assert d[1] == 0.0
    assert d[0] == pytest.approx(d[2], rel=1e-3)
    forward = haversine_m(*TORINO, *MILANO_BAGGIO)
    assert forward == pytest.approx(haversine_m(*MILANO_BAGGIO, *TORINO))


def test_ecef_round_trip_is_sub_millimetre() -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(-90, 90, 1000)
    lon = rng.uniform(-180, 180, 1000)
    alt = rng.uniform(-500, 10_000, 1000)
    lat2, lon2, alt2 = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, alt))
    assert np.max(np.abs(alt2 - alt)) < 1e-6
    # 1e-11 degrees of latitude is about 1 micrometre on the ground.
    assert np.max(np.abs(lat2 - lat)) < 1e-11
    assert np.max(np.abs(np.cos(np.radians(lat)) * (lon2 - lon))) < 1e-11


def test_enu_round_trip_over_300_km_is_micrometre_exact() -> None:
    ref = ReferencePoint(45.0, 8.0, 200.0)
    grid = np.linspace(-300_000.0, 300_000.0, 21)
    east, north = np.meshgrid(grid, grid)
    up = np.full_like(east, 500.0)
    lat, lon, alt = enu_to_geodetic(east, north, up, ref)
    e2, n2, u2 = geodetic_to_enu(lat, lon, alt, ref)
    assert e2.shape == east.shape
    for got, want in ((e2, east), (n2, north), (u2, up)):
        assert np.max(np.abs(got - want)) < 1e-6


def test_point_1000_m_north_is_north() -> None:
    ref = ReferencePoint(45.0, 8.0)
    lat, lon, alt = enu_to_geodetic(0.0, 1000.0, 0.0, ref)
    assert lon == pytest.approx(8.0, abs=1e-12)
    assert lat > 45.0
    east, north, up = geodetic_to_enu(lat, lon, 0.0, ref)
    assert east == pytest.approx(0.0, abs=1e-6)
    # A point on the ellipsoid 1 km away lies below the tangent plane by d^2 / 2R.
    assert north == pytest.approx(1000.0, abs=0.01)
    assert up == pytest.approx(-1000.0**2 / (2 * EARTH_RADIUS_M), abs=0.01)


def test_reference_point_maps_to_origin() -> None:
    ref = ReferencePoint(*TORINO, 250.0)
    east, north, up = geodetic_to_enu(ref.lat_deg, ref.lon_deg, ref.alt_m, ref)
    assert max(abs(float(east)), abs(float(north)), abs(float(up))) < 1e-6


@pytest.mark.parametrize(
    ("lat2", "lon2", "expected_deg"),
    [(0.0, 1.0, 90.0), (1.0, 0.0, 0.0), (0.0, -1.0, 270.0), (-1.0, 0.0, 180.0)],
)
def test_bearing_cardinal_directions(lat2: float, lon2: float, expected_deg: float) -> None:
    assert bearing_deg(0.0, 0.0, lat2, lon2) == pytest.approx(expected_deg, abs=1e-9)


def test_bearing_is_in_0_360_and_broadcasts() -> None:
    rng = np.random.default_rng(1)
    b = bearing_deg(45.0, 8.0, rng.uniform(-89, 89, 500), rng.uniform(-180, 180, 500))
    assert b.shape == (500,)
    assert np.all((b >= 0.0) & (b < 360.0))
    # Torino -> Milano is roughly east-north-east.
    assert 60.0 < bearing_deg(*TORINO, *MILANO_BAGGIO) < 75.0


@pytest.mark.parametrize(
    ("lat", "lon"), [(95.0, 7.0), (-90.5, 7.0), (45.0, 181.0), (float("nan"), 7.0)]
)
def test_reference_point_rejects_bad_coordinates(lat: float, lon: float) -> None:
    with pytest.raises(InputError):
        ReferencePoint(lat, lon)


def test_validate_lat_lon_message_names_thing_and_value() -> None:
    expected = r"receiver 'torino': latitude 95.0 out of range \[-90, 90\]"
    with pytest.raises(InputError, match=expected):
        validate_lat_lon(95.0, 7.0, "receiver 'torino'")
    with pytest.raises(InputError, match=r"samples: longitude -200.0 out of range"):
        validate_lat_lon(np.array([45.0, 46.0]), np.array([7.0, -200.0]), "samples")
    with pytest.raises(InputError, match="not finite"):
        validate_lat_lon(np.array([45.0, np.inf]), 7.0, "samples")
    validate_lat_lon(np.array([-90.0, 90.0]), np.array([-180.0, 180.0]), "edges")


def test_ground_positions_round_trip_exactly() -> None:
    from heimdall.geo import ground_to_local, local_to_ground

    ref = ReferencePoint(45.0, 8.0)
    east = np.array([0.0, 70_000.0, -150_000.0, 300_000.0])
    north = np.array([0.0, 70_000.0, 20_000.0, -250_000.0])
    lat, lon = local_to_ground(east, north, ref)
    back_east, back_north = ground_to_local(lat, lon, ref)
    np.testing.assert_allclose(back_east, east, atol=1e-6)
    np.testing.assert_allclose(back_north, north, atol=1e-6)
    # The ground falls below the tangent plane by about d^2 / (2 R): ~0.77 km at 99 km.
    _, _, up = geodetic_to_enu(lat, lon, np.zeros(4), ref)
    drop_m = (east**2 + north**2) / (2 * 6.371e6)
    np.testing.assert_allclose(-up[1:], drop_m[1:], rtol=0.02)
