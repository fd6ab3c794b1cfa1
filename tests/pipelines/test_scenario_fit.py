"""`scenario fit` / `scenario validate` / `network from-measurements` on a measured dataset
whose truth is known: a fitted-scenario simulation exported and re-imported as measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.network import Receiver, ReceiverNetwork
from heimdall.pipelines import open_context
from heimdall.settings import Settings
from heimdall.sim.scenario import ScenarioConfig, load_scenario

TRUTH_OFFSETS = {"a": -20.0, "b": -5.0, "c": 4.0, "d": -12.0, "e": 0.0, "f": -30.0}


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def measured(home: Path, tmp_path: Path) -> str:
    """A 'measured' dataset of six uncalibrated receivers over ~3 km (known truth)."""
    spots = [(40.760, -111.850), (40.770, -111.840), (40.755, -111.825), (40.775, -111.830), (40.765, -111.815), (40.750, -111.845)]
    network = ReceiverNetwork(
        name="truth", frequency_hz=462.7e6,
        receivers=tuple(Receiver(receiver_id=k, name=k, lat_deg=lat, lon_deg=lon) for k, (lat, lon) in zip(TRUTH_OFFSETS, spots, strict=True)),
    )
    network.save(tmp_path / "truth.yaml")
    truth = ScenarioConfig(
        area_margin_m=200.0, tx_power_min_dbm=28.0, tx_power_max_dbm=32.0, path_loss_exponent=3.4,
        shadowing_sigma_db=4.0, terrain_sigma_db=6.0, terrain_correlation_m=300.0, calibration_sigma_db=0.0,
        receiver_offline_probability=0.0,
        min_receivers=3, rss_scale="relative", rx_offset_db=TRUTH_OFFSETS,
    )
    (tmp_path / "truth.scenario.yaml").write_text(yaml.safe_dump(truth.model_dump()))
    _json(["generate", "--name", "sim", "--samples", "600", "--network", str(tmp_path / "truth.yaml"),
           "--scenario", str(tmp_path / "truth.scenario.yaml"), "--quiet"])
    _json(["datasets", "export", "sim", "--split", "all", "-o", str(tmp_path / "rows.csv")])
    rows = pd.read_csv(tmp_path / "rows.csv").assign(frequency_hz=462.7e6)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    _json(["import-measurements", str(tmp_path / "rows.csv"), "--name", "field", "--split-mode", "grid", "--quiet"])
    return "field"


def test_fit_recovers_the_truth_and_beats_plain_log_distance(measured: str, tmp_path: Path) -> None:
    fitted = _json(["scenario", "fit", measured, "-o", str(tmp_path / "fit.yaml"), "--report", str(tmp_path / "report")])
    scenario = load_scenario(tmp_path / "fit.yaml")
    assert scenario.path_loss_exponent == pytest.approx(3.4, abs=0.25)
    assert scenario.rss_scale == "relative"
    # Offsets relative to their mean (the common level trades against the exponent's error):
    # recovered to within what each station's terrain field averages to over the area (its
    # random Fourier features include wavelengths of kilometres: a few dB).
    fitted_mean = sum(scenario.rx_offset_db.values()) / len(TRUTH_OFFSETS)
    truth_mean = sum(TRUTH_OFFSETS.values()) / len(TRUTH_OFFSETS)
    for receiver_id, offset in TRUTH_OFFSETS.items():
        assert scenario.rx_offset_db[receiver_id] - fitted_mean == pytest.approx(offset - truth_mean, abs=2.5), receiver_id
    assert fitted["residual_rmse_db"] < 8.0  # 4 dB shadowing + 6 dB terrain + fading
    report = json.loads((tmp_path / "report" / "fit.json").read_text())
    assert {r["receiver_id"] for r in report["receivers"]} == set(TRUTH_OFFSETS)
    assert all((tmp_path / "report" / name).stat().st_size > 5_000 for name in
               ("residual_by_receiver.png", "residual_vs_distance.png", "variogram.png"))
    assert fitted["static_field_file"] == str(tmp_path / "fit.static-field.npz")
    assert scenario.static_field_file == str(tmp_path / "fit.static-field.npz")  # resolved beside the YAML
    assert 150.0 < scenario.terrain_correlation_m < 700.0  # truth 300 m (a finite random-feature field)
    checked = _json(["scenario", "validate", measured, "--scenario", str(tmp_path / "fit.yaml")])
    assert checked["links"] > 100
    assert checked["scenario"]["rmse_db"] < checked["plain_log_distance"]["rmse_db"] - 3.0
    assert abs(checked["scenario"]["bias_db"]) < 1.0
    assert checked["scenario"]["heard_agreement"] == 1.0
    # Without the kriged static field the held-out error is larger: the field is real.
    _json(["scenario", "fit", measured, "-o", str(tmp_path / "plain.yaml"), "--no-static-field"])
    assert load_scenario(tmp_path / "plain.yaml").static_field_file is None
    unkriged = _json(["scenario", "validate", measured, "--scenario", str(tmp_path / "plain.yaml")])
    assert checked["scenario"]["rmse_db"] < unkriged["scenario"]["rmse_db"] - 0.5


def test_network_from_measurements_writes_the_fitted_scenario_beside(measured: str, home: Path, tmp_path: Path) -> None:
    out = _json(["network", "from-measurements", measured, "-o", str(tmp_path / "net.yaml")])
    assert out["scenario"] == str(tmp_path / "net.scenario.yaml")
    scenario = load_scenario(tmp_path / "net.scenario.yaml")
    assert set(scenario.rx_offset_db) == set(TRUTH_OFFSETS)
    # And the pair simulates that network.
    generated = _json(["generate", "--name", "twin", "--samples", "300", "--network", str(tmp_path / "net.yaml"),
                       "--scenario", str(tmp_path / "net.scenario.yaml"), "--quiet"])
    assert generated["samples"] == 300
    # Without --scenario the fitted one beside the network is used, not the default scenario.
    _json(["generate", "--name", "twin2", "--samples", "300", "--network", str(tmp_path / "net.yaml"), "--quiet"])
    store = open_context(Settings(home=home)).store
    assert DatasetReader(store, "twin2").manifest.scenario == DatasetReader(store, "twin").manifest.scenario
    assert DatasetReader(store, "twin2").manifest.scenario["rx_offset_db"]


def test_fit_on_a_synthetic_dataset_is_a_one_line_error(home: Path, tmp_path: Path) -> None:
    _json(["generate", "--name", "syn", "--samples", "200", "--quiet"])
    result = CliRunner().invoke(app, ["scenario", "fit", "syn", "-o", str(tmp_path / "s.yaml")])
    assert result.exit_code != 0 and result.stderr.startswith("error: ") and "measured" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.yaml").exists()


def test_fit_recovers_who_hears_what(tmp_path: Path) -> None:
    """A receiver that misses weak transmissions gets a detection threshold; presence per receiver."""
    import numpy as np

    from heimdall.data.synthetic import network_geometry, to_samples
    from heimdall.evaluation.digital_twin import fit_scenario_to_samples
    from heimdall.sim.scenario import simulate_block

    spots = [(40.760, -111.850), (40.770, -111.840), (40.755, -111.825), (40.775, -111.830), (40.765, -111.815)]
    ids = ["a", "b", "c", "d", "e"]
    network = ReceiverNetwork(name="t", frequency_hz=462.7e6, receivers=tuple(
        Receiver(receiver_id=k, name=k, lat_deg=lat, lon_deg=lon) for k, (lat, lon) in zip(ids, spots, strict=True)))
    truth = ScenarioConfig(area_margin_m=200.0, tx_power_min_dbm=30.0, tx_power_max_dbm=30.0, path_loss_exponent=3.0,
                           terrain_sigma_db=0.0, calibration_sigma_db=0.0, receiver_offline_probability=0.0, min_receivers=2,
                           rx_offset_db={"c": -40.0}, rx_detection_threshold_db={"c": -112.0}, rx_offline_probability={"e": 0.6})
    reference = network.reference_point()
    geometry = network_geometry(network, reference, truth)
    block = simulate_block(np.random.default_rng(0), 1500, geometry, truth)
    samples = to_samples(0, block, geometry, reference, lambda i, _tx: np.zeros(len(i), np.int8))
    assert 0.1 < 1 - block.heard[:, 2].mean() < 0.9  # c misses some
    fit = fit_scenario_to_samples(samples, network, reference, static_field=False)
    assert set(fit.scenario.rx_detection_threshold_db) == {"c"}
    assert fit.scenario.rx_detection_threshold_db["c"] == pytest.approx(-112.0, abs=1.0)
    assert fit.scenario.rx_offline_probability["e"] == pytest.approx(0.6, abs=0.05)
    assert fit.scenario.rx_offline_probability["a"] == 0.0
    by_id = {r["receiver_id"]: r for r in fit.report["receivers"]}
    assert by_id["c"]["heard_fraction"] == pytest.approx(block.heard[:, 2].mean(), abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_on_a_sparse_network_counts_the_silences(seed: int) -> None:
    """Gateways that hear only above -90 dB, one link in seven heard: least squares on the
    heard links sees only the far transmissions that arrived strong and flattens a 3.5 law
    to under 2; counting the silences (the censored fit) brings it back near the truth. The
    rest of the gap is the transmissions nobody heard, which a measured file never holds."""
    import numpy as np

    from heimdall.data.synthetic import network_geometry, to_samples
    from heimdall.evaluation.digital_twin import fit_scenario_to_samples
    from heimdall.sim.scenario import simulate_block

    spots = [(40.760, -111.850), (40.770, -111.840), (40.755, -111.825), (40.775, -111.830),
             (40.765, -111.815), (40.750, -111.845), (40.780, -111.860), (40.745, -111.810)]
    ids = [f"gw{i}" for i in range(len(spots))]
    network = ReceiverNetwork(name="lora", frequency_hz=868e6, receivers=tuple(
        Receiver(receiver_id=k, name=k, lat_deg=lat, lon_deg=lon) for k, (lat, lon) in zip(ids, spots, strict=True)))
    truth = ScenarioConfig(area_margin_m=1500.0, tx_power_min_dbm=14.0, tx_power_max_dbm=14.0, path_loss_exponent=3.5,
                           shadowing_sigma_db=6.0, terrain_sigma_db=0.0, calibration_sigma_db=0.0,
                           receiver_offline_probability=0.0, min_receivers=1,
                           rx_detection_threshold_db={k: -90.0 for k in ids})
    reference = network.reference_point()
    geometry = network_geometry(network, reference, truth)
    block = simulate_block(np.random.default_rng(seed), 1500, geometry, truth)
    samples = to_samples(0, block, geometry, reference, lambda i, _tx: np.zeros(len(i), np.int8))
    assert 0.1 < samples.heard[samples.present].mean() < 0.25  # most links silent
    fit = fit_scenario_to_samples(samples, network, reference, static_field=False)
    assert fit.report["path_loss_exponent_heard_only"] < 2.2
    assert fit.scenario.path_loss_exponent == pytest.approx(3.5, abs=0.4)
    # Where every link is heard the law is least squares as before.
    dense = truth.model_copy(update={"rx_detection_threshold_db": {}, "area_margin_m": 300.0, "min_snr_db": -200.0})
    block = simulate_block(np.random.default_rng(seed), 600, network_geometry(network, reference, dense), dense)
    samples = to_samples(0, block, network_geometry(network, reference, dense), reference,
                         lambda i, _tx: np.zeros(len(i), np.int8))
    assert samples.heard[samples.present].all()
    fit = fit_scenario_to_samples(samples, network, reference, static_field=False)
    assert fit.scenario.path_loss_exponent == fit.report["path_loss_exponent_heard_only"]
    assert fit.scenario.path_loss_exponent == pytest.approx(3.5, abs=0.3)
