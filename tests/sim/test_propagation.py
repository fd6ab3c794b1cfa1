"""Tests for heimdall.sim.propagation against independent reference values and physics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.errors import InputError
from heimdall.sim.propagation import (
    OKUMURA_HATA_VALIDITY,
    fading_gain_db,
    free_space_path_loss_db,
    log_distance_path_loss_db,
    noise_floor_dbm,
    okumura_hata_path_loss_db,
    okumura_hata_validity_issues,
    received_power_dbm,
    shadowing_db,
    thermal_noise_dbm,
    two_ray_breakpoint_distance_m,
    two_ray_path_loss_db,
)

TOLERANCE_DB = 1e-3


def _shared_testdata_dir() -> Path:
    """/work/shared/testdata: the `shared` folder is the sibling of the repository root."""
    repo_root = Path(__file__).resolve().parents[2]
    path = repo_root.parent / "shared" / "testdata"
    if not (path / "reference_values.json").is_file():
        pytest.fail(f"reference values not found: expected {path / 'reference_values.json'}")
    return path


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads((_shared_testdata_dir() / "reference_values.json").read_text())


def test_free_space_reference_values(reference: dict[str, Any]) -> None:
    cases = reference["free_space_path_loss_db"]
    assert cases
    for case in cases:
        got = free_space_path_loss_db(case["distance_m"], case["frequency_hz"])
        assert got == pytest.approx(case["value"], abs=TOLERANCE_DB)
    # Vectorised: the same values from one call.
    got = free_space_path_loss_db(
        [c["distance_m"] for c in cases], [c["frequency_hz"] for c in cases]
    )
    np.testing.assert_allclose(got, [c["value"] for c in cases], atol=TOLERANCE_DB)


def test_thermal_noise_reference_values(reference: dict[str, Any]) -> None:
    for case in reference["thermal_noise_dbm"]:
        got = thermal_noise_dbm(case["bandwidth_hz"], case["temperature_k"])
        assert got == pytest.approx(case["value"], abs=TOLERANCE_DB)
    assert thermal_noise_dbm(1.0) == pytest.approx(-173.975, abs=TOLERANCE_DB)


def test_okumura_hata_reference_values(reference: dict[str, Any]) -> None:
    for case in reference["okumura_hata_urban_small_medium_city_db"]:
        got = okumura_hata_path_loss_db(
            case["distance_km"] * 1000.0,
            case["frequency_mhz"] * 1e6,
            case["base_height_m"],
            case["mobile_height_m"],
            "urban",
        )
        assert got == pytest.approx(case["value"], abs=TOLERANCE_DB)


def test_free_space_doubling_distance_adds_6_02_db() -> None:
    d = np.array([10.0, 1e3, 1e5])
    delta = free_space_path_loss_db(2 * d, 145e6) - free_space_path_loss_db(d, 145e6)
    np.testing.assert_allclose(delta, 20 * math.log10(2), atol=1e-9)
    assert 20 * math.log10(2) == pytest.approx(6.0206, abs=1e-4)


@pytest.mark.parametrize("exponent", [2.0, 2.7, 3.5])
def test_log_distance_doubling_adds_10n_log2(exponent: float) -> None:
    d = np.array([200.0, 5e3, 5e4])
    delta = log_distance_path_loss_db(2 * d, 145e6, exponent) - log_distance_path_loss_db(
        d, 145e6, exponent
    )
    np.testing.assert_allclose(delta, 10 * exponent * math.log10(2), atol=1e-9)


def test_log_distance_matches_free_space_for_n2_and_clamps_inside_d0() -> None:
    d = np.array([100.0, 1e3, 3e4])
    np.testing.assert_allclose(
        log_distance_path_loss_db(d, 433e6, 2.0), free_space_path_loss_db(d, 433e6), atol=1e-9
    )
    inside = log_distance_path_loss_db([1.0, 50.0, 100.0], 145e6, 3.0, reference_distance_m=100.0)
    np.testing.assert_allclose(inside, free_space_path_loss_db(100.0, 145e6), atol=1e-12)


def test_two_ray_far_field_slope_and_asymptote() -> None:
    f_hz, h_t, h_r = 145e6, 10.0, 30.0
    breakpoint_m = float(two_ray_breakpoint_distance_m(f_hz, h_t, h_r))
    assert breakpoint_m == pytest.approx(4 * h_t * h_r * f_hz / 299_792_458.0)
    d = np.array([100.0, 1000.0]) * breakpoint_m
    loss = two_ray_path_loss_db(d, f_hz, h_t, h_r)
    assert loss[1] - loss[0] == pytest.approx(40.0, abs=0.01)
    asymptote = 40 * np.log10(d) - 20 * math.log10(h_t * h_r)
    np.testing.assert_allclose(loss, asymptote, atol=0.01)
    # Far out the plane-earth loss does not depend on frequency.
    assert two_ray_path_loss_db(d[1], 2 * f_hz, h_t, h_r) == pytest.approx(loss[1], abs=0.01)


def test_two_ray_near_field_oscillates_about_free_space() -> None:
    f_hz, h_t, h_r = 145e6, 10.0, 30.0
    d = np.linspace(50.0, 0.5 * float(two_ray_breakpoint_distance_m(f_hz, h_t, h_r)), 2000)
    excess = two_ray_path_loss_db(d, f_hz, h_t, h_r) - free_space_path_loss_db(d, f_hz)
    assert np.all(np.isfinite(excess))
    # Two rays of (nearly) equal amplitude give at most 4x the power: -6.02 dB of loss.
    assert excess.min() >= -20 * math.log10(2) - 1e-9
    assert excess.min() < -5.5  # constructive peaks are reached
    assert excess.max() > 20.0  # and so are interference nulls


def test_okumura_hata_environments_and_validity() -> None:
    args = (5_000.0, 450e6, 30.0, 1.5)
    urban = okumura_hata_path_loss_db(*args, "urban")
    suburban = okumura_hata_path_loss_db(*args, "suburban")
    open_area = okumura_hata_path_loss_db(*args, "open")
    assert open_area < suburban < urban
    assert urban - suburban == pytest.approx(2 * math.log10(450 / 28) ** 2 + 5.4, abs=1e-9)
    with pytest.raises(InputError, match="environment"):
        okumura_hata_path_loss_db(*args, "jungle")  # type: ignore[arg-type]
    assert okumura_hata_validity_issues(*args) == []
    issues = okumura_hata_validity_issues(5_000.0, 145e6, 30.0, 1.5)
    assert len(issues) == 1 and "frequency_hz" in issues[0]
    assert OKUMURA_HATA_VALIDITY["frequency_hz"] == (150e6, 1500e6)
    array_issues = okumura_hata_validity_issues([500.0, 5e3, 3e4], 450e6, [20.0, 40.0, 50.0], 1.5)
    assert [s.split()[0].rstrip(":") for s in array_issues] == ["base_height_m", "distance_m"]


def test_noise_floor_and_received_power() -> None:
    assert noise_floor_dbm(12_500.0, 6.0) == pytest.approx(thermal_noise_dbm(12_500.0) + 6.0)
    assert received_power_dbm(37.0, 2.0, 3.0, 120.0) == pytest.approx(-78.0)
    got = received_power_dbm(np.array([[30.0], [40.0]]), 0.0, np.array([0.0, 5.0]), 100.0)
    np.testing.assert_allclose(got, [[-70.0, -65.0], [-60.0, -55.0]])


def test_invalid_physical_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="distance_m"):
        free_space_path_loss_db([100.0, 0.0], 145e6)
    with pytest.raises(InputError, match="frequency_hz"):
        free_space_path_loss_db(100.0, -1.0)
    with pytest.raises(InputError, match="tx_height_m"):
        two_ray_path_loss_db(100.0, 145e6, 0.0, 10.0)
    with pytest.raises(InputError, match="looks"):
        fading_gain_db(np.random.default_rng(0), None, 10, looks=0)


def test_shadowing_is_gaussian_in_db() -> None:
    draws = shadowing_db(np.random.default_rng(3), 6.0, 100_000)
    assert draws.shape == (100_000,)
    assert abs(draws.mean()) < 0.06
    assert draws.std() == pytest.approx(6.0, rel=0.01)
    per_column = shadowing_db(np.random.default_rng(3), np.array([0.0, 4.0]), (1000, 2))
    assert np.all(per_column[:, 0] == 0.0) and per_column[:, 1].std() > 3.5


@pytest.mark.parametrize(("k_factor_db", "looks"), [(None, 1), (-np.inf, 1), (6.0, 1), (None, 8)])
def test_fading_has_unit_mean_linear_gain(k_factor_db: float | None, looks: int) -> None:
    gain_db = fading_gain_db(np.random.default_rng(7), k_factor_db, 200_000, looks=looks)
    assert gain_db.shape == (200_000,)
    assert np.mean(10 ** (gain_db / 10)) == pytest.approx(1.0, rel=0.01)


def test_rayleigh_statistics_in_db() -> None:
    gain_db = fading_gain_db(np.random.default_rng(11), None, 200_000)
    # 10 log10 of an exponential variable: std (10/ln 10) pi / sqrt 6, mean -(10/ln 10) gamma.
    assert gain_db.std() == pytest.approx(10 / math.log(10) * math.pi / math.sqrt(6), abs=0.05)
    assert gain_db.std() == pytest.approx(5.57, abs=0.05)
    assert gain_db.mean() == pytest.approx(-10 / math.log(10) * 0.5772156649, abs=0.05)


def test_more_looks_and_stronger_k_reduce_spread() -> None:
    rng_seed = 5
    one = fading_gain_db(np.random.default_rng(rng_seed), None, 50_000, looks=1).std()
    eight = fading_gain_db(np.random.default_rng(rng_seed), None, 50_000, looks=8).std()
    rician = fading_gain_db(np.random.default_rng(rng_seed), 10.0, 50_000).std()
    assert eight < 0.4 * one
    assert rician < 0.5 * one
    no_fading = fading_gain_db(np.random.default_rng(rng_seed), np.inf, 100)
    np.testing.assert_allclose(no_fading, 0.0, atol=1e-12)


def test_same_seed_same_bytes() -> None:
    k_factors_db = np.array([0.0, 3.0, 6.0, 9.0, -np.inf, 1.0, 2.0])

    def draw(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        return (
            shadowing_db(rng, 8.0, (4, 7)).tobytes()
            + fading_gain_db(rng, k_factors_db, (4, 7), looks=3).tobytes()
        )

    assert draw(42) == draw(42)
    assert draw(42) != draw(43)


def test_fading_k_factor_broadcasts_against_size() -> None:
    gain_db = fading_gain_db(np.random.default_rng(0), np.array([-np.inf, 20.0]), (20_000, 2))
    assert gain_db.shape == (20_000, 2)
    assert gain_db[:, 1].std() < gain_db[:, 0].std()
    with pytest.raises(InputError, match="broadcast"):
        fading_gain_db(np.random.default_rng(0), np.zeros(3), (10, 2))
