"""Per-receiver knobs of a fitted scenario: offsets, detection thresholds, presence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heimdall.data.synthetic import network_geometry
from heimdall.errors import InputError
from heimdall.network import default_network
from heimdall.sim.scenario import ScenarioConfig, load_scenario, simulate_block

IDS = default_network().ids


def _block(config: ScenarioConfig, seed: int = 1, n: int = 500):
    network = default_network()
    geometry = network_geometry(network, network.reference_point(), config)
    return geometry, simulate_block(np.random.default_rng(seed), n, geometry, config)


def test_neutral_knobs_give_the_same_bytes_as_none() -> None:
    config = ScenarioConfig()
    geometry, plain = _block(config)
    knobs = config.per_receiver(IDS)  # all zeros / NaN / the scalar default
    assert np.all(knobs.offset_db == 0) and np.all(np.isnan(knobs.threshold_db))
    tuned = simulate_block(np.random.default_rng(1), 500, replace(geometry, receivers=knobs), config)
    np.testing.assert_array_equal(plain.rss_dbm, tuned.rss_dbm)
    np.testing.assert_array_equal(plain.heard, tuned.heard)


def test_offsets_shift_what_each_receiver_reports() -> None:
    _, plain = _block(ScenarioConfig(min_snr_db=-1000.0))
    offsets = {IDS[0]: -20.0, IDS[3]: 7.5}
    _, shifted = _block(ScenarioConfig(min_snr_db=-1000.0, rx_offset_db=offsets))
    np.testing.assert_array_equal(plain.heard, shifted.heard)  # SNR is physics, not the scale
    delta = shifted.rss_dbm - plain.rss_dbm
    np.testing.assert_allclose(delta[:, 0][plain.heard[:, 0]], -20.0)
    np.testing.assert_allclose(delta[:, 3][plain.heard[:, 3]], 7.5)
    np.testing.assert_allclose(delta[:, 1][plain.heard[:, 1]], 0.0)


def test_detection_threshold_replaces_the_snr_rule() -> None:
    config = ScenarioConfig(min_snr_db=-1000.0, receiver_offline_probability=0.0, min_receivers=1,
                            rx_offset_db={IDS[2]: -30.0}, rx_detection_threshold_db={IDS[2]: -110.0})
    _, block = _block(config)
    heard = block.heard[:, 2]
    assert 0 < heard.sum() < heard.size
    assert np.all(block.rss_dbm[heard, 2] >= -110.0)
    # Not heard exactly where the reported level stayed under the threshold.
    _, open_block = _block(config.model_copy(update={"rx_detection_threshold_db": {}}))
    np.testing.assert_array_equal(heard, open_block.rss_dbm[:, 2] >= -110.0)


def test_offline_probability_per_receiver() -> None:
    config = ScenarioConfig(rx_offline_probability={IDS[1]: 0.9, IDS[4]: 0.0}, receiver_offline_probability=0.3, min_receivers=1)
    _, block = _block(config, n=3000)
    present = block.present.mean(axis=0)
    assert present[1] == pytest.approx(0.1, abs=0.03)
    assert present[4] == 1.0
    assert present[0] == pytest.approx(0.7, abs=0.05)


def test_unknown_receiver_and_bad_probability_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not-a-station"):
        ScenarioConfig(rx_offset_db={"not-a-station": 1.0}).per_receiver(IDS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rx_offline_probability: {torino: 1.5}\n")
    with pytest.raises(InputError, match="rx_offline_probability"):
        load_scenario(bad)


def test_old_scenario_files_still_load(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("path_loss_exponent: 3.2\nshadowing_sigma_db: 6\nterrain_correlation_m: 15000\n")
    config = load_scenario(old)
    assert config.path_loss_exponent == 3.2 and config.rx_offset_db == {} and config.rss_scale == "dbm"
    assert config.dem_dir is None
