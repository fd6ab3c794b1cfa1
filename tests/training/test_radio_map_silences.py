"""How much a silence says: the weight of the log-probability of receivers that listened and
heard nothing, in the map and as step 0 of the fit chooses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heimdall.training.radio_map_build import build_radio_map, mobile_stations
from heimdall.training.radio_map_readings import SILENCE_WEIGHTS, _held_out_median, choose_readings
from tests.training.test_radio_map_absent import GATEWAYS, _campaign, _samples


def _log_likelihood(net: torch.nn.Module, samples, any_silent: bool = True) -> np.ndarray:  # noqa: ANN001
    with torch.no_grad():
        station = net._stations(torch.from_numpy(samples.rx_id))
        rss = torch.from_numpy(np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32))
        return net.map_log_likelihood(torch.from_numpy(samples.rx_position_m), station, rss,
                                      torch.from_numpy(samples.heard), torch.from_numpy(samples.present),
                                      any_silent).double().numpy()


def test_the_silences_weigh_in_proportion_to_their_weight() -> None:
    gateways, tx, rss, heard = _campaign(np.random.default_rng(5), 200)
    samples = _samples(gateways, tx, rss, heard, present=np.ones_like(heard))
    queries = samples.select(np.arange(150, 200))
    full = build_radio_map(samples.select(np.arange(150)), GATEWAYS, 300.0)
    quarter = build_radio_map(samples.select(np.arange(150)), GATEWAYS, 300.0, silence_weight=0.25)
    heard_only = _log_likelihood(full, queries, any_silent=False)
    silences = _log_likelihood(full, queries) - heard_only
    assert np.all(silences <= 1e-3) and np.median(silences) < -1.0  # a silence far below a gateway's reach is likely
    np.testing.assert_allclose(_log_likelihood(quarter, queries) - heard_only, 0.25 * silences, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_silences_that_lie_count_for_less() -> None:
    # Packets lost at random (a third of the links a gateway hears): those gateways listened,
    # heard nothing, yet the transmitter was well within their reach. Counted in full, each
    # such silence pushes the answer away from the gateway by tens of dB's worth.
    rng = np.random.default_rng(21)
    gateways, tx, rss, heard = _campaign(rng, 300)
    lost = heard & (rng.random(heard.shape) < 0.35)
    lost[np.arange(len(tx)), np.argmax(np.where(heard, rss, -np.inf), axis=1)] = False  # one heard at least
    lying = _samples(gateways, tx, rss, heard & ~lost, present=np.ones_like(heard))
    mobile = mobile_stations(lying, GATEWAYS)
    _, _, exponent, weight = choose_readings(lying, lying, GATEWAYS, 600.0, mobile, seed=0)
    assert weight < 1.0
    in_full = _held_out_median(lying, GATEWAYS, 600.0, mobile, 0, False, exponent, 1.0)
    chosen = _held_out_median(lying, GATEWAYS, 600.0, mobile, 0, False, exponent, weight)
    assert chosen < 0.9 * in_full
    assert weight in SILENCE_WEIGHTS
