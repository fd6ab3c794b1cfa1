"""The set model: invariances a model over receivers must have."""

from __future__ import annotations

import pytest
import torch

from heimdall.models.localization_net import LocalizationNet, ModelConfig, NormalizationStats


@pytest.fixture
def net() -> LocalizationNet:
    torch.manual_seed(0)
    model = LocalizationNet(ModelConfig(num_stations=5, hidden_dim=32, num_layers=2, num_heads=4))
    model.set_normalization(NormalizationStats((1000.0, -2000.0), 50_000.0, 300.0, 200.0, -100.0, 10.0))
    return model.eval()


def _inputs(batch: int = 3, receivers: int = 5):
    generator = torch.Generator().manual_seed(1)
    position = torch.randn(batch, receivers, 3, generator=generator) * 30_000
    rx_id = torch.arange(receivers).repeat(batch, 1)
    rss = -100 + 10 * torch.randn(batch, receivers, generator=generator)
    heard = torch.ones(batch, receivers, dtype=torch.bool)
    heard[:, -1] = False
    rss[:, -1] = float("nan")
    present = torch.ones(batch, receivers, dtype=torch.bool)
    return position, rx_id, rss, heard, present


def test_outputs_are_metres_and_a_valid_covariance(net: LocalizationNet) -> None:
    position, covariance = net(*_inputs())
    assert torch.isfinite(position).all() and torch.isfinite(covariance).all()
    torch.testing.assert_close(covariance, covariance.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(covariance) > 0).all()


def test_permuting_receivers_changes_nothing(net: LocalizationNet) -> None:
    inputs = _inputs()
    order = torch.tensor([3, 0, 4, 1, 2])
    permuted = tuple(x[:, order] for x in inputs)
    for a, b in zip(net(*inputs), net(*permuted), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-2)


def test_absent_padding_receivers_are_ignored(net: LocalizationNet) -> None:
    inputs = _inputs()
    padded = [torch.cat([x, x[:, :2]], dim=1) for x in inputs]
    padded[2][:, -2:] = 12345.0  # garbage RSS in the padding
    padded[4][:, -2:] = False  # ... which is not present
    padded[3][:, -2:] = False
    for a, b in zip(net(*inputs), net(*padded), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-2)


def test_unknown_stations_use_the_generic_embedding(net: LocalizationNet) -> None:
    position, rx_id, rss, heard, present = _inputs()
    unknown = rx_id.clone()
    unknown[:, 0] = 99
    also_unknown = rx_id.clone()
    also_unknown[:, 0] = -1
    a = net(position, unknown, rss, heard, present)
    b = net(position, also_unknown, rss, heard, present)
    torch.testing.assert_close(a[0], b[0])


def test_a_common_power_offset_only_moves_the_absolute_feature(net: LocalizationNet) -> None:
    # The relative-power feature makes the model see the same geometry at any TX power.
    position, rx_id, rss, heard, present = _inputs()
    features = net._features(position, rss, heard)
    shifted = net._features(position, rss + 7.0, heard)
    torch.testing.assert_close(features[..., 4], shifted[..., 4])
    assert not torch.allclose(features[..., 3], shifted[..., 3])
