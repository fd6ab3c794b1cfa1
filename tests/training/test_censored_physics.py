"""The path-loss exponent where receivers often hear nothing: the censored (Tobit) fit.

A log-distance law with exponent 3.5 and per-gateway offsets, unknown transmit powers and
6 dB of scatter; a gateway hears only above its sensitivity. Least squares on the heard
readings sees only the lucky far links and flattens the law; counting the silences puts
it back.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.data.layout import SampleArrays
from heimdall.training import censored_physics
from heimdall.training.censored_physics import censored_path_loss_exponent, silent_readings, station_sensitivity_db
from heimdall.training.radio_map_build import fit_physics, refit_radio_map
from heimdall.training.radio_map_fit import fit_radio_map
from tests.training.test_radio_map_absent import _predict, _samples

GATEWAYS = 20
EXTENT_M = 5000.0
TRUE_EXPONENT = 3.5


def _network(
    rng: np.random.Generator, n: int, sensitivity_dbm: float, missed: float = 0.0, lucky: bool = False
) -> SampleArrays:
    """Every gateway listed for every transmission; heard above `sensitivity_dbm`, and a
    heard reading lost at random with probability `missed` (a collision, a gateway off);
    `lucky`: each transmission's strongest link is heard whatever its level (a decode far
    below the usual sensitivity)."""
    gateways = rng.uniform(0.0, EXTENT_M, (GATEWAYS, 2))
    tx = rng.uniform(0.0, EXTENT_M, (n, 2))
    distance = np.maximum(np.linalg.norm(gateways[None] - tx[:, None], axis=2), 10.0)
    rss = (-30.0 + rng.normal(0.0, 3.0, GATEWAYS) - 10.0 * TRUE_EXPONENT * np.log10(distance)
           + rng.normal(0.0, 3.0, (n, 1)) + rng.normal(0.0, 6.0, (n, GATEWAYS)))
    heard = (rss > sensitivity_dbm) & (rng.random((n, GATEWAYS)) >= missed)
    if lucky:
        heard[np.arange(n), np.argmax(rss, axis=1)] = True
    keep = heard.any(axis=1)
    return _samples(gateways, tx[keep], rss[keep], heard[keep], present=np.ones_like(heard[keep]))


@pytest.mark.parametrize("seed", [0, 1])
def test_counting_silences_recovers_the_exponent_least_squares_flattens(seed: int) -> None:
    samples = _network(np.random.default_rng(seed), 1500, sensitivity_dbm=-130.0)
    heard_fraction = samples.heard.mean()
    assert 0.05 < heard_fraction < 0.3  # a sparse network: most links silent
    heard_only = fit_physics(samples, GATEWAYS).exponent
    censored = censored_path_loss_exponent(samples, GATEWAYS)
    assert heard_only < TRUE_EXPONENT - 0.7  # the bias this module exists for
    assert abs(censored - TRUE_EXPONENT) < 0.2


def test_random_misses_do_not_bend_the_law() -> None:
    """A fifth of the heard readings lost at random, near gateways included: a miss at 100 m
    is not a level below the sensitivity, and the fit must not read it as one."""
    samples = _network(np.random.default_rng(2), 1500, sensitivity_dbm=-130.0, missed=0.2)
    assert abs(censored_path_loss_exponent(samples, GATEWAYS) - TRUE_EXPONENT) < 0.25


def test_a_few_lucky_decodes_do_not_lower_the_sensitivity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transmissions no gateway would hear still reach their strongest one, below the
    sensitivity (about 3 % of heard readings): the weakest heard reading is no sensitivity,
    and taking it for one steepens the law; a low quantile is."""
    samples = _network(np.random.default_rng(4), 1500, sensitivity_dbm=-135.0, lucky=True)
    heard = samples.heard
    sensitivity = station_sensitivity_db(samples.rx_id[heard], samples.rss_dbm[heard], GATEWAYS)
    weakest = np.array([samples.rss_dbm[heard & (samples.rx_id == s)].min() for s in range(GATEWAYS)])
    assert np.median(sensitivity - weakest) > 2.0
    assert np.median(np.abs(sensitivity - (-135.0))) < 1.0
    assert abs(censored_path_loss_exponent(samples, GATEWAYS) - TRUE_EXPONENT) < 0.2
    monkeypatch.setattr(censored_physics, "SENSITIVITY_QUANTILE", 0.0)  # the weakest reading
    assert censored_path_loss_exponent(samples, GATEWAYS) > TRUE_EXPONENT + 0.3


def test_without_silences_it_is_least_squares() -> None:
    """Everything heard: no censoring, the same exponent as `fit_physics`, and the fixed
    exponent reproduces that fit's offsets."""
    samples = _network(np.random.default_rng(3), 400, sensitivity_dbm=-1000.0)
    assert not silent_readings(samples, GATEWAYS).any()
    plain = fit_physics(samples, GATEWAYS)
    assert censored_path_loss_exponent(samples, GATEWAYS, plain) == plain.exponent
    assert abs(plain.exponent - TRUE_EXPONENT) < 0.1
    held = fit_physics(samples, GATEWAYS, exponent=plain.exponent)
    np.testing.assert_allclose(held.offset_db, plain.offset_db, atol=0.05)
    assert fit_physics(samples, GATEWAYS, exponent=2.0).exponent == 2.0


@pytest.mark.slow
def test_the_fit_keeps_the_censored_law_where_it_localises_better() -> None:
    """On a sparse network with a sharp sensitivity the fit holds the censored exponent in
    its maps, and a map refitted with least squares on the heard readings (same settings
    otherwise) places held-out transmissions worse."""
    samples = _network(np.random.default_rng(5), 900, sensitivity_dbm=-130.0)
    train, test = samples.select(np.arange(700)), samples.select(np.arange(700, len(samples)))
    fit = fit_radio_map(train, GATEWAYS, seed=0)
    exponent = fit.hyperparameters.path_loss_exponent
    assert exponent is not None and abs(exponent - TRUE_EXPONENT) < 0.3
    assert float(fit.net.path_loss_exponent) == pytest.approx(exponent)
    heard_only = refit_radio_map(train, GATEWAYS, replace(fit.hyperparameters, path_loss_exponent=None))
    assert float(heard_only.path_loss_exponent) < TRUE_EXPONENT - 0.7
    censored_m = np.median(np.linalg.norm(_predict(fit.net, test)[0] - test.tx_position_m, axis=1))
    heard_only_m = np.median(np.linalg.norm(_predict(heard_only, test)[0] - test.tx_position_m, axis=1))
    assert censored_m < 0.95 * heard_only_m
