"""Feature-level simulation: physics of what is heard, determinism, rejection."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.synthetic import effective_sigma_db, network_geometry
from heimdall.errors import DataError
from heimdall.network import default_network
from heimdall.sim import propagation
from heimdall.sim.generator import BLOCK_SIZE, generate_blocks
from heimdall.sim.scenario import ScenarioConfig, simulate_block


@pytest.fixture(scope="module")
def geometry():
    network = default_network()
    return network_geometry(network, network.reference_point(), ScenarioConfig())


def test_heard_exactly_when_snr_reaches_threshold(geometry) -> None:
    config = ScenarioConfig(receiver_offline_probability=0.0, min_receivers=1)
    block = simulate_block(np.random.default_rng(1), 2000, geometry, config)
    heard_snr = block.snr_db[block.heard]
    assert np.all(heard_snr >= config.min_snr_db)
    assert np.all(np.isnan(block.snr_db[~block.heard]))
    assert np.all(np.isnan(block.rss_dbm[~block.heard]))
    # Some links are below threshold at 145 MHz over 250 km: "not heard" must occur.
    assert 0 < (~block.heard).sum() < block.heard.size


def test_rss_is_tx_power_minus_path_loss_without_randomness(geometry) -> None:
    config = ScenarioConfig(
        shadowing_sigma_db=0.0,
        terrain_sigma_db=0.0,
        fading_k_factor_db=float("inf"),
        calibration_sigma_db=0.0,
        receiver_offline_probability=0.0,
        min_receivers=1,
        min_snr_db=-1000.0,
    )
    network = default_network()
    geometry = network_geometry(network, network.reference_point(), config)
    block = simulate_block(np.random.default_rng(2), 50, geometry, config)
    delta = np.empty((50, geometry.rx_position_m.shape[0], 3))
    delta[..., :2] = block.tx_position_m[:, None] - geometry.rx_position_m[None, :, :2]
    delta[..., 2] = config.tx_height_m - geometry.rx_position_m[None, :, 2]
    distance_m = np.linalg.norm(delta, axis=-1)
    expected = block.tx_power_dbm[:, None] - propagation.log_distance_path_loss_db(distance_m, 145e6, 3.0, 100.0)
    np.testing.assert_allclose(block.rss_dbm, expected, atol=1e-9)
    noise = propagation.noise_floor_dbm(12_500.0, 6.0)
    np.testing.assert_allclose(block.snr_db, expected - noise, atol=1e-9)


def test_transmit_power_is_drawn_from_its_range(geometry) -> None:
    block = simulate_block(np.random.default_rng(3), 3000, geometry, ScenarioConfig())
    assert block.tx_power_dbm.min() >= 30.0 and block.tx_power_dbm.max() <= 40.0
    assert block.tx_power_dbm.std() == pytest.approx(10 / np.sqrt(12), rel=0.1)


def test_rejection_keeps_only_samples_heard_by_min_receivers(geometry) -> None:
    config = ScenarioConfig(min_receivers=6, tx_power_min_dbm=25.0, tx_power_max_dbm=30.0)
    block = simulate_block(np.random.default_rng(4), 500, geometry, config)
    assert np.all(block.heard.sum(axis=1) >= 6)
    assert block.accepted <= block.draws
    assert block.accepted / block.draws < 0.9


def test_a_scenario_nobody_can_hear_is_an_error(geometry) -> None:
    config = ScenarioConfig(tx_power_min_dbm=-60.0, tx_power_max_dbm=-50.0, max_draw_factor=3)
    with pytest.raises(DataError, match="heard by >= 3"):
        simulate_block(np.random.default_rng(5), 100, geometry, config)


def test_same_seed_same_bytes_whatever_the_worker_count(geometry) -> None:
    config = ScenarioConfig()
    n = BLOCK_SIZE * 2 + 100
    serial = list(generate_blocks(geometry, config, n, seed=11, workers=1))
    parallel = list(generate_blocks(geometry, config, n, seed=11, workers=2))
    assert [first for first, _ in serial] == [0, BLOCK_SIZE, 2 * BLOCK_SIZE]
    for (a_first, a), (b_first, b) in zip(serial, parallel, strict=True):
        assert a_first == b_first
        assert a.rss_dbm.tobytes() == b.rss_dbm.tobytes()
        assert a.tx_position_m.tobytes() == b.tx_position_m.tobytes()
    other = next(generate_blocks(geometry, config, 100, seed=12))[1]
    assert other.tx_position_m.tobytes() != serial[0][1].tx_position_m[:100].tobytes()


def test_effective_sigma_adds_the_variances() -> None:
    plain = ScenarioConfig(
        shadowing_sigma_db=6.0, terrain_sigma_db=0.0, calibration_sigma_db=0.0, fading_k_factor_db=float("inf")
    )
    assert effective_sigma_db(plain) == pytest.approx(6.0, abs=1e-9)
    with_more = ScenarioConfig(
        shadowing_sigma_db=6.0, terrain_sigma_db=3.0, calibration_sigma_db=2.0, fading_k_factor_db=float("inf")
    )
    assert effective_sigma_db(with_more) == pytest.approx(7.0, abs=1e-9)
    assert effective_sigma_db(ScenarioConfig()) > np.sqrt(4.0**2 + 5.0**2 + 2.0**2)


def test_terrain_shadowing_is_static_and_spatially_correlated() -> None:
    from heimdall.sim.terrain import TerrainField

    field = TerrainField.draw(seed=3, num_stations=2, sigma_db=5.0, correlation_m=20_000.0)
    rng = np.random.default_rng(0)
    points = rng.uniform(-200_000, 200_000, size=(4000, 2))
    values = field.shadowing_db(points)
    assert values.std() == pytest.approx(5.0, rel=0.25)
    # The same place, the same shadowing: the field does not change between calls.
    assert np.array_equal(values, field.shadowing_db(points))
    near = field.shadowing_db(points + 1_000.0)
    far = field.shadowing_db(points + 100_000.0)
    corr_near = np.corrcoef(values[:, 0], near[:, 0])[0, 1]
    corr_far = np.corrcoef(values[:, 0], far[:, 0])[0, 1]
    # Exponential correlation: exp(-1.41/20) ~ 0.93 at 1.4 km, ~0 at 141 km.
    assert corr_near > 0.8 and abs(corr_far) < 0.2
    other_world = TerrainField.draw(seed=4, num_stations=2, sigma_db=5.0, correlation_m=20_000.0)
    assert not np.allclose(other_world.shadowing_db(points), values)


def test_scenario_file_and_randomised_propagation(tmp_path) -> None:
    from heimdall.errors import InputError
    from heimdall.sim.scenario import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text("path_loss_exponent: 2.5\npath_loss_exponent_max: 4.0\nshadowing_sigma_max_db: 8.0\n")
    config = load_scenario(path)
    assert config.path_loss_exponent_max == 4.0 and config.shadowing_sigma_db == 4.0
    network = default_network()
    geometry = network_geometry(network, network.reference_point(), config)
    varied = simulate_block(np.random.default_rng(0), 3000, geometry, config)
    fixed = simulate_block(np.random.default_rng(0), 3000, geometry, ScenarioConfig())
    # A spread of exponents spreads received power much more than a fixed n = 3.
    assert np.nanstd(varied.rss_dbm) > np.nanstd(fixed.rss_dbm) + 1.0
    path.write_text("path_loss_exponent: 9\n")
    with pytest.raises(InputError, match="path_loss_exponent"):
        load_scenario(path)
    path.write_text("no_such_knob: 1\n")
    with pytest.raises(InputError, match="no_such_knob"):
        load_scenario(path)
