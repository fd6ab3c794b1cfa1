"""Tests of evaluation.crlb: the RSS Cramer-Rao bound (Patwari et al. 2003)."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.errors import DataError, InputError
from heimdall.evaluation.crlb import CrlbSummary, crlb_rms_m, rss_crlb_rmse_m

SQUARE_M = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0], [1000.0, 1000.0]])


def test_matches_all_reference_values(reference_values: dict) -> None:
    cases = reference_values["rss_crlb_rmse_m"]
    assert len(cases) == 3
    for case in cases:
        bound_m = rss_crlb_rmse_m(
            np.array(case["receivers_enu_m"], dtype=float),
            np.array(case["tx_enu_m"], dtype=float),
            case["path_loss_exponent"],
            case["shadowing_sigma_db"],
            tx_power_known=case["tx_power_known"],
        )
        assert isinstance(bound_m, float)
        assert bound_m == pytest.approx(case["value"], rel=1e-3)


def test_batched_forms_agree_with_single_samples() -> None:
    rng = np.random.default_rng(7)
    tx_m = rng.uniform(-500.0, 1500.0, (20, 2))
    singles = [rss_crlb_rmse_m(SQUARE_M, t, 3.0, 6.0) for t in tx_m]
    np.testing.assert_allclose(rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0), singles, rtol=1e-12)
    per_sample_rx_m = np.broadcast_to(SQUARE_M, (20, 4, 2))
    np.testing.assert_allclose(
        rss_crlb_rmse_m(per_sample_rx_m, tx_m, 3.0, 6.0), singles, rtol=1e-12
    )


def test_bound_scales_with_sigma_over_exponent() -> None:
    tx_m = np.array([400.0, 300.0])
    base_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0)
    assert rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 12.0) == pytest.approx(2 * base_m)
    assert rss_crlb_rmse_m(SQUARE_M, tx_m, 6.0, 12.0) == pytest.approx(base_m)


def test_unknown_power_never_beats_known_power() -> None:
    rng = np.random.default_rng(11)
    tx_m = rng.uniform(-2000.0, 3000.0, (200, 2))
    known_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0, tx_power_known=True)
    unknown_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0, tx_power_known=False)
    assert np.all(unknown_m >= known_m * (1 - 1e-12))


def test_too_few_receivers_give_infinity() -> None:
    tx_m = np.array([[400.0, 300.0]] * 3)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
    unknown_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0, mask=mask)
    assert np.isfinite(unknown_m[0]) and np.isinf(unknown_m[1]) and np.isfinite(unknown_m[2])
    known_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0, tx_power_known=True, mask=mask)
    assert np.all(np.isfinite(known_m))  # two receivers off the transmitter's line suffice


def test_masked_receivers_do_not_contribute() -> None:
    tx_m = np.array([[400.0, 300.0]])
    padded_m = np.vstack([SQUARE_M, [[1e9, -1e9]]])  # a padding slot with a silly position
    mask = np.array([[True, True, True, True, False]])
    got_m = rss_crlb_rmse_m(padded_m, tx_m, 3.0, 6.0, mask=mask)
    assert got_m[0] == pytest.approx(rss_crlb_rmse_m(SQUARE_M, tx_m[0], 3.0, 6.0))


def test_colinear_geometry_with_unknown_power_is_singular() -> None:
    line_m = np.array([[0.0, 0.0], [1000.0, 0.0], [2000.0, 0.0], [3000.0, 0.0]])
    # The transmitter on the receivers' line: its offset across the line is unobservable.
    assert np.isinf(rss_crlb_rmse_m(line_m, np.array([5000.0, 0.0]), 3.0, 6.0))


def test_bound_is_independent_of_the_scale_of_the_network() -> None:
    tx_m = np.array([400.0, 300.0])
    small_m = rss_crlb_rmse_m(SQUARE_M, tx_m, 3.0, 6.0)
    assert rss_crlb_rmse_m(SQUARE_M * 1e3, tx_m * 1e3, 3.0, 6.0) == pytest.approx(small_m * 1e3)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(InputError):
        rss_crlb_rmse_m(SQUARE_M, np.array([0.0, 0.0]), 0.0, 6.0)
    with pytest.raises(InputError):
        rss_crlb_rmse_m(SQUARE_M[:, 0], np.array([0.0, 0.0]), 3.0, 6.0)


def test_crlb_rms_excludes_and_counts_infinite_samples() -> None:
    summary = crlb_rms_m(np.array([3.0, 4.0, np.inf]))
    assert summary == CrlbSummary(rms_m=pytest.approx(np.sqrt(12.5)), n_finite=2, n_infinite=1)
    with pytest.raises(DataError):
        crlb_rms_m(np.array([np.inf]))
