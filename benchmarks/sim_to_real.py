"""The value of simulation on real data: a learning curve with and without a fitted simulator.

For each spatially disjoint split (import with `--split-mode grid --seed S`, one fold per
seed), on the real measurements of a POWDER-format file:

1. fit a scenario on the fold's training split (`scenario fit`), simulate the network with
   it and train on simulation only (no real label): the network ("sim_only") and the
   radio map (`--estimator radio-map`, "sim_radio_map");
2. for each fraction of the real training labels (a random subset of the training rows,
   seeded by the fold), train the network from scratch ("scratch"), fine-tune the
   simulation model (`train --init-from`, "finetune"), and fit the default estimator for
   measured data (`--estimator radio-map`, "radio_map") on it;
3. evaluate everything on the fold's test split, beside the RSS-weighted centroid.

Validation rows (for the epoch choice) are the fold's whole val split in every arm. Prints
one JSON line per run and, at the end, mean and spread over folds; `--out` keeps them.

    python benchmarks/sim_to_real.py april.json --out sim_to_real.json --folds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _subset_dataset(ctx: Any, source: str, name: str, fraction: float, seed: int) -> None:
    from heimdall.data.catalog import register_dataset
    from heimdall.data.layout import SPLIT_CODES
    from heimdall.data.shards import DatasetReader, DatasetWriter, dataset_prefix

    reader = DatasetReader(ctx.store, source)
    samples = reader.load("all")
    train = np.flatnonzero(samples.split == SPLIT_CODES["train"])
    keep_train = np.random.default_rng(seed).permutation(train)[: max(1, int(round(fraction * train.size)))]
    keep = np.sort(np.concatenate([keep_train, np.flatnonzero(samples.split != SPLIT_CODES["train"])]))
    with DatasetWriter(ctx.store, name, ctx.staging_dir) as writer:
        writer.write_shard(samples.select(keep))
        writer.publish(reader.network, reader.manifest.reference, kind="measured", seed=seed,
                       split_mode=reader.manifest.split_mode, scenario=None, description=f"{fraction:.0%} of {source}'s train rows")
    register_dataset(ctx.db, DatasetReader(ctx.store, name), ctx.store.uri(dataset_prefix(name)))


def _train_eval(ctx: Any, dataset: str, test_dataset: str, epochs: int, seed: int, init_from: str | None = None,
                batch_size: int = 64, estimator: str = "net") -> tuple[str, dict[str, Any]]:
    from heimdall.pipelines import TrainRequest, evaluate, train

    request = TrainRequest(dataset=dataset, epochs=epochs, batch_size=batch_size, seed=seed, init_from=init_from,
                           estimator=estimator)
    trained = train(ctx, request)
    report = evaluate(ctx, trained.best_checkpoint, test_dataset, split="test")
    return trained.best_checkpoint, report


def run_fold(ctx: Any, powder: Path, fold: int, fractions: list[float], sim_samples: int, sim_epochs: int,
             real_epochs: int, log: Any) -> list[dict[str, Any]]:
    from heimdall.pipelines import generate, import_measurements, network_from_dataset
    from heimdall.sim.scenario import load_scenario

    real = f"real-f{fold}"
    import_measurements(ctx, powder, real, "powder-json", "grid", fold)
    work = Path(tempfile.mkdtemp(prefix="sim2real-"))
    written = network_from_dataset(ctx, real, work / "net.yaml")
    scenario = load_scenario(Path(written["scenario"]))
    sim = f"sim-f{fold}"
    generate(ctx, sim, sim_samples, seed=fold, network_path=work / "net.yaml", scenario=scenario)
    rows: list[dict[str, Any]] = []

    def record(arm: str, fraction: float | None, report: dict[str, Any], seconds: float) -> None:
        row = {"fold": fold, "arm": arm, "fraction": fraction, "n_test": report["n"], "median_error_m": report["median_error_m"],
               "p90_error_m": report["p90_error_m"], "centroid_median_m": report["baselines"]["weighted_centroid"]["median_error_m"],
               "seconds": round(seconds, 1)}
        rows.append(row)
        log(json.dumps(row))

    start = time.perf_counter()
    sim_checkpoint, report = _train_eval(ctx, sim, real, sim_epochs, fold, batch_size=256)
    record("sim_only", 0.0, report, time.perf_counter() - start)
    # The radio map fitted to the same simulated transmissions: no real label either.
    start = time.perf_counter()
    _, report = _train_eval(ctx, sim, real, sim_epochs, fold, estimator="radio-map")
    record("sim_radio_map", 0.0, report, time.perf_counter() - start)
    for fraction in fractions:
        subset = f"real-f{fold}-p{int(round(fraction * 100))}"
        _subset_dataset(ctx, real, subset, fraction, fold)
        # The network from scratch and fine-tuned from simulation, and what `train` does by
        # default on measured data (the radio map), on the same labels.
        for arm, init, estimator in (("scratch", None, "net"), ("finetune", sim_checkpoint, "net"),
                                     ("radio_map", None, "radio-map")):
            start = time.perf_counter()
            _, report = _train_eval(ctx, subset, real, real_epochs, fold, init_from=init, estimator=estimator)
            record(arm, fraction, report, time.perf_counter() - start)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (over folds) of each arm and fraction's median error."""
    groups: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["arm"], row["fraction"]), []).append(row)
    table = []
    for (arm, fraction), members in sorted(groups.items(), key=lambda kv: (kv[0][1] or 0.0, kv[0][0])):
        medians = [m["median_error_m"] for m in members]
        centroid = [m["centroid_median_m"] for m in members]
        table.append({"arm": arm, "fraction": fraction, "folds": len(members),
                      "median_error_m_mean": round(statistics.fmean(medians), 1),
                      "median_error_m_std": round(statistics.stdev(medians), 1) if len(medians) > 1 else 0.0,
                      "centroid_median_m_mean": round(statistics.fmean(centroid), 1)})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("powder_json", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--home", type=Path, default=None, help="HEIMDALL_HOME (default: a temporary directory)")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--sim-samples", type=int, default=20_000)
    parser.add_argument("--sim-epochs", type=int, default=12)
    parser.add_argument("--real-epochs", type=int, default=30)
    args = parser.parse_args()

    from heimdall.pipelines import open_context
    from heimdall.settings import Settings

    home = args.home or Path(tempfile.mkdtemp(prefix="sim2real-home-"))
    ctx = open_context(Settings(home=home))
    rows: list[dict[str, Any]] = []
    for fold in args.folds:
        rows += run_fold(ctx, args.powder_json, fold, args.fractions, args.sim_samples, args.sim_epochs, args.real_epochs,
                         lambda line: print(line, flush=True))
        if args.out:
            args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                            "summary": summarise(rows)}, indent=2))
    for line in summarise(rows):
        print(json.dumps(line))


if __name__ == "__main__":
    main()
