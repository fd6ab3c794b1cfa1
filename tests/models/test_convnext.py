"""ConvNeXt spectrogram encoder: shapes, sizes, blocks, pretrained loading, ONNX export."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from heimdall.errors import InputError
from heimdall.models.convnext import (
    ConvNeXtBlock,
    DropPath,
    LayerNorm2d,
    SpectrogramEncoder,
    SpectrogramEncoderConfig,
    count_parameters,
)


@pytest.fixture
def nano() -> SpectrogramEncoder:
    torch.manual_seed(0)
    return SpectrogramEncoder(SpectrogramEncoderConfig(size="nano", in_channels=2)).eval()


def test_nano_maps_layout_spectrograms_to_embeddings(nano: SpectrogramEncoder) -> None:
    x = torch.randn(7, 2, 128, 32)
    with torch.no_grad():
        features = nano.forward_features(x)
        out = nano(x)
    assert features.shape == (7, 128, 4, 1)  # 128x32 / 32 per axis
    assert out.shape == (7, 64)
    assert torch.isfinite(out).all()
    # Each sample is encoded on its own (no batch coupling, e.g. from a wrong norm axis).
    with torch.no_grad():
        assert torch.allclose(nano(x[2:3]), out[2:3], atol=1e-5)


def test_tiny_shape() -> None:
    config = SpectrogramEncoderConfig(size="tiny", in_channels=1, out_dim=32)
    # Built on meta and given zero weights: shapes are what is tested, and skipping the
    # random initialisation of 28 M parameters saves about a second.
    with torch.device("meta"):
        encoder = SpectrogramEncoder(config)
    encoder = encoder.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in encoder.state_dict().values():
            tensor.zero_()
        x = torch.randn(1, 1, 128, 32)
        assert encoder.forward_features(x).shape == (1, 768, 4, 1)
        assert encoder(x).shape == (1, 32)


def test_rejects_wrong_channels_and_too_small_input(nano: SpectrogramEncoder) -> None:
    with pytest.raises(InputError, match="expects"):
        nano(torch.randn(1, 1, 128, 32))
    with pytest.raises(InputError, match=">= 32"):
        nano(torch.randn(1, 2, 128, 16))


def test_parameter_counts_follow_convnext_sizes() -> None:
    tiny = count_parameters(SpectrogramEncoderConfig(size="tiny"), include_head=False)
    large = count_parameters(SpectrogramEncoderConfig(size="large"), include_head=False)
    assert 27.5e6 < tiny < 28.5e6  # ConvNeXt-T: 28.6 M with its 0.77 M ImageNet head
    assert 195e6 < large < 200e6  # ConvNeXt-L: 197.8 M with its 1.5 M ImageNet head
    counts = [
        count_parameters(SpectrogramEncoderConfig(size=s))
        for s in ("nano", "tiny", "small", "base", "large")
    ]
    assert counts == sorted(counts) and counts[0] < 1e6
    # The analytic count equals the real module's.
    real = SpectrogramEncoder(SpectrogramEncoderConfig(size="nano", in_channels=2, out_dim=16))
    expected = sum(p.numel() for p in real.parameters())
    assert count_parameters(real.config) == expected
    head = 2 * 128 + 128 * 16 + 16  # LayerNorm + Linear
    assert count_parameters(real.config, include_head=False) == expected - head


def test_config_rejects_unknown_size_and_bad_rates() -> None:
    with pytest.raises(InputError, match="huge"):
        SpectrogramEncoderConfig(size="huge")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="drop_path_rate"):
        SpectrogramEncoderConfig(drop_path_rate=1.0)


def test_drop_path_identity_in_eval_and_rescaled_in_train() -> None:
    drop = DropPath(0.25)
    x = torch.ones(4000, 3, 2, 2)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    torch.manual_seed(1)
    y = drop(x)
    per_sample = y.flatten(1)
    # Whole samples are dropped or scaled by 1 / keep_prob, nothing in between.
    assert torch.unique(per_sample).tolist() == pytest.approx([0.0, 1 / 0.75])
    assert (per_sample.min(dim=1).values == per_sample.max(dim=1).values).all()
    dropped = (per_sample[:, 0] == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.03
    assert abs(y.mean().item() - 1.0) < 0.05  # expectation preserved


def test_drop_path_rates_grow_with_depth() -> None:
    encoder = SpectrogramEncoder(SpectrogramEncoderConfig(drop_path_rate=0.2))
    rates = [m.drop_prob for m in encoder.modules() if isinstance(m, DropPath)]
    assert len(rates) == 7  # 8 blocks, the first at rate 0 has no DropPath
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2)


def test_fresh_block_is_near_identity_and_layer_scale_matters() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 8, 4)
    block = ConvNeXtBlock(32).eval()
    with torch.no_grad():
        assert (block(x) - x).abs().max().item() < 1e-4
        block.gamma.fill_(1.0)
        assert (block(x) - x).abs().max().item() > 1e-2


def test_layer_norm_2d_normalises_over_channels() -> None:
    norm = LayerNorm2d(8)
    y = norm(torch.randn(2, 8, 5, 3) * 7 + 3)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 5, 3), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 5, 3), atol=1e-3)


def test_load_pretrained_round_trip(nano: SpectrogramEncoder, tmp_path: Path) -> None:
    path = tmp_path / "encoder.pt"
    state = {f"module.{k}": v for k, v in nano.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, path)
    torch.manual_seed(123)
    fresh = SpectrogramEncoder(nano.config).eval()
    x = torch.randn(3, 2, 128, 32)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), nano(x))
        loaded = fresh.load_pretrained(path)
        assert torch.equal(fresh(x), nano(x))
    assert set(loaded) == set(nano.state_dict())


def test_load_pretrained_backbone_only_keeps_own_head(
    nano: SpectrogramEncoder, tmp_path: Path
) -> None:
    other = SpectrogramEncoder(SpectrogramEncoderConfig(in_channels=2, out_dim=10))
    path = tmp_path / "classifier.pt"
    torch.save({"model": other.state_dict()}, path)
    head_before = nano.head.weight.clone()
    with pytest.raises(InputError, match=r"'head\.weight'.*include_head=False"):
        nano.load_pretrained(path)
    loaded = nano.load_pretrained(path, include_head=False)
    assert not any(k.startswith(("head.", "norm.")) for k in loaded)
    assert torch.equal(nano.head.weight, head_before)
    assert torch.equal(nano.stages[2][1].pwconv1.weight, other.stages[2][1].pwconv1.weight)


def test_load_pretrained_names_first_mismatching_key(
    nano: SpectrogramEncoder, tmp_path: Path
) -> None:
    mono = SpectrogramEncoder(SpectrogramEncoderConfig(in_channels=1))
    path = tmp_path / "mono.pt"
    torch.save(mono.state_dict(), path)
    with pytest.raises(InputError, match=r"mono\.pt: key 'downsample_layers\.0\.0\.weight'"):
        nano.load_pretrained(path)


def test_load_pretrained_rejects_missing_extra_and_foreign_files(
    nano: SpectrogramEncoder, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"absent\.pt.*not found"):
        nano.load_pretrained(tmp_path / "absent.pt")
    state = nano.state_dict()
    missing = dict(state)
    del missing["stages.3.1.gamma"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(InputError, match=r"missing\.pt: missing key 'stages\.3\.1\.gamma'"):
        nano.load_pretrained(tmp_path / "missing.pt")
    extra = dict(state, **{"stages.3.2.gamma": torch.zeros(128)})
    torch.save(extra, tmp_path / "deeper.pt")
    with pytest.raises(InputError, match=r"deeper\.pt: unexpected key 'stages\.3\.2\.gamma'"):
        nano.load_pretrained(tmp_path / "deeper.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match=r"other\.pt: no ConvNeXt backbone"):
        nano.load_pretrained(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"junk\.pt: not a readable"):
        nano.load_pretrained(tmp_path / "junk.pt")


@pytest.mark.slow
def test_onnx_export_parity_with_dynamic_batch(nano: SpectrogramEncoder, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "encoder.onnx"
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        torch.onnx.export(
            nano,
            (torch.randn(2, 2, 128, 32),),
            str(path),
            input_names=["spectrogram"],
            output_names=["embedding"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            opset_version=18,
            dynamo=True,
            external_data=False,
            verbose=False,
            optimize=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.randn(batch, 2, 128, 32)
        (got,) = session.run(["embedding"], {"spectrogram": x.numpy()})
        with torch.no_grad():
            expected = nano(x).numpy()
        assert got.shape == (batch, 64)
        assert np.abs(got - expected).max() < 1e-4
