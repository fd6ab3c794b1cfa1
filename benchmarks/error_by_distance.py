"""Where the default model's errors and ellipses go wrong on measured data: by how close the
campaign came to each truth.

For each mode (random or spatially disjoint grid folds), seed and fold, the default model
is fitted in-process on the fold's training rows and predicts its test rows as the runtime
does (`model_direct` of `benchmarks/real_data.py`: two passes with the station correction).
Each test row is then binned by the distance from its true position to the nearest
training transmitter, a quantity no query can see; per mode and bin the script reports the
rows, the median error, the median sigma (the geometric mean of the ellipse's semi-axes)
and the 1- and 2-sigma coverage. A calibrated model would cover 39.3% / 86.5% in every bin;
docs/REAL_DATA.md shows the April table.

    PYTHONPATH=src .venv/bin/python benchmarks/error_by_distance.py FILE [--format long|powder-json]
        [--folds 5] [--seeds 0] [--modes random,grid] [--edges 10,25,50,100] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_data.py beside this script

from real_data import Campaign, load_campaign, model_direct_fold  # noqa: E402

from heimdall.evaluation.by_distance import bin_by_distance  # noqa: E402
from heimdall.evaluation.crossval import ellipse_mahalanobis_sq, make_folds  # noqa: E402
from heimdall.geo import ReferencePoint, ground_to_local  # noqa: E402


def bin_rows(
    distance_m: np.ndarray, error_m: np.ndarray, sigma_m: np.ndarray, mahalanobis_sq: np.ndarray,
    edges_m: tuple[float, ...],
) -> list[dict[str, Any]]:
    """Per distance bin [0, e1), ..., [e_last, inf): rows, median error and sigma (m), 1- and
    2-sigma coverage (`heimdall.evaluation.by_distance.bin_by_distance`); empty bins left out."""
    return bin_by_distance(distance_m, error_m, mahalanobis_sq, edges_m, sigma_m)


def fold_rows(campaign: Campaign, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, np.ndarray]:
    """Per test row: distance (m) from the truth to the nearest training transmitter, error (m),
    sigma (m) and squared Mahalanobis radius of the truth under the model's ellipse."""
    predicted = model_direct_fold(campaign, train_index, test_index)
    truth_lat, truth_lon = campaign.samples.tx_lat_deg[test_index], campaign.samples.tx_lon_deg[test_index]
    ellipse = predicted["ellipse"]
    east, north = np.empty(len(test_index)), np.empty(len(test_index))
    for i in range(len(test_index)):
        at_prediction = ReferencePoint(float(predicted["lat"][i]), float(predicted["lon"][i]))
        east[i], north[i] = ground_to_local(truth_lat[i], truth_lon[i], at_prediction)
    m2 = ellipse_mahalanobis_sq(east, north, ellipse["sigma_major_m"], ellipse["sigma_minor_m"],
                                ellipse["orientation_deg"])
    positions = campaign.samples.tx_position_m.astype(np.float64)
    distance, _ = cKDTree(positions[train_index]).query(positions[test_index])
    return {"distance_m": distance, "error_m": np.hypot(east, north),
            "sigma_m": np.sqrt(ellipse["sigma_major_m"] * ellipse["sigma_minor_m"]), "mahalanobis_sq": m2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", default="long", choices=("long", "powder-json"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--modes", default="random,grid")
    parser.add_argument("--edges", default="10,25,50,100", help="bin edges (m), increasing")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    campaign = load_campaign(args.file, args.format)
    edges = tuple(float(e) for e in args.edges.split(","))
    result: dict[str, Any] = {}
    for mode in args.modes.split(","):
        parts: list[dict[str, np.ndarray]] = []
        for seed in (int(s) for s in args.seeds.split(",")):
            fold_of = make_folds(mode, args.folds, seed, campaign.samples.tx_position_m, campaign.timestamps)
            for fold in range(args.folds):
                parts.append(fold_rows(campaign, np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)))
        joined = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        result[mode] = bin_rows(joined["distance_m"], joined["error_m"], joined["sigma_m"], joined["mahalanobis_sq"],
                                edges)
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
