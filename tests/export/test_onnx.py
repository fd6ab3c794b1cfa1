"""ONNX export: one file, dynamic axes, parity with PyTorch, and a mismatch is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from heimdall.errors import DataError
from heimdall.export import publish
from heimdall.export.onnx_export import ParityCheck, export_onnx, onnx_parity
from heimdall.models.localization_net import LocalizationNet, ModelConfig, NormalizationStats

pytestmark = pytest.mark.slow


def _net() -> LocalizationNet:
    torch.manual_seed(0)
    net = LocalizationNet(ModelConfig(num_stations=4, hidden_dim=32, num_layers=1))
    net.set_normalization(NormalizationStats((0.0, 0.0), 50_000.0, 100.0, 50.0, -100.0, 10.0))
    return net.eval()


def _inputs(batch: int, receivers: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    heard = rng.random((batch, receivers)) < 0.8
    heard[:, 0] = True
    return {
        "rx_position_m": (rng.standard_normal((batch, receivers, 3)) * 40_000).astype(np.float32),
        "rx_id": rng.integers(-1, 6, (batch, receivers)).astype(np.int64),
        "rss_dbm": np.where(heard, rng.uniform(-130, -60, (batch, receivers)), 0.0).astype(np.float32),
        "heard": heard,
        "present": np.ones((batch, receivers), dtype=bool),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalizationNet, Path]:
    net = _net()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return net, path


def test_single_file_and_parity_at_other_batch_and_receiver_counts(exported) -> None:
    net, path = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]
    for batch, receivers in ((1, 3), (17, 7), (64, 12)):
        assert onnx_parity(net, path, _inputs(batch, receivers, seed=batch)) < 1e-2


def test_a_changed_network_is_detected(exported) -> None:
    net, path = exported
    changed = _net()
    with torch.no_grad():
        changed.mean_head.bias.add_(0.5)
    assert onnx_parity(changed, path, _inputs(8, 5, seed=1)) > publish.PARITY_TOLERANCE


def test_parity_allows_a_small_fraction_of_sigma_and_nothing_more() -> None:
    def check(diff_m: float, sigma_m: float, cov: float = 0.0) -> ParityCheck:
        return ParityCheck(np.array([0.0, diff_m]), np.array([10.0, sigma_m]), np.array([0.0, cov]))

    assert check(0.4, 1.0).worst(0.5, 0.05) is None  # within 0.5 m
    assert check(4.3, 116.0).worst(0.5, 0.05) is None  # a flat posterior's median: 0.04 sigma
    assert check(4.3, 20.0).worst(0.5, 0.05) == 1  # 0.2 sigma: a different answer
    assert check(0.1, 100.0, cov=0.8).worst(0.5, 0.05) == 1  # the ellipse differs
    assert check(float("nan"), 100.0).worst(0.5, 0.05) == 1
    assert check(4.3, 116.0).max_abs_diff == pytest.approx(4.3)


def test_stage_bundle_refuses_a_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        publish, "onnx_parity_check", lambda *args: ParityCheck(np.array([3.0]), np.array([20.0]), np.array([0.0]))
    )
    from heimdall.network import default_network
    from heimdall.pipelines import generate, open_context
    from heimdall.settings import Settings
    from heimdall.data.shards import DatasetReader

    ctx = open_context(Settings(home=tmp_path / "home"))
    generate(ctx, "p", 1100)
    samples = DatasetReader(ctx.store, "p").load("test")
    net = LocalizationNet(ModelConfig(num_stations=len(default_network().receivers), hidden_dim=32, num_layers=1))
    with pytest.raises(DataError, match="differs from PyTorch"):
        publish.stage_bundle(net, samples, tmp_path / "staging")
    assert list((tmp_path / "staging").iterdir()) == []
