"""The model card says what kind of model it is and which limits apply to it."""

from __future__ import annotations

from typing import Any

from heimdall.export.bundle import model_card

CROSS_VALIDATION = {
    "cv_random_median_error_m": 58.2, "cv_spatial_median_error_m": 179.4,
    "cv_random_coverage_1sigma": 0.671, "cv_random_coverage_2sigma": 0.888, "cv_random_coverage_95": 0.994,
    "cv_spatial_coverage_1sigma": 0.465, "cv_spatial_coverage_2sigma": 0.760, "cv_spatial_coverage_95": 0.987,
    "cv_random_tail_ratio": 4.06,
}


def _config(**extra: Any) -> dict[str, Any]:
    return {"name": "heimdall-localizer", "version": 3, "dataset": "apr", "station_ids": ["a", "b", "c"],
            "network": {"name": "apr", "frequency_hz": 462.7e6}, "covariance_scale": 0.012, **extra}


def test_a_radio_map_card_gives_its_fit_not_a_networks_training() -> None:
    config = _config(
        dataset_kind="measured", training={"init_from": None, "seed": 0},
        model={"num_stations": 3, "model_kind": "radio_map"},
        hyperparameters={"length_scale_m": 60.79, "temperature": 0.5, "session_offsets_db": [], "fill_absent": False,
                         "ellipse95_sigmas": 6.31},
        cross_validation=CROSS_VALIDATION, fitted_on=["train", "val", "test"],
        evaluated_as="fitted on train and val; the test figures are held-out, measured before the refit",
    )
    card = model_card(config, {"evaluation": {"split": "test", "n": 133, "median_error_m": 55.0}})
    training = card.split("## Training", 1)[1].split("##", 1)[0]
    assert "fitted in one step (no epochs)" in training and "length_scale_m 60.79, temperature 0.5" in training
    assert "epochs" not in training.replace("(no epochs)", "")
    random = ("- cross-fitted, random folds: median 58 m, 1-sigma / 2-sigma / 95% coverage 0.671 / 0.888 / 0.994; "
              "tail ratio 4.1 (a Gaussian's: 2)")
    assert random in training
    # A fit from before the tail ratio was measured: its line ends at the coverage.
    assert "- cross-fitted, spatial blocks: median 179 m" in training and "time blocks" not in training
    assert "0.465 / 0.760 / 0.987\n" in training
    assert "covariance calibrated by cross-fitting: scale 0.012" in training
    assert "deployed graph fitted on the train, val, test splits (fitted on train and val;" in training
    limits = card.split("## Limits", 1)[1]
    assert "simulated" not in limits and "places it never measured" in limits and "95% ellipse" in limits
    assert "the tail ratio (the radius holding 86.5% of truths over the one holding 39.3%)" in limits


def test_a_network_on_simulation_keeps_its_settings_and_the_simulation_limits() -> None:
    config = _config(dataset_kind="features", scenario={"seed": 1},
                     training={"epochs": 40, "batch_size": 256, "epochs_run": 12},
                     model={"hidden_dim": 128, "model_kind": "net"})
    card = model_card(config, {})
    training = card.split("## Training", 1)[1].split("##", 1)[0]
    assert "settings: epochs 40, batch_size 256, epochs_run 12" in training
    assert "covariance calibrated on the validation split" in training and "cross-fitted" not in training
    assert "Trained on simulated data of this network" in card.split("## Limits", 1)[1]
    # Without a test split export measures the validation split, which training saw: not "held out".
    assert "(12 samples, never used for training or calibration)" in model_card(
        config, {"evaluation": {"split": "test", "n": 12}})
    assert "`val` split (12 samples, no test split, so one training saw)" in model_card(
        config, {"evaluation": {"split": "val", "n": 12}})
