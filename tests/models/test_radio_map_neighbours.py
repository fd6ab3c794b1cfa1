"""Which training fingerprints a radio map takes as a query's neighbours, where many are equal.

A transmission heard by one gateway is, once the mean is removed, at distance 0 from every
fingerprint heard by that gateway alone. Ranked on raw float32 distances, rounding noise chose
among them, so PyTorch, the ONNX graph and two batch sizes chose differently: answers hundreds
of metres apart (a simulated city network: 524 m between PyTorch and onnxruntime, sigma 511 m).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heimdall.data.layout import SampleArrays
from heimdall.models.radio_map_candidates import nearest_fingerprints

GATEWAYS = 10
EXTENT_M = 4000.0


def _rank(mean_sq: list[float], level: list[float], matches: list[bool] | None = None, k: int = 3) -> list[int]:
    matches = [True] * len(mean_sq) if matches is None else matches
    index = nearest_fingerprints(
        torch.tensor([mean_sq], dtype=torch.float32), torch.tensor([level], dtype=torch.float32),
        torch.tensor([matches]), k,
    )
    return index[0].tolist()


def test_distinct_distances_rank_nearest_first() -> None:
    assert _rank([4.0, 1.0, 9.0, 0.25, 2.0], [0.0] * 5) == [3, 1, 4]


def test_equal_distances_rank_by_level_then_index_whatever_the_rounding() -> None:
    distances = [0.0, 0.0, 0.0, 0.0, 2.0, 0.0]
    levels = [5.0, 1.0, 3.0, 1.0, 0.0, -0.5]  # |level|: the closest reading level first
    assert _rank(distances, levels) == [5, 1, 3]
    rng = np.random.default_rng(0)
    for _ in range(20):  # float32 rounding of the sums: ~1e-5 dB^2, well under the ranking's step
        noisy = [d + float(rng.uniform(0.0, 2e-5)) for d in distances]
        assert _rank(noisy, [v + float(rng.uniform(-1e-4, 1e-4)) for v in levels]) == [5, 1, 3]


def test_pairs_that_do_not_match_rank_last() -> None:
    assert _rank([0.0, 50.0, 0.0, 400.0], [0.0] * 4, matches=[False, True, False, True], k=3) == [1, 3, 0]


def _campaign(rng: np.random.Generator, n: int) -> SampleArrays:
    """A sparse network where most transmissions are heard by one or two gateways; readings
    rounded to 0.1 dB, levels near -125 dBm, every other gateway listening and silent."""
    gateways = rng.uniform(0.0, EXTENT_M, (GATEWAYS, 2))
    tx = rng.uniform(0.0, EXTENT_M, (n, 2))
    distance = np.maximum(np.linalg.norm(gateways[None] - tx[:, None], axis=2), 10.0)
    rss = np.round(-5.0 - 35.0 * np.log10(distance) + rng.normal(0.0, 4.0, (n, GATEWAYS)), 1)
    heard = rss > np.quantile(rss, 0.85)
    heard[np.arange(n), np.argmax(rss, axis=1)] = True
    return SampleArrays.from_fixed_receivers(gateways, tx, np.where(heard, rss, np.nan), heard)


def _inputs(samples: SampleArrays) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(samples.rx_position_m), torch.from_numpy(samples.rx_id),
        torch.from_numpy(np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32)),
        torch.from_numpy(samples.heard), torch.from_numpy(samples.present),
    )


@pytest.fixture(scope="module")
def sparse_map() -> tuple[torch.nn.Module, SampleArrays]:
    from heimdall.training.radio_map_fit import fit_radio_map

    samples = _campaign(np.random.default_rng(5), 900)
    fit = fit_radio_map(samples.select(np.arange(700)), GATEWAYS, seed=0)
    # The deployed graph is refit on every labelled sample: queries then have exact twins.
    return fit.net, samples.select(np.arange(700, 900))


@pytest.mark.slow
def test_neighbours_of_a_one_gateway_query_are_those_of_its_level(sparse_map) -> None:  # noqa: ANN001
    net, queries = sparse_map
    one = np.flatnonzero(queries.heard.sum(1) == 1)
    assert len(one) >= 20  # the case this is about
    part = queries.select(one)
    x = net.with_absent_stations(*_inputs(part))
    station = net._stations(x[1])
    distance, index = net.fingerprint_neighbours(station, torch.where(x[3], x[2], torch.zeros_like(x[2])), x[3], x[4])
    ordered = 0
    for row, (d, i) in enumerate(zip(distance.numpy(), index.numpy(), strict=True)):
        gateway = int(part.rx_id[row][part.heard[row]][0])
        reading = float(part.rss_dbm[row][part.heard[row]][0])
        tied = i[d < 1e-2]
        # Equal distances: the tied neighbours are the fingerprints heard at the closest levels.
        if len(tied) and len(tied) < len(i):
            levels = np.abs(net.fingerprint_db.numpy()[tied, gateway] - reading)
            assert np.all(np.diff(levels) >= -0.011), (row, levels)
            ordered += 1
    assert ordered >= 10  # queries whose neighbours were chosen among equals


@pytest.mark.slow
def test_answers_do_not_depend_on_the_batch_or_the_runtime(sparse_map, tmp_path) -> None:  # noqa: ANN001
    from heimdall.export.onnx_export import export_onnx, onnx_parity_check
    from heimdall.export.publish import PARITY_SIGMA_FRACTION, PARITY_TOLERANCE, parity_inputs

    net, queries = sparse_map
    with torch.no_grad():
        together = net(*_inputs(queries))[0].numpy()
        order = np.random.default_rng(1).permutation(len(queries))
        shuffled = np.empty_like(together)
        for start in range(0, len(order), 7):
            part = order[start:start + 7]
            shuffled[part] = net(*_inputs(queries.select(part)))[0].numpy()
    # Batches of other sizes round float32 sums differently; where a posterior is flat between
    # a few places its geometric median moves with the last digit (by 0.07 m once the silences
    # weigh less). The fault this guards against moved answers by hundreds of metres.
    moved = np.linalg.norm(shuffled - together, axis=1)
    assert moved.max() < PARITY_TOLERANCE and np.median(moved) < 0.05
    check = onnx_parity_check(net, export_onnx(net, tmp_path / "model.onnx"), parity_inputs(queries, limit=200))
    assert check.worst(PARITY_TOLERANCE, PARITY_SIGMA_FRACTION) is None
    assert np.median(check.position_diff_m) < 0.01
