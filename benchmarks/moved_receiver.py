"""What a gateway moved since training costs the radio map, and which reading of it is best.

The simulated city network of `benchmarks/not_received.py` (37 fixed gateways over 6 km,
log-distance law with per-gateway offsets, a smooth 6 dB shadowing field per gateway, 3 dB
noise, unknown transmit power, a sensitivity below which a gateway hears nothing). A radio
map is fitted (`fit_radio_map`) on all but 600 transmissions. Then the gateway that heard the
most training transmissions moves `--distances-m` in a random direction: its readings of
the 600 test transmissions become those of its new place (the path-loss law at the new
distance and a fresh shadowing field; offset, noise and transmit power as they were), and it
hears what clears the sensitivity there. The affected test transmissions (heard by that
gateway before or after the move) are localised four ways, as the runtime does (a second
pass with each receiver's drift re-estimated from the batch, `models.drift`):

- `unmoved`: the readings as they were (what the map can do at best);
- `kept`: the gateway keeps its id at its new position (what `localize` does, with the
  `receiver_moved_since_training` warning);
- `unknown`: its readings count as a receiver the model does not know (the path-loss law
  with the average offset and the largest variance, no residual map, no fingerprints);
- `retrained`: a map fitted again on the training transmissions as heard after the move
  (what the warning asks for).

    PYTHONPATH=src python benchmarks/moved_receiver.py [--seeds 1,2] [--sensitivity-dbm=-132,-150]
        [--distances-m 100,300,1000] [--samples 3000]

Prints one JSON object per (seed, sensitivity, distance): median error (m) and 1-/2-sigma
coverage of the affected transmissions each way. The sparse setting (-132 dBm: each
gateway hears about a tenth of the transmissions) is where one gateway matters.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from not_received import EXPONENT, GATEWAYS, as_samples, campaign_with_field, shadowing_db  # noqa: E402

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays  # noqa: E402
from heimdall.evaluation.metrics import mahalanobis_sq  # noqa: E402
from heimdall.models.drift import corrected_rss  # noqa: E402
from heimdall.training.radio_map_fit import fit_radio_map  # noqa: E402

TEST_SAMPLES = 600
WAYS = ("unmoved", "kept", "unknown", "retrained")


def moved_readings(
    gateway_m: np.ndarray, new_gateway_m: np.ndarray, tx_m: np.ndarray, rss_dbm: np.ndarray, field_db: np.ndarray,
    new_field_db: np.ndarray,
) -> np.ndarray:
    """[N] dBm: one gateway's readings from its new place: the law at the new distance and the
    new place's shadowing in place of the old ones; offset, noise and transmit power kept."""
    old_m = np.maximum(np.linalg.norm(tx_m - gateway_m, axis=1), 10.0)
    new_m = np.maximum(np.linalg.norm(tx_m - new_gateway_m, axis=1), 10.0)
    return rss_dbm + 10.0 * EXPONENT * np.log10(old_m / new_m) - field_db + new_field_db


def localise(net: torch.nn.Module, samples: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
    """(positions [N,2] m, covariances [N,2,2] m^2), two passes as `Localizer.predict` runs."""

    def run(rss: np.ndarray) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            return net(torch.from_numpy(samples.rx_position_m), torch.from_numpy(samples.rx_id),
                       torch.from_numpy(rss.astype(np.float32)), torch.from_numpy(samples.heard),
                       torch.from_numpy(samples.present))

    rss = np.where(samples.heard, samples.rss_dbm, 0.0)
    _, _, residual, _ = run(rss)
    position, covariance, _, _ = run(corrected_rss(samples.rx_id, samples.heard, rss, residual.double().numpy(),
                                                   GATEWAYS))
    return position.double().numpy(), covariance.double().numpy()


def scores(net: torch.nn.Module, samples: SampleArrays) -> dict[str, float]:
    """Median error (m) and 1-/2-sigma coverage of `samples`."""
    position, covariance = localise(net, samples)
    error = samples.tx_position_m - position
    d2 = mahalanobis_sq(error, covariance)
    return {"median_m": round(float(np.median(np.linalg.norm(error, axis=1))), 1),
            "cover_1sigma": round(float(np.mean(d2 <= 1.0)), 3), "cover_2sigma": round(float(np.mean(d2 <= 4.0)), 3)}


def run(seed: int, sensitivity_dbm: float, distances_m: list[float], samples: int = 3000) -> list[dict[str, object]]:
    """One campaign, one fitted map, each distance: the scores of every way (module docstring)."""
    rng = np.random.default_rng(seed)
    gateways, tx, rss, heard, field = campaign_with_field(rng, samples, sensitivity_dbm)
    order = rng.permutation(len(tx))
    test_index, train_index = order[:TEST_SAMPLES], order[TEST_SAMPLES:]
    data = as_samples(gateways, tx, rss, heard, "heard_nothing")
    net = fit_radio_map(data.select(train_index), GATEWAYS, seed=0).net
    gateway = int(np.argmax(heard[train_index].sum(axis=0)))
    results = []
    for distance_m in distances_m:
        angle = rng.uniform(0.0, 2 * np.pi)
        new_gateways = gateways.copy()
        new_gateways[gateway] += distance_m * np.array([np.cos(angle), np.sin(angle)])
        new_rss = rss.copy()
        new_rss[:, gateway] = moved_readings(gateways[gateway], new_gateways[gateway], tx, rss[:, gateway],
                                             field[:, gateway], shadowing_db(rng, tx, 1)[:, 0])
        new_heard = heard.copy()
        new_heard[:, gateway] = new_rss[:, gateway] > sensitivity_dbm
        moved = as_samples(new_gateways, tx, new_rss, new_heard, "heard_nothing")
        affected = test_index[heard[test_index, gateway] | new_heard[test_index, gateway]]
        unknown = moved.select(affected)
        unknown = dataclasses.replace(unknown, rx_id=np.where(unknown.rx_id == gateway, UNKNOWN_STATION, unknown.rx_id))
        retrained = fit_radio_map(moved.select(train_index), GATEWAYS, seed=0).net
        results.append({
            "seed": seed, "sensitivity_dbm": sensitivity_dbm, "distance_m": distance_m, "gateway": gateway,
            "affected": len(affected), "test": TEST_SAMPLES,
            "unmoved": scores(net, data.select(affected)), "kept": scores(net, moved.select(affected)),
            "unknown": scores(net, unknown), "retrained": scores(retrained, moved.select(affected)),
        })
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sensitivity-dbm", default="-132,-150", help="one per seed")
    parser.add_argument("--distances-m", default="100,300,1000")
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sensitivities = [float(s) for s in args.sensitivity_dbm.split(",")]
    if len(seeds) != len(sensitivities):
        parser.error("give one --sensitivity-dbm per seed")
    distances = [float(d) for d in args.distances_m.split(",")]
    for seed, sensitivity in zip(seeds, sensitivities, strict=True):
        for result in run(seed, sensitivity, distances, args.samples):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
