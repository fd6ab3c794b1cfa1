"""`heimdall bench`: the speed and memory figures, each a median over repeated runs.

Every figure is measured here, in this process or a child process (peak memory), on the
machine it runs on; the JSON carries the conditions (cores, threads, sizes).

Benchmarks live in `benchmarks/` (its README lists each script and the figures it gives);
this module is the one part that ships with the package, because `heimdall bench` is a
command every installation has. It is a pipeline like the others: the CLI calls
`run_bench`, which composes sim/, data/, models/ and export/. The scripts in `benchmarks/`
reuse its timing helpers (`median_time_s`, `synthetic_batch`, `geometry_and_config`,
`bench_training`) instead of keeping their own copies.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "run_bench",
    "median_time_s",
    "geometry_and_config",
    "synthetic_batch",
    "bench_training",
    "bench_generate_features_terrain",
]

REPEATS = 5


def median_time_s(func: Callable[[], object], repeats: int = REPEATS, warmup: int = 1) -> float:
    """Median wall time (s) of `func()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def geometry_and_config() -> tuple[Any, Any]:
    """The default network's geometry about its reference point, and the default scenario."""
    from heimdall.data.synthetic import network_geometry
    from heimdall.network import default_network
    from heimdall.sim.scenario import ScenarioConfig

    network = default_network()
    config = ScenarioConfig()
    return network_geometry(network, network.reference_point(), config), config


def bench_generate_features(num_samples: int = 20_000) -> float:
    """Feature-kind simulation throughput, samples/s (7 receivers, one process)."""
    from heimdall.sim.generator import generate_blocks

    geometry, config = geometry_and_config()
    seconds = median_time_s(lambda: list(generate_blocks(geometry, config, num_samples, seed=1)), repeats=3)
    return num_samples / seconds


def bench_generate_features_terrain(num_samples: int = 20_000) -> float:
    """Feature-kind throughput over a DEM, samples/s: 12 receivers over ~3 km at 462.7 MHz,
    a synthetic SRTM tile of rolling hills (written to a temporary directory), Deygout
    diffraction on 48-point profiles, one process."""
    from heimdall.data.synthetic import network_geometry
    from heimdall.network import Receiver, ReceiverNetwork
    from heimdall.sim.dem import write_hgt
    from heimdall.sim.generator import generate_blocks
    from heimdall.sim.scenario import ScenarioConfig

    rng = np.random.default_rng(0)
    lat = np.linspace(41.0, 40.0, 1201)[:, None]
    lon = np.linspace(-112.0, -111.0, 1201)[None, :]
    hills_m = 1400.0 + 40.0 * np.sin(lat * 300.0) * np.cos(lon * 250.0) + 15.0 * np.sin(lon * 900.0)
    receivers = tuple(
        Receiver(receiver_id=f"rx{i}", name=f"rx{i}", lat_deg=40.76 + rng.uniform(-0.015, 0.015), lon_deg=-111.84 + rng.uniform(-0.02, 0.02))
        for i in range(12)
    )
    network = ReceiverNetwork(name="bench-terrain", receivers=receivers, frequency_hz=462.7e6)
    with tempfile.TemporaryDirectory() as tmp:
        write_hgt(Path(tmp), 40, -112, hills_m)
        config = ScenarioConfig(dem_dir=tmp, area_margin_m=500.0, path_loss_model="two-ray", tx_power_min_dbm=30.0, tx_power_max_dbm=30.0)
        geometry = network_geometry(network, network.reference_point(), config)
    seconds = median_time_s(lambda: list(generate_blocks(geometry, config, num_samples, seed=1)), repeats=3)
    return num_samples / seconds


def bench_generate_iq(num_samples: int = 128, workers: int = 1) -> float:
    """IQ-kind throughput, samples/s: waveforms, channel, mel-spectrogram and IQ measurements.

    With `workers` > 1 the chunks run in that many worker processes, started and warmed up
    before the clock starts (`generate --workers` pays their start-up once per run).
    """
    from heimdall.data.iq import IQConfig, IQSynthesis, iq_block, iq_pool
    from heimdall.sim.generator import generate_blocks

    geometry, config = geometry_and_config()
    block = next(generate_blocks(geometry, config, num_samples, seed=3))[1]
    with ExitStack() as stack:
        pool = stack.enter_context(iq_pool(workers)) if workers > 1 else None

        def run() -> None:
            iq_block(np.random.default_rng(0), block, IQSynthesis(geometry.frequency_hz, IQConfig(), config.min_snr_db), 0, pool)

        return num_samples / median_time_s(run, repeats=3)


def bench_train_spectrogram(num_samples: int = 64, batch_size: int = 16, steps: int = 4, encoder: str = "tiny") -> float:
    """Training throughput of the spectrogram model (ConvNeXt `encoder` per receiver), samples/s."""
    import torch

    from heimdall.data.iq import IQConfig, IQSynthesis, iq_block
    from heimdall.models import GaussianNLLLoss, LocalizationNet, ModelConfig
    from heimdall.sim.generator import generate_blocks

    geometry, config = geometry_and_config()
    block = next(generate_blocks(geometry, config, num_samples, seed=3))[1]
    result = iq_block(np.random.default_rng(0), block, IQSynthesis(geometry.frequency_hz, IQConfig(), config.min_snr_db), keep=0)
    spectrogram = torch.from_numpy(result.spectrogram.astype(np.float32))
    torch.manual_seed(0)
    net = LocalizationNet(ModelConfig(num_stations=7, spectrogram_encoder=encoder))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    loss_fn = GaussianNLLLoss()
    r = spectrogram.shape[1]
    position = torch.from_numpy(geometry.rx_position_m.astype(np.float32)).expand(batch_size, r, 3)
    rx_id = torch.arange(r).expand(batch_size, r)
    heard = torch.from_numpy(result.heard[:batch_size])
    rss = torch.from_numpy(np.nan_to_num(result.rss_dbm[:batch_size], nan=-120.0))
    present = torch.ones(batch_size, r, dtype=torch.bool)
    target = torch.zeros(batch_size, 2)

    def run() -> None:
        for step in range(steps):
            images = spectrogram[(step * batch_size) % num_samples :][:batch_size]
            mean, tril = net.forward_normalized(position, rx_id, rss, heard, present, images)
            loss = loss_fn(mean, tril, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return steps * batch_size / median_time_s(run, repeats=3)


def synthetic_batch(num_samples: int) -> dict[str, Any]:
    """Simulated samples and their tensors (no storage involved)."""
    from heimdall.data.datamodule import to_batch
    from heimdall.data.layout import SampleArrays
    from heimdall.data.splits import assign_splits
    from heimdall.data.synthetic import to_samples
    from heimdall.network import default_network
    from heimdall.sim.generator import generate_blocks

    geometry, config = geometry_and_config()
    reference = default_network().reference_point()
    parts = [
        to_samples(first, block, geometry, reference, lambda ids, tx: assign_splits(ids, tx, "random", 0))
        for first, block in generate_blocks(geometry, config, num_samples, seed=2)
    ]
    samples = SampleArrays.concatenate(parts)
    return {"samples": samples, "batch": to_batch(samples)}


def bench_training(batch: dict[str, Any], batch_size: int = 256, steps: int = 30, threads: int | None = None) -> float:
    """Training throughput of the feature model, samples/s (forward, backward, AdamW step).

    `threads` sets torch's intra-op threads for the measurement (None: as configured).
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_training(batch, batch_size, steps)
    finally:
        torch.set_num_threads(previous)


def _bench_training(batch: dict[str, Any], batch_size: int, steps: int) -> float:
    import torch

    from heimdall.data.datamodule import fit_normalization
    from heimdall.models import GaussianNLLLoss, LocalizationNet, ModelConfig

    torch.manual_seed(0)
    net = LocalizationNet(ModelConfig(num_stations=7))
    net.set_normalization(fit_normalization(batch["samples"]))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    loss_fn = GaussianNLLLoss()
    tensors = batch["batch"]
    n = tensors["rss_dbm"].shape[0]

    def run() -> None:
        for step in range(steps):
            idx = torch.arange(step * batch_size, (step + 1) * batch_size) % n
            b = {k: v[idx] for k, v in tensors.items()}
            mean, tril = net.forward_normalized(b["rx_position_m"], b["rx_id"], b["rss_dbm"], b["heard"], b["present"])
            loss = loss_fn(mean, tril, net.normalize_target(b["tx_position_m"]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    seconds = median_time_s(run, repeats=3)
    return steps * batch_size / seconds


def bench_model_io(batch: dict[str, Any], workdir: Path) -> dict[str, float]:
    """Checkpoint save, ONNX export, and latency of onnxruntime vs PyTorch at batch 1 and 64."""
    import onnxruntime as ort
    import torch

    from heimdall.data.datamodule import fit_normalization
    from heimdall.export.onnx_export import INPUT_NAMES, OUTPUT_NAMES, export_onnx
    from heimdall.models import LocalizationNet, ModelConfig

    net = LocalizationNet(ModelConfig(num_stations=7))
    net.set_normalization(fit_normalization(batch["samples"]))
    net.eval()
    result: dict[str, float] = {}
    result["checkpoint_save_s"] = median_time_s(lambda: torch.save({"state_dict": net.state_dict()}, workdir / "bench.ckpt"), repeats=3)
    start = time.perf_counter()
    onnx_path = export_onnx(net, workdir / "model.onnx")
    result["onnx_export_s"] = time.perf_counter() - start
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    tensors = batch["batch"]
    for size in (1, 64):
        feeds_t = [tensors[k][:size].contiguous() for k in INPUT_NAMES]
        feeds_t[2] = torch.where(feeds_t[3], feeds_t[2], torch.zeros_like(feeds_t[2]))
        feeds_np = {k: v.numpy() for k, v in zip(INPUT_NAMES, feeds_t, strict=True)}

        def ort_call() -> None:
            session.run(list(OUTPUT_NAMES), feeds_np)

        def torch_call() -> None:
            with torch.inference_mode():
                net(*feeds_t)

        # Interleaved repeats, so both see the same machine load.
        ort_times, torch_times = [], []
        for _ in range(5):
            ort_times.append(median_time_s(ort_call, repeats=20, warmup=3))
            torch_times.append(median_time_s(torch_call, repeats=20, warmup=3))
        result[f"onnx_latency_ms_b{size}"] = statistics.median(ort_times) * 1e3
        result[f"torch_latency_ms_b{size}"] = statistics.median(torch_times) * 1e3
    result["onnx_speedup_b1"] = result["torch_latency_ms_b1"] / result["onnx_latency_ms_b1"]
    return result


def bench_localize_iq(workdir: Path) -> float:
    """End-to-end localisation from IQ, ms: 7 receivers' recordings -> features -> ONNX."""
    import onnxruntime as ort
    import torch

    from heimdall.export.onnx_export import OUTPUT_NAMES, export_onnx
    from heimdall.features import iq_features
    from heimdall.models import LocalizationNet, ModelConfig
    from heimdall.sim.generator import generate_blocks
    from heimdall.sim.signals import (
        ChannelSettings,
        WaveformConfig,
        apply_channel,
        transmitter_waveforms,
    )

    geometry, config = geometry_and_config()
    block = next(generate_blocks(geometry, config, 1, seed=5))[1]
    rng = np.random.default_rng(0)
    tx_iq, _ = transmitter_waveforms(rng, 1, WaveformConfig())
    iq = apply_channel(rng, tx_iq, block.link_power_dbm, block.link_snr_db, ChannelSettings(48_000.0))[0]
    torch.manual_seed(0)
    net = LocalizationNet(ModelConfig(num_stations=7, spectrogram_encoder="nano")).eval()
    path = export_onnx(net, workdir / "spectrogram.onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    r = iq.shape[0]

    def run() -> None:
        mel_db, measured = iq_features(iq, 48_000.0)
        session.run(
            list(OUTPUT_NAMES),
            {
                "rx_position_m": geometry.rx_position_m[None].astype(np.float32),
                "rx_id": np.arange(r, dtype=np.int64)[None],
                "rss_dbm": np.nan_to_num(measured.channel_power_dbm, nan=0.0).astype(np.float32)[None],
                "heard": measured.signal_present[None],
                "present": np.ones((1, r), dtype=bool),
                "spectrogram": mel_db.astype(np.float32)[None, :, None],
            },
        )

    return median_time_s(run, repeats=10, warmup=2) * 1e3


def _child_peak_rss_mb(code: str) -> float:
    """Peak resident memory (MB) of a child Python process running `code`."""
    completed = subprocess.run(
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report
        # at least the parent's size at spawn time.
        [sys.executable, "-c", code + _PRINT_HWM],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(completed.stdout.strip().splitlines()[-1]) / 1024.0


_PRINT_HWM = (
    "\nfrom pathlib import Path\n"
    "print(next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')))"
)


def bench_peak_memory(num_samples: int) -> dict[str, float]:
    """Peak RSS of streaming generation of `num_samples` to shards, and of a short training run."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_code = (
            "from pathlib import Path\n"
            "from heimdall.data.synthetic import SimulationPlan, generate_dataset\n"
            "from heimdall.network import default_network\n"
            "from heimdall.sim.scenario import ScenarioConfig\n"
            "from heimdall.storage.artifacts import LocalStore\n"
            f"root = Path({tmp!r})\n"
            "generate_dataset(LocalStore(root / 'store'), root / 'staging', 'bench',"
            f" SimulationPlan(default_network(), ScenarioConfig(), {num_samples}, 0))\n"
        )
        generate_mb = _child_peak_rss_mb(generate_code)
        train_code = (
            "from heimdall.pipelines.bench import synthetic_batch, bench_training\n"
            "bench_training(synthetic_batch(20000), steps=10)\n"
        )
        train_mb = _child_peak_rss_mb(train_code)
    return {"generate_peak_rss_mb": generate_mb, "train_peak_rss_mb": train_mb, "generate_peak_rss_samples": num_samples}


def run_bench(quick: bool = False) -> dict[str, Any]:
    """All figures of `heimdall bench` as one JSON-ready dict."""
    import torch

    result: dict[str, Any] = {
        "conditions": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "receivers": 7,
            "repeats": "median of 3-5 runs",
        }
    }
    result["generate_features_samples_per_s"] = bench_generate_features(5_000 if quick else 20_000)
    result["generate_features_terrain_samples_per_s"] = bench_generate_features_terrain(5_000 if quick else 20_000)
    # IQ synthesis on every core (worker processes, as `generate --workers`), and in one.
    workers = os.cpu_count() or 1
    result["conditions"]["generate_iq_workers"] = workers
    result["generate_iq_samples_per_s"] = bench_generate_iq(64 * workers if quick else 256 * workers, workers)
    result["generate_iq_1proc_samples_per_s"] = bench_generate_iq(64 if quick else 256)
    # ConvNeXt-tiny costs ~44 GFLOP per sample (forward + backward): a few samples suffice.
    result["train_spectrogram_samples_per_s"] = bench_train_spectrogram(batch_size=2, steps=1, encoder="tiny")
    result["train_spectrogram_nano_samples_per_s"] = bench_train_spectrogram(steps=2 if quick else 6, encoder="nano")
    batch = synthetic_batch(4_096 if quick else 20_000)
    result["train_features_samples_per_s"] = bench_training(batch, steps=5 if quick else 30)
    # One thread beside the default: on a shared machine, OpenMP threads that outnumber the
    # free cores spin against each other (docs/PERFORMANCE.md).
    result["train_features_1thread_samples_per_s"] = bench_training(batch, steps=5 if quick else 30, threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        result.update(bench_model_io(batch, Path(tmp)))
        result["localize_iq_ms"] = bench_localize_iq(Path(tmp))
    result.update(bench_peak_memory(20_000 if quick else 200_000))
    result["max_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}
