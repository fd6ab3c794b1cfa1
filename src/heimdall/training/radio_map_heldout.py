"""Held-out log terms of a fitted radio map and the posteriors the fit scores with them.

The cross-fitting in `training.radio_map_fit` evaluates the map's grid likelihood and the
fingerprint densities of each fold's held-out samples once, then scores every fingerprint,
weight and temperature setting from those terms (softmaxes only). Distances in metres,
powers in dB.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from heimdall.data.layout import SampleArrays
from heimdall.models.radio_map import RadioMapNet

__all__ = [
    "FINGERPRINT_BANDWIDTHS_DB", "FINGERPRINT_BACKGROUNDS", "HeldOut", "held_out_terms", "posterior_mean",
    "posterior_moments",
]

FINGERPRINT_BANDWIDTHS_DB = (1.0, 2.0, 4.0)
FINGERPRINT_BACKGROUNDS = (1.0e-3, 1.0e-2)
#: Samples per chunk when evaluating the grid likelihood (memory: chunk x G x R floats).
_CHUNK = 32


def _inputs(samples: SampleArrays) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(samples.rx_position_m.astype(np.float32)),
        torch.from_numpy(samples.rx_id.astype(np.int64)),
        torch.from_numpy(np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32)),
        torch.from_numpy(samples.heard.astype(bool)),
        torch.from_numpy(samples.present.astype(bool)),
    )


@dataclass
class HeldOut:
    """Log terms of held-out samples under one fold's map, per fingerprint setting."""

    truth_m: np.ndarray  # [N,2]
    grid_m: torch.Tensor
    log_prior: torch.Tensor
    log_likelihood: torch.Tensor  # [N,G]
    log_density: dict[tuple[float, float], torch.Tensor]  # (bandwidth, background) -> [N,G]
    nearest_db: np.ndarray  # [N] distance to the nearest training fingerprint


def held_out_terms(net: RadioMapNet, samples: SampleArrays, shared: HeldOut | None = None) -> HeldOut:
    """Log terms of `samples` under `net`; `density` reuses the fingerprint terms of a map
    with the same fingerprints and grid (they do not depend on the residual length scale)."""
    lls, distances, indices = [], [], []
    with torch.no_grad():
        for start in range(0, len(samples), _CHUNK):
            part = samples.select(np.arange(start, min(start + _CHUNK, len(samples))))
            rx, rx_id, rss, heard, present = _inputs(part)
            station = net._stations(rx_id)
            lls.append(net.map_log_likelihood(rx, station, rss, heard, present))
            if shared is None:
                d, i = net.fingerprint_neighbours(station, rss, heard, present)
                distances.append(d)
                indices.append(i)
        truth = samples.tx_position_m.astype(np.float64)
        if shared is not None:
            return HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), shared.log_density, shared.nearest_db)
        distance, index = torch.cat(distances), torch.cat(indices)
        density = {}
        for bandwidth, background in itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS):
            parts = [
                net.fingerprint_log_density(distance[s : s + _CHUNK], index[s : s + _CHUNK],
                                            torch.tensor(bandwidth), torch.tensor(background))
                for s in range(0, len(samples), _CHUNK)
            ]
            density[(bandwidth, background)] = torch.cat(parts)
    return HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), density, distance[:, 0].double().numpy())


def posterior_mean(held: HeldOut, key: tuple[float, float], weight: float, temperature: float) -> np.ndarray:
    scaled = (held.log_likelihood + weight * temperature * held.log_density[key]) / temperature
    return (torch.softmax(scaled + held.log_prior, dim=1) @ held.grid_m).double().numpy()


def posterior_moments(
    held: HeldOut, key: tuple[float, float], weight: float, temperature: float, covariance_temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    scaled = held.log_likelihood + weight * temperature * held.log_density[key]
    w = torch.softmax(scaled / temperature + held.log_prior, dim=1)
    mean = w @ held.grid_m
    wide = torch.softmax(scaled / covariance_temperature + held.log_prior, dim=1)
    spread = held.grid_m[None] - mean[:, None, :]
    covariance = torch.einsum("bg,bgi,bgj->bij", wide, spread, spread)
    return mean.double().numpy(), covariance.double().numpy()
