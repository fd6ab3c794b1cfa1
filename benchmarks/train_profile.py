"""Where a training step of the default feature model spends its time, and what it costs.

Prints one JSON object: FLOPs per sample (forward + backward, torch's FlopCounterMode) of
the default LocalizationNet and of the spectrogram models (nano, tiny encoders); the
FLOP/s of a plain float32 matmul on one thread here; samples/s of the bare training loop
at 1 thread and at torch's default threads; one Lightning epoch (the `heimdall train`
machinery: DataLoader, hooks, logging) against the bare loop in the same process; and
the AdamW step (for-loop, foreach, fused). Each time is a median of several runs.

    PYTHONPATH=src .venv/bin/python benchmarks/train_profile.py [--samples 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from heimdall.data.datamodule import HeimdallDataModule, fit_normalization
from heimdall.models import GaussianNLLLoss, LocalizationNet, ModelConfig
from heimdall.pipelines.bench import synthetic_batch, bench_training, median_time_s
from heimdall.training.module import LocalizationLightningModule
from heimdall.training.trainer import build_trainer


def flops_per_sample(config: ModelConfig, batch_size: int = 2) -> float:
    """Forward + backward FLOPs of one training sample (7 receivers)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = LocalizationNet(config)
    b, r = batch_size, 7
    inputs = [torch.randn(b, r, 3) * 1e4, torch.arange(r).expand(b, r), torch.full((b, r), -90.0),
              torch.ones(b, r, dtype=torch.bool), torch.ones(b, r, dtype=torch.bool)]  # fmt: skip
    if config.spectrogram_encoder is not None:
        inputs.append(torch.randn(b, r, 1, 128, 32))
    with FlopCounterMode(display=False) as counter:
        mean, tril = net.forward_normalized(*inputs)
        GaussianNLLLoss()(mean, tril, torch.zeros(b, 2)).backward()
    return counter.get_total_flops() / b


def matmul_gflops(threads: int) -> float:
    """FLOP/s of a [1792, 128] x [128, 128] float32 matmul (the model's own shape at batch 256)."""
    torch.set_num_threads(threads)
    a, w = torch.randn(1792, 128), torch.randn(128, 128)
    seconds = median_time_s(lambda: [a @ w for _ in range(100)], repeats=5)
    return 100 * 2 * 1792 * 128 * 128 / seconds / 1e9


def optimizer_step_ms() -> dict[str, float]:
    torch.set_num_threads(1)
    net = LocalizationNet(ModelConfig(num_stations=7))
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    variants = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizers = {k: torch.optim.AdamW(net.parameters(), lr=1e-3, **kw) for k, kw in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in optimizers}
    for _ in range(7):  # interleaved, so every variant sees the same load
        for name, optimizer in optimizers.items():
            start = time.perf_counter()
            for _ in range(20):
                optimizer.step()
            times[name].append((time.perf_counter() - start) / 20 * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


class _EpochTimer(Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        # Validation runs inside the epoch, at its end: the training part stops here.
        self.seconds = time.perf_counter() - self.start


def lightning_epoch_samples_per_s(batch: dict, threads: int) -> float:
    """One training epoch (validation excluded) through LocalizationLightningModule + HeimdallDataModule."""
    torch.set_num_threads(threads)
    samples = batch["samples"]
    net = LocalizationNet(ModelConfig(num_stations=7))
    net.set_normalization(fit_normalization(samples))
    timer = _EpochTimer()
    val = samples.select(np.arange(len(samples)) < 1000)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(Path(tmp), max_epochs=1, extra_callbacks=[timer])
        trainer.fit(LocalizationLightningModule(net, max_epochs=1), datamodule=HeimdallDataModule.from_samples(samples, val, batch_size=256))
    return len(samples) / timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    batch = synthetic_batch(args.samples)
    result = {
        "load_average_start": os.getloadavg()[0],
        "default_threads": default_threads,
        "flops_per_sample_features": flops_per_sample(ModelConfig(num_stations=7)),
        "flops_per_sample_spectrogram_nano": flops_per_sample(ModelConfig(num_stations=7, spectrogram_encoder="nano")),
        "flops_per_sample_spectrogram_tiny": flops_per_sample(ModelConfig(num_stations=7, spectrogram_encoder="tiny")),
        "matmul_gflops_1thread": matmul_gflops(1),
        "matmul_gflops_default_threads": matmul_gflops(default_threads),
        "optimizer_step_ms": optimizer_step_ms(),
    }
    for threads in sorted({1, default_threads}):
        # Bare loop and Lightning epoch interleaved, twice each: same load for the ratio.
        bare, epoch = [], []
        for _ in range(2):
            bare.append(bench_training(batch, steps=20, threads=threads))
            epoch.append(lightning_epoch_samples_per_s(batch, threads))
        result[f"bare_loop_samples_per_s_{threads}thread"] = statistics.median(bare)
        result[f"lightning_epoch_samples_per_s_{threads}thread"] = statistics.median(epoch)
    result["load_average_end"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
