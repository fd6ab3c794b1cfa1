"""Time the default training of a measured dataset: the radio-map fit, at a campaign's size.

Issue 16's target: training with defaults on ~4,000 transmissions x 25 receivers within
5 minutes on the 2-core machine. The fit `heimdall train` runs on a measured dataset is
`fit_radio_map` (cross-fitting, calibration, final fit); this script times it on a
synthetic campaign of that size: 25 fixed receivers over 3 km, log-distance law with
per-receiver offsets, a smooth repeatable shadowing field, 2 dB noise, unknown transmit
power, and receivers that miss weak transmissions (heard only above -110 dB). Every
transmission has a timestamp (one every 10 s), so the fit runs its time-ordered blocks too.
`--days N` spreads the campaign over N days a day apart, each receiver drifting by
N(0, 3^2) dB per day: the fit then also estimates per-day offsets and fits a second map
(`training.session_offsets`), the slowest case.

    PYTHONPATH=src python benchmarks/radio_map_fit.py [--samples 4000] [--receivers 25] [--repeats 3]
        [--rows-only-heard] [--days 1]

Prints one JSON object: each run's seconds and their median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.training.radio_map_fit import fit_radio_map


def campaign(
    samples: int, receivers: int, rng: np.random.Generator, extent_m: float = 3000.0, rows_only_heard: bool = False,
    days: int = 1,
) -> SampleArrays:
    """A synthetic measured campaign (see the module docstring); `rows_only_heard`: as a file
    listing only the receivers that heard (the fit then also decides what a missing one means);
    `days`: consecutive stretches of the campaign a day apart, each with its receivers' drift."""
    rx = rng.uniform(0.0, extent_m, size=(receivers, 2))
    tx = rng.uniform(0.0, extent_m, size=(samples, 2))
    offsets = rng.normal(0.0, 6.0, size=receivers)
    distance = np.maximum(np.linalg.norm(rx[None] - tx[:, None], axis=2), 1.0)
    phase = rng.uniform(0, 2 * np.pi, size=receivers)
    field = 4.0 * np.sin(tx[:, :1] / 170.0 + phase) * np.cos(tx[:, 1:] / 230.0 - phase)
    rss = -30.0 + offsets - 30.0 * np.log10(distance) + field + rng.normal(0, 3, (samples, 1)) + rng.normal(0, 2, distance.shape)
    day = np.arange(samples) * days // samples
    rss = rss + rng.normal(0.0, 3.0 if days > 1 else 0.0, (days, receivers))[day]
    heard = rss > -110.0
    heard[np.arange(samples), np.argmax(rss, axis=1)] = True
    position = np.concatenate([np.broadcast_to(rx[None], (samples, receivers, 2)), np.zeros((samples, receivers, 1))], axis=2)
    return SampleArrays(
        sample_id=np.arange(samples, dtype=np.int64),
        rx_position_m=position.astype(np.float32),
        rx_id=np.broadcast_to(np.arange(receivers), (samples, receivers)).copy(),
        rss_dbm=np.where(heard, rss, np.nan).astype(np.float32),
        snr_db=np.full((samples, receivers), np.nan, dtype=np.float32),
        heard=heard,
        present=heard.copy() if rows_only_heard else np.ones((samples, receivers), dtype=bool),
        tx_position_m=tx.astype(np.float32),
        tx_lat_deg=np.full(samples, np.nan),
        tx_lon_deg=np.full(samples, np.nan),
        tx_power_dbm=np.full(samples, np.nan, dtype=np.float32),
        split=np.zeros(samples, dtype=np.int8),
        timestamp_s=1.65e9 + 86_400.0 * day + 10.0 * (np.arange(samples) - np.searchsorted(day, day)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--receivers", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows-only-heard", action="store_true",
                        help="leave out the rows of receivers that heard nothing")
    parser.add_argument("--days", type=int, default=1, help="days the campaign is spread over (drifting receivers)")
    args = parser.parse_args()
    samples = campaign(args.samples, args.receivers, np.random.default_rng(0), rows_only_heard=args.rows_only_heard,
                       days=args.days)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fit_radio_map(samples, args.receivers, seed=0)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"samples": args.samples, "receivers": args.receivers, "rows_only_heard": args.rows_only_heard,
                      "days": args.days, "fit_s": seconds,
                      "median_fit_s": statistics.median(seconds)}))


if __name__ == "__main__":
    main()
