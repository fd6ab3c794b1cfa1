"""A transmission heard by one receiver: its ellipse spans the places that receiver heard at
that level in training, not only the distance from the answer to the receiver."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.layout import SampleArrays
from heimdall.evaluation.metrics import mahalanobis_sq
from heimdall.export.area import WARN_ONE_RECEIVER, TrainingArea
from heimdall.export.one_receiver import MIN_PLACES, OneReceiverPlaces

GATEWAYS = np.array([[0.0, 0.0], [4_000.0, 0.0]])
#: The level the first gateway hears at each ring radius (m): 20 dB per decade.
RINGS = {-60.0: 200.0, -80.0: 2_000.0}


def _campaign() -> SampleArrays:
    """Transmitters on two full rings round gateway 0, each heard by it at its ring's level
    (and by gateway 1 at a level that does not matter here)."""
    angle = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    tx, levels = [], []
    for level, radius_m in RINGS.items():
        tx.append(radius_m * np.column_stack([np.cos(angle), np.sin(angle)]))
        levels.append(np.full(len(angle), level))
    readings = np.column_stack([np.concatenate(levels), np.full(2 * len(angle), -90.0)])
    return SampleArrays.from_fixed_receivers(GATEWAYS, np.concatenate(tx), readings, np.ones_like(readings, dtype=bool))


def _query(level_dbm: float, station: int = 0) -> SampleArrays:
    readings = np.array([[level_dbm, np.nan]]) if station == 0 else np.array([[np.nan, level_dbm]])
    return SampleArrays.from_fixed_receivers(GATEWAYS, np.zeros((1, 2)), readings, np.isfinite(readings))


def test_the_places_heard_at_a_level_widen_an_answer_placed_on_the_wrong_side() -> None:
    places = OneReceiverPlaces.from_samples(_campaign(), len(GATEWAYS))
    # Heard weakly (-80 dBm): anywhere on the 2 km ring. The map put it 300 m east of the gateway.
    answer = np.array([[300.0, 0.0]])
    spread = places.spread_m2(_query(-80.0), answer)[0]
    ring = 2_000.0**2 / 2.0  # a full ring's variance along each axis
    np.testing.assert_allclose(spread, [[ring + 300.0**2, 0.0], [0.0, ring]], rtol=1e-6, atol=1e-3)
    # The truth was 2 km west: outside a 2-sigma ellipse widened by the 300 m from the answer
    # to the gateway, inside one widened by the places heard at -80 dBm.
    area = TrainingArea(-10_000.0, 10_000.0, -10_000.0, 10_000.0)
    posterior = np.eye(2)[None] * 50.0**2
    query = _query(-80.0)
    by_reach = area.check(answer, posterior, query.rx_position_m.astype(np.float64), query.heard)
    by_places = area.check(answer, posterior, query.rx_position_m.astype(np.float64), query.heard,
                           places.spread_m2(query, answer))
    truth = np.array([[-2_000.0, 0.0]])
    assert mahalanobis_sq(truth - answer, by_reach.covariance_m2)[0] > 4.0
    assert mahalanobis_sq(truth - answer, by_places.covariance_m2)[0] < 4.0
    assert WARN_ONE_RECEIVER in by_places.warnings[0]
    # Heard strongly (-60 dBm): the 200 m ring, a far smaller ellipse.
    strong = places.spread_m2(_query(-60.0), np.zeros((1, 2)))[0]
    assert strong[0, 0] == pytest.approx(200.0**2 / 2.0, rel=1e-6)


def test_a_level_or_receiver_training_never_heard_falls_back_to_the_reach() -> None:
    places = OneReceiverPlaces.from_samples(_campaign(), len(GATEWAYS))
    answer = np.array([[300.0, 0.0]])
    assert np.isnan(places.spread_m2(_query(-70.0), answer)).all()  # no ring within 2 dB of -70
    assert not np.isnan(places.spread_m2(_query(-90.0, station=1), answer)).any()
    area = TrainingArea(-10_000.0, 10_000.0, -10_000.0, 10_000.0)
    query = _query(-70.0)
    checked = area.check(answer, np.zeros((1, 2, 2)), query.rx_position_m.astype(np.float64), query.heard,
                         places.spread_m2(query, answer))
    np.testing.assert_allclose(checked.covariance_m2[0], 300.0**2 * np.eye(2))


def test_queries_heard_by_several_receivers_are_left_alone() -> None:
    places = OneReceiverPlaces.from_samples(_campaign(), len(GATEWAYS))
    both = SampleArrays.from_fixed_receivers(GATEWAYS, np.zeros((1, 2)), np.array([[-80.0, -90.0]]),
                                             np.ones((1, 2), dtype=bool))
    assert np.isnan(places.spread_m2(both, np.zeros((1, 2)))).all()


def test_the_table_survives_the_bundle_config() -> None:
    places = OneReceiverPlaces.from_samples(_campaign(), len(GATEWAYS))
    again = OneReceiverPlaces.from_config({"one_receiver_places": places.to_config()})
    assert again is not None
    answer = np.array([[300.0, -40.0]])
    np.testing.assert_allclose(again.spread_m2(_query(-80.0), answer), places.spread_m2(_query(-80.0), answer),
                               rtol=1e-6, atol=0.5)
    assert OneReceiverPlaces.from_config({}) is None


def test_a_receiver_with_too_few_readings_stores_no_level() -> None:
    few = _campaign().select(np.arange(MIN_PLACES - 1))
    places = OneReceiverPlaces.from_samples(few, len(GATEWAYS))
    assert all(len(levels) == 0 for levels in places.levels_dbm)
    assert np.isnan(places.spread_m2(_query(-60.0), np.zeros((1, 2)))).all()
