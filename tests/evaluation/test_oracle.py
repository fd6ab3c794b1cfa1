"""The oracle: grid ML that knows the simulator's static world."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.synthetic import network_geometry, to_samples
from heimdall.evaluation.baselines import mle_grid
from heimdall.evaluation.evaluate import grid_for
from heimdall.evaluation.oracle import oracle_ml, oracle_sigma_db
from heimdall.network import default_network
from heimdall.sim.scenario import ScenarioConfig, simulate_block


def _simulate(config: ScenarioConfig, n: int = 400, seed: int = 3):
    network = default_network()
    reference = network.reference_point()
    geometry = network_geometry(network, reference, config)
    block = simulate_block(np.random.default_rng(seed), n, geometry, config)
    samples = to_samples(0, block, geometry, reference, lambda ids, _tx: np.zeros(len(ids), np.int8))
    return geometry, block, samples


def test_oracle_beats_grid_ml_that_does_not_know_the_terrain() -> None:
    config = ScenarioConfig()
    geometry, block, samples = _simulate(config)
    oracle = np.linalg.norm(oracle_ml(samples, geometry, config) - block.tx_position_m, axis=1)
    grid = grid_for(geometry.rx_position_m[None], config.area_margin_m)
    plain = mle_grid(samples.rx_position_m, samples.rss_dbm, samples.heard, grid, 3.0, 6.0)
    plain_error = np.linalg.norm(plain - block.tx_position_m, axis=1)
    assert np.median(oracle) < 0.75 * np.median(plain_error)


def test_oracle_is_near_exact_without_per_transmission_noise() -> None:
    # Only the static terrain field and path loss: the oracle knows everything but P.
    config = ScenarioConfig(shadowing_sigma_db=0.0, fading_k_factor_db=float("inf"), calibration_sigma_db=0.0)
    geometry, block, samples = _simulate(config, n=200)
    error = np.linalg.norm(oracle_ml(samples, geometry, config) - block.tx_position_m, axis=1)
    assert np.median(error) < 1_000.0  # metres, on a 250 km network (grid ML: ~20 km)


def test_oracle_sigma_counts_only_per_transmission_noise() -> None:
    quiet = ScenarioConfig(shadowing_sigma_db=0.0, fading_k_factor_db=float("inf"), calibration_sigma_db=0.0, terrain_sigma_db=9.0)
    assert oracle_sigma_db(quiet) == pytest.approx(0.0, abs=0.01)
    assert oracle_sigma_db(ScenarioConfig(shadowing_sigma_db=6.0, fading_k_factor_db=float("inf"), calibration_sigma_db=0.0)) == pytest.approx(6.0)


def test_unheard_samples_get_nan() -> None:
    config = ScenarioConfig()
    geometry, _, samples = _simulate(config, n=20)
    silent = samples.select(np.arange(20))
    heard = silent.heard.copy()
    heard[0] = False
    rss = np.where(heard, silent.rss_dbm, np.nan).astype(np.float32)
    from dataclasses import replace

    estimate = oracle_ml(replace(silent, heard=heard, rss_dbm=rss), geometry, config)
    assert np.all(np.isnan(estimate[0])) and np.all(np.isfinite(estimate[1:]))
