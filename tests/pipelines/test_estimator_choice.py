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


def test_a_large_simulation_is_fitted_on_a_seeded_subset(ctx, monkeypatch) -> None:
    """A radio map is fitted on at most MAX_RADIO_MAP_SAMPLES transmissions, the same ones every time."""
    import numpy as np

    from heimdall.data.shards import DatasetReader
    from heimdall.pipelines import generate
    from heimdall.pipelines import radio_map_training

    generate(ctx, "big", 300, seed=1)
    reader = DatasetReader(ctx.store, "big")
    everything = radio_map_training.labelled_samples(reader, ("train", "val"))
    monkeypatch.setattr(radio_map_training, "MAX_RADIO_MAP_SAMPLES", 100)
    first = radio_map_training.labelled_samples(reader, ("train", "val"))
    second = radio_map_training.labelled_samples(reader, ("train", "val"))
    assert len(everything) > 100 and len(first) == 100
    np.testing.assert_array_equal(first.tx_position_m, second.tx_position_m)
    # A subset of the labelled rows, not new ones.
    rows = {tuple(p) for p in everything.tx_position_m.round(3)}
    assert all(tuple(p) in rows for p in first.tx_position_m.round(3))


def test_kernel_sums_match_the_direct_sum() -> None:
    import numpy as np

    import math

    from heimdall.training.radio_map_build import KERNEL_CUTOFF, kernel_sums

    rng = np.random.default_rng(0)
    points, centres = rng.uniform(0, 500, (300, 2)), rng.uniform(0, 500, (70, 2))
    values = rng.normal(size=(70, 3))
    direct = np.exp(-0.5 * ((points[:, None] - centres[None]) ** 2).sum(-1) / 40.0**2) @ values
    # Centres beyond the cutoff are left out: each weighs under exp(-cutoff^2 / 2).
    bound = math.exp(-0.5 * KERNEL_CUTOFF**2) * np.abs(values).sum(axis=0)
    assert np.all(np.abs(kernel_sums(points, centres, 40.0, values) - direct) <= bound + 1e-12)
    # A centre on a point counts with weight exactly 1 (the leave-one-out variance relies on it).
    np.testing.assert_allclose(kernel_sums(centres, centres, 1e-3, values), values, rtol=0, atol=1e-12)
    # A length scale where every centre is within reach: the full sum.
    wide = kernel_sums(points, centres, 400.0, values)
    every = np.exp(-0.5 * ((points[:, None] - centres[None]) ** 2).sum(-1) / 400.0**2) @ values
    np.testing.assert_allclose(wide, every, rtol=1e-9, atol=1e-12)
