"""Building a receiver network from measured rows, where many receiver ids share a place.

Crowd-sourced files list hundreds of receiver ids at a handful of positions (a reported
150 KB CSV: 1,957 ids over 7 positions). The importer moves ids that share a position
apart in steps of `COLLISION_NUDGE_M`; an earlier version did so in n^3 time (400 ids:
12.7 s; the 1,957-id file: killed after 10 minutes). Target: each case under 1 s.

Cases: 1,000 ids at one position; 1,957 ids over 7 positions; the separation check of a
3,000-receiver network. Medians of `--repeats` runs, in seconds.

    PYTHONPATH=src python benchmarks/network_import.py [--repeats 5]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from heimdall.data.measured import network_from_measurements
from heimdall.data.measurements import MeasurementTable
from heimdall.network import Receiver, ReceiverNetwork
from heimdall.pipelines.bench import median_time_s

TARGET_S = 1.0
FREQUENCY_HZ = 462.7e6


def crowd_table(lat_deg: np.ndarray, lon_deg: np.ndarray) -> MeasurementTable:
    """One sample heard by one receiver id per (lat, lon) row, every id distinct, through the
    validator every imported file goes through."""
    m = len(lat_deg)
    columns = {"rx_lat": np.asarray(lat_deg, dtype=np.float64), "rx_lon": np.asarray(lon_deg, dtype=np.float64),
               "rss_dbm": np.full(m, -60.0), "tx_lat": np.full(m, 40.76), "tx_lon": np.full(m, -111.84)}
    ids = np.array([f"id-{i:05d}" for i in range(m)], dtype=object)
    return MeasurementTable.from_columns("crowd.csv", np.array(["s0"] * m, dtype=object), ids, columns)


def cases(rng: np.random.Generator) -> dict[str, tuple[object, int]]:
    """name -> (a call that builds the network, the receivers it must hold)."""
    one_place = crowd_table(np.full(1000, 40.76), np.full(1000, -111.84))
    spots = np.column_stack([40.76 + 0.001 * np.arange(7), np.full(7, -111.84)])
    pick = rng.integers(0, 7, 1957)
    seven_places = crowd_table(spots[pick, 0], spots[pick, 1])
    receivers = tuple(Receiver(f"r{i}", f"r{i}", 40.0 + 0.001 * i, -111.0) for i in range(3000))
    return {
        "ids_1000_at_one_position": (lambda: network_from_measurements(one_place, "crowd", FREQUENCY_HZ), 1000),
        "ids_1957_over_7_positions": (lambda: network_from_measurements(seven_places, "crowd", FREQUENCY_HZ), 1957),
        "separation_check_3000_receivers": (lambda: ReceiverNetwork("big", receivers), 3000),
    }


def run(repeats: int, seed: int = 0) -> dict[str, object]:
    """Median seconds per case, each checked to build the whole network first."""
    result: dict[str, object] = {"target_s": TARGET_S, "repeats": repeats}
    for name, (build, expected) in cases(np.random.default_rng(seed)).items():
        size = len(build())  # type: ignore[operator]
        if size != expected:
            raise SystemExit(f"{name}: {size} receivers built, {expected} expected")
        seconds = median_time_s(build, repeats=repeats)  # type: ignore[arg-type]
        result[f"{name}_s"] = round(seconds, 4)
        result[f"{name}_within_target"] = seconds < TARGET_S
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    # The importer warns once per moved id: thousands of lines per run, none of them news here.
    logging.getLogger("heimdall").setLevel(logging.ERROR)
    print(json.dumps(run(parser.parse_args().repeats)))


if __name__ == "__main__":
    main()
