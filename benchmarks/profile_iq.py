"""Per-stage profile of IQ dataset synthesis (waveforms, channel, features) and end-to-end rate.

Usage: .venv/bin/python benchmarks/profile_iq.py [--samples 64] [--repeats 5] [--threads 1]
           [--end-to-end N] [--workers W] [--json]

Stages run on one batch of `--samples` transmissions of the default 7-receiver network
(17,920 IQ samples per receiver at 48 kHz), each timed with `time.perf_counter` and
reported as the median over `--repeats` runs (after one warm-up). `--end-to-end N` also
times `generate --kind iq` of N samples into a throw-away store (`--workers` processes),
the figure users see; with `--workers W` > 1 it also times `iq_block` on 256 W samples in a
pool of W processes started beforehand (the steady rate, without their start-up). The JSON line carries the conditions (threads, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _median_s(func, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of `func()`."""
    func()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def profile_stages(num_samples: int, repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds per stage for one batch of `num_samples` transmissions."""
    from heimdall.data.iq import IQConfig, IQSynthesis, iq_block
    from heimdall.features import iq_features
    from heimdall.pipelines.bench import geometry_and_config
    from heimdall.sim.generator import generate_blocks
    from heimdall.sim.signals import ChannelSettings, apply_channel, transmitter_waveforms

    geometry, config = geometry_and_config()
    block = next(generate_blocks(geometry, config, num_samples, seed=3))[1]
    iq_config = IQConfig()
    fs = iq_config.waveform.sample_rate_hz
    rng = np.random.default_rng(0)
    tx_iq, _ = transmitter_waveforms(rng, num_samples, iq_config.waveform)
    channel = ChannelSettings(fs, k_factor_db=3.0)
    iq = apply_channel(rng, tx_iq, block.link_power_dbm, block.link_snr_db, channel)
    timed = {
        "waveforms_s": _median_s(lambda: transmitter_waveforms(rng, num_samples, iq_config.waveform), repeats),
        "channel_s": _median_s(
            lambda: apply_channel(rng, tx_iq, block.link_power_dbm, block.link_snr_db, channel), repeats
        ),
        "features_s": _median_s(lambda: iq_features(iq, fs, detection_snr_db=config.min_snr_db), repeats),
        "iq_block_s": _median_s(
            lambda: iq_block(np.random.default_rng(0), block, IQSynthesis(geometry.frequency_hz, iq_config, config.min_snr_db), 0),
            repeats,
        ),
    }
    stages = {name: wall for name, (wall, _) in timed.items()}
    stages.update({name.replace("_s", "_cpu_s"): cpu for name, (_, cpu) in timed.items()})
    stages["iq_block_samples_per_s"] = num_samples / stages["iq_block_s"]
    stages["iq_block_samples_per_cpu_s"] = num_samples / stages["iq_block_cpu_s"]
    return stages


def warm_pool_rate(num_samples: int, workers: int, repeats: int) -> float:
    """Median samples/s of `iq_block` on `num_samples` in a warm pool of `workers` processes."""
    from heimdall.data.iq import IQConfig, IQSynthesis, iq_block, iq_pool
    from heimdall.pipelines.bench import geometry_and_config
    from heimdall.sim.generator import generate_blocks

    geometry, config = geometry_and_config()
    block = next(generate_blocks(geometry, config, num_samples, seed=3))[1]
    with iq_pool(workers) as pool:
        run = lambda: iq_block(np.random.default_rng(0), block, IQSynthesis(geometry.frequency_hz, IQConfig(), config.min_snr_db), 0, pool)  # noqa: E731
        return num_samples / _median_s(run, repeats)[0]


def end_to_end(num_samples: int, workers: int, repeats: int) -> float:
    """Median samples/s of `generate --kind iq` (the pipeline, shards written) over `repeats` runs."""
    from heimdall.pipelines import generate, open_context
    from heimdall.settings import Settings

    rates = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as home:
            ctx = open_context(Settings(home=Path(home)))
            rates.append(generate(ctx, f"p{i}", num_samples, seed=1, kind="iq", workers=workers).samples_per_s)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--end-to-end", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, object] = {"samples": args.samples, "torch_threads": args.threads, "cores": os.cpu_count()}
    result["load_average_before"] = os.getloadavg()[0]
    result.update({k: round(v, 4) for k, v in profile_stages(args.samples, args.repeats).items()})
    if args.workers > 1:
        result["warm_pool_workers"] = args.workers
        result["warm_pool_samples_per_s"] = round(warm_pool_rate(256 * args.workers, args.workers, args.repeats), 1)
    if args.end_to_end:
        result["end_to_end_samples"] = args.end_to_end
        result["end_to_end_workers"] = args.workers
        result["end_to_end_samples_per_s"] = round(end_to_end(args.end_to_end, args.workers, 3), 1)
    result["load_average_after"] = os.getloadavg()[0]
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        for key, value in result.items():
            sys.stdout.write(f"{key:28s} {value}\n")


if __name__ == "__main__":
    main()
