"""Fixed transmitters heard again across a city: does the radio map land on the place, as kNN does?

A grid posterior is only as fine as its cells (90 cells over 12 km are 133 m wide); kNN
with k = 1 puts a transmitter heard again at a place exactly on that place. This script
simulates such a network and compares the default fit (`fit_radio_map`, fingerprint points
included) with kNN on random folds: 37 gateways over 12 km, 400 fixed places heard 8 times
each plus 300 transmissions from anywhere, a log-distance law (37.6 dB/decade) with
per-gateway offsets, a repeatable shadowing field per gateway (8 dB, correlation ~150 m),
1.5 dB of transmit-power noise and 1 dB of reading noise; a gateway hears a transmission
above -125 dB (and the strongest one always), and the file lists only gateways that heard.

    PYTHONPATH=src python benchmarks/repeated_places.py [--seed 0] [--folds 5] [--fold-limit 2]

Prints one line per fold (kNN and model median error, fit seconds, the fitted point mass)
and one JSON object with them all.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from heimdall.data.layout import SampleArrays
from heimdall.evaluation.crossval import make_folds
from heimdall.evaluation.knn import choose_k, fit_knn
from heimdall.training.radio_map_fit import fit_radio_map

EXTENT_M = 12000.0
GATEWAYS = 37


def _shadowing_db(rng: np.random.Generator, points_m: np.ndarray, waves: int = 150, corr_m: float = 150.0,
                  sd_db: float = 8.0) -> np.ndarray:
    """A random smooth field (sum of plane waves) at `points_m` [P,2], [P] dB."""
    k = rng.normal(0.0, 1.0 / corr_m, size=(waves, 2))
    phase = rng.uniform(0.0, 2 * np.pi, waves)
    return sd_db * np.sqrt(2.0 / waves) * np.cos(points_m @ k.T + phase).sum(axis=1)


def campaign(rng: np.random.Generator, places: int = 400, per_place: int = 8, roaming: int = 300) -> SampleArrays:
    """The simulated network of the module docstring, one sample per transmission."""
    gateway_m = rng.uniform(0.0, EXTENT_M, size=(GATEWAYS, 2))
    place_m = rng.uniform(0.0, EXTENT_M, size=(places, 2))
    tx_m = np.concatenate([np.repeat(place_m, per_place, axis=0), rng.uniform(0.0, EXTENT_M, size=(roaming, 2))])
    n = len(tx_m)
    offset_db = rng.normal(0.0, 4.0, GATEWAYS)
    distance_m = np.maximum(np.linalg.norm(gateway_m[None] - tx_m[:, None], axis=2), 10.0)
    shadowing = np.stack([_shadowing_db(rng, tx_m) for _ in range(GATEWAYS)], axis=1)
    rss = (14.0 + offset_db - 128.1 - 37.6 * np.log10(distance_m / 1000.0) + shadowing
           + rng.normal(0.0, 1.5, (n, 1)) + rng.normal(0.0, 1.0, distance_m.shape))
    heard = rss > -125.0
    heard[np.arange(n), np.argmax(rss, axis=1)] = True
    return SampleArrays.from_fixed_receivers(gateway_m, tx_m, np.where(heard, rss, np.nan), heard, present=heard)


def _model_positions(net: torch.nn.Module, samples: SampleArrays) -> np.ndarray:
    parts = []
    with torch.no_grad():
        for start in range(0, len(samples), 32):
            part = samples.select(np.arange(start, min(start + 32, len(samples))))
            parts.append(net(
                torch.from_numpy(part.rx_position_m), torch.from_numpy(part.rx_id),
                torch.from_numpy(np.where(part.heard, part.rss_dbm, 0.0).astype(np.float32)),
                torch.from_numpy(part.heard), torch.from_numpy(part.present),
            )[0].double().numpy())
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-limit", type=int, default=2)
    args = parser.parse_args()
    samples = campaign(np.random.default_rng(args.seed))
    fold_of = make_folds("random", args.folds, args.seed, samples.tx_position_m)
    rows = []
    for fold in range(min(args.fold_limit, args.folds)):
        train, test = samples.select(fold_of != fold), samples.select(fold_of == fold)
        truth = test.tx_position_m.astype(np.float64)
        is_val = np.zeros(len(train), bool)
        is_val[np.random.default_rng(args.seed).permutation(len(train))[: len(train) * 15 // 100]] = True
        k = choose_k(fit_knn(train.select(~is_val), GATEWAYS), train.select(is_val))
        knn_m = float(np.nanmedian(np.linalg.norm(fit_knn(train, GATEWAYS).predict(test, k) - truth, axis=1)))
        start = time.perf_counter()
        fit = fit_radio_map(train, GATEWAYS, seed=args.seed)
        fit_s = time.perf_counter() - start
        model_m = float(np.median(np.linalg.norm(_model_positions(fit.net, test) - truth, axis=1)))
        row = {"fold": fold, "knn_k": k, "knn_median_m": knn_m, "model_median_m": model_m, "fit_s": fit_s,
               "point_mass": fit.hyperparameters.fingerprint_point_mass}
        print(f"fold {fold}: kNN (k={k}) {knn_m:.1f} m, model {model_m:.1f} m, fit {fit_s:.0f} s, "
              f"point mass {row['point_mass']:g}", flush=True)
        rows.append(row)
    print(json.dumps({"seed": args.seed, "folds": rows}))


if __name__ == "__main__":
    main()
