"""The LightningModule's validation: one network run per batch, the same figures as `forward`."""

from __future__ import annotations

import torch

from heimdall.models.localization_net import LocalizationNet, ModelConfig, NormalizationStats
from heimdall.training.module import LocalizationLightningModule


def _batch(size: int = 6, receivers: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    heard = torch.ones(size, receivers, dtype=torch.bool)
    heard[:, -1] = False
    rss = -100 + 10 * torch.randn(size, receivers, generator=generator)
    rss[:, -1] = float("nan")
    return {
        "rx_position_m": torch.randn(size, receivers, 3, generator=generator) * 20_000,
        "rx_id": torch.arange(receivers).repeat(size, 1),
        "rss_dbm": rss,
        "heard": heard,
        "present": torch.ones(size, receivers, dtype=torch.bool),
        "tx_position_m": torch.randn(size, 2, generator=generator) * 10_000,
    }


def test_validation_step_runs_the_network_once_and_keeps_forwards_answers(monkeypatch) -> None:
    torch.manual_seed(0)
    net = LocalizationNet(ModelConfig(num_stations=4, hidden_dim=16, num_layers=1, num_heads=4))
    net.set_normalization(NormalizationStats((500.0, -300.0), 20_000.0, 100.0, 50.0, -95.0, 8.0))
    module = LocalizationLightningModule(net).eval()
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    batch = _batch()
    with torch.no_grad():
        expected_position, expected_covariance = net(*(batch[k] for k in net.input_names))
    runs: list[int] = []
    real = net.forward_normalized

    def counted(*args, **kwargs):
        runs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(net, "forward_normalized", counted)
    with torch.no_grad():
        module.validation_step(batch, 0)
    assert len(runs) == 1
    position, covariance, truth = module._val_outputs[0]
    torch.testing.assert_close(position, expected_position.double(), rtol=0, atol=0)
    torch.testing.assert_close(covariance, expected_covariance.double(), rtol=0, atol=0)
    torch.testing.assert_close(truth, batch["tx_position_m"].double())
