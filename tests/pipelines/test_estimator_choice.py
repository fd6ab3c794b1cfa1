"""Which estimator `train` fits by default (`--estimator auto`)."""

from __future__ import annotations

from heimdall.pipelines.training import resolve_estimator
from heimdall.requests import TrainRequest

FITTED = {"path_loss_exponent": 2.9, "static_field_file": "/data/net.static.npz"}


def test_measured_data_and_a_fitted_scenarios_simulation_get_the_radio_map() -> None:
    auto = TrainRequest(dataset="d")
    assert resolve_estimator(auto, "measured") == "radio-map"
    assert resolve_estimator(auto, "features", FITTED) == "radio-map"


def test_a_plain_simulation_and_iq_datasets_keep_the_network() -> None:
    auto = TrainRequest(dataset="d")
    assert resolve_estimator(auto, "features") == "net"
    assert resolve_estimator(auto, "features", {"path_loss_exponent": 3.0}) == "net"
    assert resolve_estimator(auto, "features", {**FITTED, "static_field_file": None}) == "net"
    # An IQ dataset's spectrograms need the network, fitted scenario or not.
    assert resolve_estimator(auto, "iq", FITTED) == "net"


def test_what_only_a_network_can_do_and_an_explicit_choice_win() -> None:
    assert resolve_estimator(TrainRequest(dataset="d", init_from="ckpt"), "features", FITTED) == "net"
    assert resolve_estimator(TrainRequest(dataset="d", init_from="ckpt"), "measured") == "net"
    assert resolve_estimator(TrainRequest(dataset="d", estimator="net"), "measured") == "net"
    assert resolve_estimator(TrainRequest(dataset="d", estimator="radio-map"), "features") == "radio-map"
