"""Int8 against float: size, latency (batch 1 and 64) and test-split error of one bundle.

Uses a bundle exported with `--quantize int8` (`--bundle DIR`), or makes one in a temporary
HEIMDALL_HOME: `--samples` samples of the default network, `--epochs` epochs of the default
architecture (hidden_dim 128, 2 layers), exported with `quantize="int8"`. Latency is that of
`Localizer.predict` (what the API and CLI pay), float and int8 in the same process,
interleaved (the order alternates every round), `--rounds` rounds of `--calls` calls each;
the figure is the median over rounds of each round's median call. Error figures are the
export's parity report (test split). Optionally (`--static`) also measures onnxruntime
static QDQ quantisation calibrated on up to 512 training-split samples.

    .venv/bin/python benchmarks/quantized.py [--bundle DIR] [--samples 20000] [--epochs 8]
        [--rounds 15] [--calls 50] [--static] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.align import align_samples
from heimdall.data.layout import SampleArrays
from heimdall.export.localizer import Localizer
from heimdall.geo import haversine_m, local_to_ground


def make_bundle(home: Path, samples: int, epochs: int) -> tuple[Path, str]:
    """Train and export an int8 bundle in `home`; return its directory and dataset name."""
    from heimdall.pipelines import TrainRequest, export, generate, open_context, train
    from heimdall.settings import Settings

    ctx = open_context(Settings(home=home))
    generate(ctx, "bench-int8", samples, seed=21)
    trained = train(ctx, TrainRequest(dataset="bench-int8", epochs=epochs, batch_size=256))
    result = export(ctx, Path(trained.best_checkpoint), quantize="int8")
    ctx.close()
    return Path(result.bundle), "bench-int8"


def test_samples(home: Path, dataset: str, model: Localizer, split: str = "test") -> SampleArrays:
    from heimdall.data.shards import DatasetReader
    from heimdall.pipelines import open_context
    from heimdall.settings import Settings

    reader = DatasetReader(open_context(Settings(home=home)).store, dataset)
    return align_samples(reader.load(split), reader.manifest.reference, model.reference_point,
                         reader.manifest.station_ids, model.station_ids)


def latency_ms(models: dict[str, Localizer], batch: SampleArrays, rounds: int, calls: int) -> dict[str, float]:
    """Median over rounds of the median call time (ms) of each model, interleaved."""
    per_round: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for name in names:  # warm-up: first calls allocate
        for _ in range(5):
            models[name].predict(batch)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                models[name].predict(batch)
                times.append(time.perf_counter() - start)
            per_round[name].append(statistics.median(times) * 1e3)
    return {name: statistics.median(values) for name, values in per_round.items()}


def static_variant(bundle: Path, calibration: SampleArrays, target_dir: Path) -> Path:
    """A static-QDQ int8 copy of the bundle in `target_dir` (calibrated on `calibration`)."""
    import shutil

    import onnx
    import yaml
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from heimdall.export.publish import parity_inputs

    feeds = parity_inputs(calibration)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(range(len(feeds["rss_dbm"])))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.rows, None)
            return None if i is None else {k: v[i : i + 1] for k, v in feeds.items()}

    shutil.copytree(bundle, target_dir, dirs_exist_ok=True)
    model = onnx.load(str(bundle / "model.onnx"))
    del model.graph.value_info[:]
    quantize_static(model, str(target_dir / "model.int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    config = yaml.safe_load((target_dir / "config.yaml").read_text())
    config["variants"]["int8"]["quantization"] = "static QDQ (benchmark only)"
    (target_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target_dir


def errors_m(model: Localizer, samples: SampleArrays) -> dict[str, float]:
    """Median and p90 great-circle error (m) of `model` on `samples`."""
    prediction = model.predict(samples)
    lat, lon = local_to_ground(samples.tx_position_m[:, 0], samples.tx_position_m[:, 1], model.reference_point)
    error = haversine_m(lat, lon, prediction.lat_deg, prediction.lon_deg)
    return {"median_error_m": float(np.median(error)), "p90_error_m": float(np.percentile(error, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="An int8 bundle; with --home and --dataset for its test split")
    parser.add_argument("--home", type=Path)
    parser.add_argument("--dataset")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--static", action="store_true", help="Also measure static QDQ quantisation")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="heimdall-bench-int8-"))
    if args.bundle is None:
        bundle, dataset = make_bundle(home, args.samples, args.epochs)
    else:
        bundle, dataset = args.bundle, args.dataset
    models = {"float": Localizer.from_bundle(bundle), "int8": Localizer.from_bundle(bundle, variant="int8")}
    samples = test_samples(home, dataset, models["float"])
    report = dict(models["float"].config["variants"]["int8"]["parity"])
    if args.static:
        static_dir = static_variant(bundle, test_samples(home, dataset, models["float"], "train").select(np.arange(512)),
                                    home / "static-int8")
        models["int8_static"] = Localizer.from_bundle(static_dir, variant="int8")
        report["static"] = {"int8_size_bytes": (static_dir / "model.int8.onnx").stat().st_size,
                            **errors_m(models["int8_static"], samples), "float": errors_m(models["float"], samples)}
    result: dict[str, Any] = {
        "bundle": str(bundle),
        "model": {k: models["float"].config["model"].get(k) for k in ("hidden_dim", "num_layers")},
        "parity": report,
        "size_ratio": report["int8_size_bytes"] / report["float_size_bytes"],
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    for size in (1, 64):
        batch = samples.select(np.arange(size))
        timing = latency_ms(models, batch, args.rounds, args.calls)
        result[f"latency_ms_b{size}"] = timing
        result[f"int8_speedup_b{size}"] = timing["float"] / timing["int8"]
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
