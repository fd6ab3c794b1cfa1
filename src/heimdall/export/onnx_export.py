"""ONNX export of a `LocalizationNet` with dynamic batch and receiver axes."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from heimdall.fileio import temp_file_beside
from heimdall.models.localization_net import BASE_INPUTS, LocalizationNet

__all__ = [
    "INPUT_NAMES", "OUTPUT_NAMES", "ParityCheck", "export_onnx", "onnx_parity", "onnx_parity_check", "example_inputs",
]

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


@dataclass(frozen=True)
class ParityCheck:
    """Per-sample differences between onnxruntime and PyTorch on the same inputs."""

    position_diff_m: np.ndarray  # [N] distance between the two answers, m
    sigma_m: np.ndarray  # [N] PyTorch's larger standard deviation (x or y), m
    covariance_diff: np.ndarray  # [N] largest covariance difference over sigma^2

    @property
    def max_abs_diff(self) -> float:
        """The largest difference: position in m, covariance relative to its own scale."""
        return float(max(self.position_diff_m.max(initial=0.0), self.covariance_diff.max(initial=0.0)))

    def worst(self, tolerance_m: float, sigma_fraction: float) -> int | None:
        """Index of the sample furthest over its allowance (position within `tolerance_m` or
        `sigma_fraction` of its sigma, covariance within `tolerance_m` relative), or None."""
        allowed_m = np.maximum(tolerance_m, sigma_fraction * self.sigma_m)
        excess = np.maximum(self.position_diff_m / allowed_m, self.covariance_diff / tolerance_m)
        # NaN compares as over: a graph that answers NaN where PyTorch does not fails.
        excess = np.where(np.isfinite(excess), excess, np.inf)
        return int(np.argmax(excess)) if excess.size and excess.max() > 1.0 else None


def onnx_parity_check(net: LocalizationNet, onnx_path: Path, inputs: dict[str, np.ndarray]) -> ParityCheck:
    """Run onnxruntime and PyTorch on the same inputs and compare them sample by sample."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {name: inputs[name] for name in net.input_names}
    ort_position, ort_covariance = session.run(list(OUTPUT_NAMES), feeds)
    with torch.no_grad():
        position, covariance = (t.numpy() for t in net(*(torch.from_numpy(feeds[n]) for n in net.input_names))[:2])
    sigma = np.sqrt(np.abs(covariance[:, [0, 1], [0, 1]])).max(axis=1)
    cov_diff = (np.abs(ort_covariance - covariance) / (sigma[:, None, None] ** 2)).reshape(len(sigma), -1).max(axis=1)
    return ParityCheck(
        position_diff_m=np.linalg.norm(ort_position.astype(np.float64) - position, axis=1),
        sigma_m=sigma.astype(np.float64), covariance_diff=cov_diff.astype(np.float64),
    )


def onnx_parity(net: LocalizationNet, onnx_path: Path, inputs: dict[str, np.ndarray]) -> float:
    """Max difference between PyTorch and onnxruntime (position in m, covariance relative
    to its own scale) on the same inputs."""
    return onnx_parity_check(net, onnx_path, inputs).max_abs_diff
