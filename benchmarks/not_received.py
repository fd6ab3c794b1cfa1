"""How a file's "not received" rows should read: the radio map against kNN on a sparse network.

A synthetic LoRaWAN-like campaign: 37 fixed gateways over 6 km, 3,000 transmissions along
30 vehicle routes, log-distance law (exponent 3.5) with per-gateway offsets, a smooth
repeatable shadowing field (6 dB), unknown transmit power, 3 dB noise, and a gateway hears
a transmission only above a sensitivity (so each hears 8-13 %). The same campaign is given
to the fit three ways:

- `marker`: every gateway has a row; the ones that heard nothing read -200 dBm as a power
  (what the importer did before it read readings below -174 dBm as "heard nothing");
- `heard_nothing`: the same rows, "listened, heard nothing" (empty `rss_dbm`, or the marker
  as the importer reads it now);
- `absent`: rows only for the gateways that heard (the rest are left out of the file); the
  fit decides on held-out folds whether a missing fixed gateway heard nothing.

Each way: one random split (600 test transmissions), `fit_radio_map` on the rest and kNN
(k chosen on a seventh of the training rows); median errors (m) and the fit's seconds.

    PYTHONPATH=src python benchmarks/not_received.py [--seeds 1,2] [--sensitivity-dbm=-132,-136]
        [--samples 3000] [--ways marker,heard_nothing,absent]

Prints one JSON object per (seed, sensitivity). With `--write-csv PATH` it writes the first
seed's campaign instead, as a user's file: long CSV, a row per gateway and transmission (-200
where a gateway heard nothing), the transmissions' timestamps spread over `--days` along their
routes, positions in latitude/longitude. `benchmarks/real_data.py PATH` then runs the product
on a city network's campaign at the size asked for (docs/REAL_DATA.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from heimdall.data.layout import SampleArrays
from heimdall.evaluation.knn import choose_k, fit_knn
from heimdall.geo import ReferencePoint, local_to_ground
from heimdall.training.radio_map_fit import fit_radio_map

GATEWAYS = 37
EXTENT_M = 6000.0
ROUTES = 30
TEST_SAMPLES = 600
MARKER_DBM = -200.0
#: The campaign's path-loss exponent (log-distance law).
EXPONENT = 3.5
WAYS = ("marker", "heard_nothing", "absent")
#: Where the written campaign's local east/north origin lies (a city's centre).
REFERENCE = ReferencePoint(51.2, 4.4)


def campaign(rng: np.random.Generator, samples: int, sensitivity_dbm: float) -> tuple[np.ndarray, ...]:
    """(gateways [S,2] m, transmitters [N,2] m, rss [N,S] dBm, heard [N,S]); every kept
    transmission was heard by at least one gateway."""
    return campaign_with_field(rng, samples, sensitivity_dbm)[:4]


def shadowing_db(rng: np.random.Generator, tx: np.ndarray, gateways: int) -> np.ndarray:
    """[N, gateways] dB: a smooth repeatable field per gateway over the transmitters' places
    (random Fourier features, correlation length ~300 m, sd 6 dB)."""
    features = 40
    frequency = rng.normal(0.0, 1.0 / 300.0, (gateways, features, 2))
    phase = rng.uniform(0.0, 2 * np.pi, (gateways, features))
    return 6.0 * np.sqrt(2.0 / features) * np.cos(np.einsum("nd,skd->nsk", tx, frequency) + phase).sum(2)


def campaign_with_field(rng: np.random.Generator, samples: int, sensitivity_dbm: float) -> tuple[np.ndarray, ...]:
    """`campaign` and, last, each kept reading's shadowing [N,S] dB (the same draws)."""
    gateways = rng.uniform(0.0, EXTENT_M, (GATEWAYS, 2))
    points = []
    for _ in range(ROUTES):
        position, heading = rng.uniform(500.0, EXTENT_M - 500.0, 2), rng.uniform(0.0, 2 * np.pi)
        for _ in range(samples // ROUTES):
            heading += rng.normal(0.0, 0.3)
            position = np.clip(position + 40.0 * np.array([np.cos(heading), np.sin(heading)]), 0.0, EXTENT_M)
            points.append(position)
    tx = np.array(points)
    field = shadowing_db(rng, tx, GATEWAYS)
    distance = np.maximum(np.linalg.norm(gateways[None] - tx[:, None], axis=2), 10.0)
    offsets = rng.normal(0.0, 3.0, GATEWAYS)
    rss = (-30.0 + offsets - 10.0 * EXPONENT * np.log10(distance) + field
           + rng.normal(0.0, 2.0, (len(tx), 1)) + rng.normal(0.0, 3.0, (len(tx), GATEWAYS)))
    heard = rss > sensitivity_dbm
    kept = heard.any(axis=1)
    return gateways, tx[kept], rss[kept], heard[kept], field[kept]


def as_samples(gateways: np.ndarray, tx: np.ndarray, rss: np.ndarray, heard: np.ndarray, way: str) -> SampleArrays:
    """The campaign as the fit sees it when the file is written `way`."""
    every = np.ones_like(heard)
    if way == "marker":
        rss, heard_mask, present = np.where(heard, rss, MARKER_DBM), every, every
    elif way == "heard_nothing":
        heard_mask, present = heard, every
    else:
        heard_mask, present = heard, heard
    return SampleArrays.from_fixed_receivers(gateways, tx, rss, heard_mask, present=present)


def write_csv(path: Path, seed: int, samples: int, sensitivity_dbm: float, days: float = 90.0) -> int:
    """Write the campaign of `seed` as a long CSV a user would import (module docstring);
    returns the number of transmissions written."""
    rng = np.random.default_rng(seed)
    gateways, tx, rss, heard = campaign(rng, samples, sensitivity_dbm)
    n, s = rss.shape
    # Transmissions follow their routes in time order, sent at random moments over the days.
    seconds = np.sort(rng.uniform(0.0, days * 86_400.0, n)).astype(np.int64)
    timestamp = (np.datetime64("2017-11-01T00:00:00") + seconds.astype("timedelta64[s]")).astype(str)
    rx_lat, rx_lon = local_to_ground(gateways[:, 0], gateways[:, 1], REFERENCE)
    tx_lat, tx_lon = local_to_ground(tx[:, 0], tx[:, 1], REFERENCE)
    table = pd.DataFrame({
        "sample_id": np.repeat(np.arange(n), s), "timestamp": np.repeat(timestamp, s),
        "receiver_id": np.tile([f"gw{i:02d}" for i in range(s)], n),
        "rx_lat": np.tile(rx_lat, n), "rx_lon": np.tile(rx_lon, n),
        "rss_dbm": np.where(heard, rss, MARKER_DBM).round(1).ravel(), "frequency_hz": 868.1e6,
        "tx_lat": np.repeat(tx_lat, s), "tx_lon": np.repeat(tx_lon, s),
    })
    table.to_csv(path, index=False)
    return n


def predict(net: torch.nn.Module, samples: SampleArrays) -> np.ndarray:
    """Positions [N,2] m from the fitted module, 32 samples at a time."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(samples), 32):
            part = samples.select(np.arange(start, min(start + 32, len(samples))))
            rss = np.where(part.heard, part.rss_dbm, 0.0).astype(np.float32)
            parts.append(net(torch.from_numpy(part.rx_position_m), torch.from_numpy(part.rx_id), torch.from_numpy(rss),
                             torch.from_numpy(part.heard), torch.from_numpy(part.present))[0])
    return torch.cat(parts).double().numpy()


def run(seed: int, sensitivity_dbm: float, samples: int = 3000, ways: tuple[str, ...] = WAYS) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    gateways, tx, rss, heard = campaign(rng, samples, sensitivity_dbm)
    order = rng.permutation(len(tx))
    test_index, train_index = order[:TEST_SAMPLES], order[TEST_SAMPLES:]
    result: dict[str, object] = {"seed": seed, "sensitivity_dbm": sensitivity_dbm, "samples": len(tx),
                                 "heard_fraction": round(float(heard.mean()), 3)}
    for way in ways:
        data = as_samples(gateways, tx, rss, heard, way)
        train, test = data.select(train_index), data.select(test_index)
        is_val = np.zeros(len(train), dtype=bool)
        is_val[np.random.default_rng(seed).permutation(len(train))[: len(train) // 7]] = True
        k = choose_k(fit_knn(train.select(~is_val), GATEWAYS), train.select(is_val))
        knn_error = np.linalg.norm(fit_knn(train, GATEWAYS).predict(test, k) - test.tx_position_m, axis=1)
        start = time.perf_counter()
        net = fit_radio_map(train, GATEWAYS, seed=0).net
        fit_s = time.perf_counter() - start
        model_error = np.linalg.norm(predict(net, test) - test.tx_position_m, axis=1)
        # kNN leaves a transmission sharing too few gateways with every fingerprint unplaced (NaN).
        result[way] = {"model_median_m": round(float(np.median(model_error)), 1),
                       "knn_median_m": round(float(np.median(np.where(np.isfinite(knn_error), knn_error, np.inf))), 1),
                       "knn_k": k, "fit_s": round(fit_s, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sensitivity-dbm", default="-132,-136")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--write-csv", type=Path, default=None, help="write the first seed's campaign here and stop")
    parser.add_argument("--days", type=float, default=90.0, help="days the written campaign's timestamps span")
    args = parser.parse_args(argv)
    ways = tuple(w for w in args.ways.split(",") if w)
    if not ways or set(ways) - set(WAYS):
        parser.error(f"--ways must be a comma-separated subset of {','.join(WAYS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    sensitivities = [float(s) for s in args.sensitivity_dbm.split(",")]
    if args.write_csv is not None:
        written = write_csv(args.write_csv, seeds[0], args.samples, sensitivities[0], args.days)
        print(json.dumps({"csv": str(args.write_csv), "transmissions": written, "gateways": GATEWAYS}))
        return 0
    for seed, sensitivity in zip(seeds, sensitivities, strict=True):
        print(json.dumps(run(seed, sensitivity, args.samples, ways)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
