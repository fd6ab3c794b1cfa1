"""Files that list only the receivers that heard: a missing fixed station heard nothing.

The fit decides it on held-out folds; the model then adds the missing stations itself, so a
query written with or without "heard nothing" rows gets the same answer (torch and ONNX).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heimdall.data.layout import SampleArrays
from heimdall.training.radio_map_build import fill_absent_stations, mobile_stations, station_positions
from heimdall.training.radio_map_fit import fit_radio_map

GATEWAYS = 12
EXTENT_M = 3000.0


def _campaign(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gateways [S,2], transmitters [N,2], rss [N,S] dBm, heard [N,S]): a sparse network
    where a gateway hears a transmission only above a sensitivity (about a third of links)."""
    gateways = rng.uniform(0.0, EXTENT_M, (GATEWAYS, 2))
    tx = rng.uniform(0.0, EXTENT_M, (n, 2))
    distance = np.maximum(np.linalg.norm(gateways[None] - tx[:, None], axis=2), 10.0)
    phase = rng.uniform(0.0, 2 * np.pi, GATEWAYS)
    field = 4.0 * np.sin(tx[:, :1] / 170.0 + phase) * np.cos(tx[:, 1:] / 230.0 - phase)
    rss = -30.0 - 35.0 * np.log10(distance) + field + rng.normal(0.0, 2.0, (n, GATEWAYS))
    heard = rss > np.quantile(rss, 0.65)
    heard[np.arange(n), np.argmax(rss, axis=1)] = True
    return gateways, tx, rss, heard


def _samples(gateways: np.ndarray, tx: np.ndarray, rss: np.ndarray, heard: np.ndarray, present: np.ndarray) -> SampleArrays:
    readings = np.where(heard, rss, np.nan)
    return SampleArrays.from_fixed_receivers(gateways, tx, readings, heard & present, present=present)


def _predict(net: torch.nn.Module, samples: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        position, covariance, residual, _ = net(
            torch.from_numpy(samples.rx_position_m), torch.from_numpy(samples.rx_id),
            torch.from_numpy(np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32)),
            torch.from_numpy(samples.heard), torch.from_numpy(samples.present),
        )
    assert residual.shape == samples.rx_id.shape  # one residual per input receiver, none for added ones
    return position.double().numpy(), covariance.double().numpy()


def test_filling_adds_each_missing_fixed_station_as_heard_nothing() -> None:
    gateways, tx, rss, heard = _campaign(np.random.default_rng(0), 40)
    listed = _samples(gateways, tx, rss, heard, present=np.ones_like(heard))
    only_heard = _samples(gateways, tx, rss, heard, present=heard)
    mobile = np.zeros(GATEWAYS, dtype=bool)
    mobile[5] = True  # a bus: where it was when it heard nothing is unknown
    positions, fillable = station_positions(only_heard, GATEWAYS, mobile)
    np.testing.assert_allclose(positions[:, :2], gateways, atol=1e-3)
    filled = fill_absent_stations(only_heard, positions, fillable)
    for i in range(len(tx)):
        added = filled.present[i] & ~np.isin(np.arange(filled.rx_id.shape[1]), np.flatnonzero(only_heard.present[i]))
        assert sorted(filled.rx_id[i][added]) == sorted(set(np.flatnonzero(~heard[i])) - {5})
        assert not filled.heard[i][added].any()
        np.testing.assert_allclose(filled.rx_position_m[i][added][:, :2], gateways[filled.rx_id[i][added]], atol=1e-3)
    assert fill_absent_stations(listed, positions, fillable) is listed  # nothing missing: unchanged


@pytest.fixture(scope="module")
def sparse() -> dict[str, object]:
    rng = np.random.default_rng(11)
    gateways, tx, rss, heard = _campaign(rng, 650)
    only_heard = _samples(gateways, tx, rss, heard, present=heard)
    listed = _samples(gateways, tx, rss, heard, present=np.ones_like(heard))
    fit = fit_radio_map(only_heard.select(np.arange(500)), GATEWAYS, seed=0)
    return {"fit": fit, "only_heard": only_heard.select(np.arange(500, 650)), "listed": listed.select(np.arange(500, 650)),
            "tx": tx[500:], "rss": rss, "heard": heard, "gateways": gateways}


@pytest.mark.slow
def test_files_listing_only_heard_receivers_are_read_as_silence(sparse) -> None:  # noqa: ANN001
    fit = sparse["fit"]
    assert fit.hyperparameters.fill_absent and fit.net.config.fill_absent
    position, covariance = _predict(fit.net, sparse["only_heard"])
    same_position, same_covariance = _predict(fit.net, sparse["listed"])
    np.testing.assert_allclose(position, same_position, atol=1e-3)
    np.testing.assert_allclose(covariance, same_covariance, rtol=1e-4)
    assert np.median(np.linalg.norm(position - sparse["tx"], axis=1)) < 0.1 * EXTENT_M


@pytest.mark.slow
def test_onnx_graph_adds_missing_stations_too(sparse, tmp_path) -> None:  # noqa: ANN001
    from heimdall.export.onnx_export import export_onnx, onnx_parity
    from heimdall.export.publish import parity_inputs

    net = sparse["fit"].net
    path = export_onnx(net, tmp_path / "model.onnx")
    assert onnx_parity(net, path, parity_inputs(sparse["only_heard"], limit=16)) < 0.5


@pytest.mark.slow
def test_dropped_rows_are_not_read_as_silence() -> None:
    # Every gateway listened and its "heard nothing" rows are in the file; a tenth of the
    # heard readings were lost on the way. Reading those gaps as silence would be wrong.
    rng = np.random.default_rng(12)
    gateways, tx, rss, heard = _campaign(rng, 500)
    lost = heard & (rng.random(heard.shape) < 0.1)
    lost[np.arange(len(tx)), np.argmax(np.where(heard, rss, -np.inf), axis=1)] = False
    samples = _samples(gateways, tx, rss, heard, present=~lost)
    assert not mobile_stations(samples, GATEWAYS).any()
    assert not fit_radio_map(samples, GATEWAYS, seed=0).hyperparameters.fill_absent
