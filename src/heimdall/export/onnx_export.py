"""ONNX export of a `LocalizationNet` with dynamic batch and receiver axes."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from heimdall.fileio import temp_file_beside
from heimdall.models.localization_net import BASE_INPUTS, LocalizationNet

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "export_onnx", "onnx_parity", "example_inputs"]

#: Inputs of a feature-only model; a spectrogram model adds "spectrogram" (net.input_names).
INPUT_NAMES = BASE_INPUTS
OUTPUT_NAMES = ("position_m", "covariance_m2")
OPSET = 18


def example_inputs(batch: int = 2, receivers: int = 5, spectrogram_channels: int | None = None) -> tuple[torch.Tensor, ...]:
    """Dummy inputs with the graph's dtypes (batch and receiver sizes are not baked in)."""
    heard = torch.ones(batch, receivers, dtype=torch.bool)
    heard[:, -1] = False
    spectrogram = ()
    if spectrogram_channels is not None:
        spectrogram = (torch.zeros(batch, receivers, spectrogram_channels, 128, 32),)
    return (*(
        torch.randn(batch, receivers, 3, generator=torch.Generator().manual_seed(0)) * 1000.0,
        torch.arange(receivers, dtype=torch.int64).repeat(batch, 1),
        torch.full((batch, receivers), -100.0),
        heard,
        torch.ones(batch, receivers, dtype=torch.bool),
    ), *spectrogram)


def export_onnx(net: LocalizationNet, path: Path) -> Path:
    """Write `net` as one self-contained ONNX file (weights inside), atomically."""
    net = net.eval()
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    receivers = torch.export.Dim("receivers", min=2, max=4096)
    names = net.input_names
    axes = {name: {0: batch, 1: receivers} for name in names}
    channels = net.config.spectrogram_channels if "spectrogram" in names else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path, suffix=".onnx")
    os.close(fd)
    # The dynamo exporter reports each pass at INFO/WARNING; nothing a user can act on.
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                example_inputs(spectrogram_channels=channels),
                tmp,
                input_names=list(names),
                output_names=list(getattr(net, "output_names", OUTPUT_NAMES)),
                dynamic_shapes=axes,
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
                optimize=True,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def onnx_parity(net: LocalizationNet, onnx_path: Path, inputs: dict[str, np.ndarray]) -> float:
    """Max abs difference between PyTorch and onnxruntime (position in m, covariance
    relative to its own scale) on the same inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {name: inputs[name] for name in net.input_names}
    ort_position, ort_covariance = session.run(list(OUTPUT_NAMES), feeds)
    with torch.no_grad():
        position, covariance = net(*(torch.from_numpy(feeds[n]) for n in net.input_names))[:2]
    position_diff = float(np.max(np.abs(ort_position - position.numpy())))
    sigma = np.sqrt(np.abs(covariance.numpy()[:, [0, 1], [0, 1]])).max(axis=1)
    cov_diff = np.abs(ort_covariance - covariance.numpy()) / (sigma[:, None, None] ** 2)
    return max(position_diff, float(np.max(cov_diff)))
