"""Held-out log terms of a fitted radio map and the posteriors the fit scores with them.

The cross-fitting in `training.radio_map_fit` evaluates the map's grid likelihood and the
fingerprint densities of each fold's held-out samples once, then scores every fingerprint,
weight and temperature setting from those terms (softmaxes only). Distances in metres,
powers in dB.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from heimdall.data.layout import SampleArrays
from heimdall.models.drift import corrected_rss
from heimdall.models.radio_map import RadioMapNet
from heimdall.models.radio_map_candidates import (
    GEOMETRIC_MEDIAN_CANDIDATES,
    geometric_median,
)

__all__ = [
    "FINGERPRINT_BANDWIDTHS_DB", "FINGERPRINT_BACKGROUNDS", "FINGERPRINT_POINT_MASSES", "FINGERPRINT_WEIGHTS",
    "TEMPERATURES", "HeldOut", "chunk_rows", "grid_log_score", "held_out_terms", "posterior_answer",
    "posterior_moments",
    "second_pass_terms",
]

FINGERPRINT_BANDWIDTHS_DB = (1.0, 2.0, 4.0)
FINGERPRINT_BACKGROUNDS = (1.0e-3, 1.0e-2)
#: Masses rho of the fingerprint points tried (`models.radio_map.with_fingerprint_points`);
#: 0 first: grid points only. The large ones let a repeated place win over its grid cell.
FINGERPRINT_POINT_MASSES = (0.0, 1.0, 10.0, 100.0, 1.0e3, 1.0e4)
#: Fingerprint weights and posterior temperatures tried.
FINGERPRINT_WEIGHTS = (0.5, 1.0, 2.0, 4.0)
TEMPERATURES = (0.25, 0.5, 1.0, 2.0)
#: Samples per chunk when evaluating the grid likelihood, at most (memory: chunk x G x R floats).
_CHUNK = 32
#: Grid-likelihood elements (samples x grid points x receiver slots) per chunk, at most: the
#: likelihood keeps about ten such [chunk, R, G] tensors alive, so this bounds the fit's
#: working memory near a few hundred MB whatever the number of receivers.
_CHUNK_ELEMENTS = 8_000_000


def chunk_rows(grid_points: int, receiver_slots: int) -> int:
    """Samples per chunk for a [chunk, R, G] likelihood: `_CHUNK`, fewer for wide networks."""
    return int(max(1, min(_CHUNK, _CHUNK_ELEMENTS // max(grid_points * receiver_slots, 1))))


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
    neighbour_cell: torch.Tensor  # [N,k] grid point whose cell holds each fingerprint neighbour
    neighbour_position_m: torch.Tensor  # [N,k,2]
    neighbour_distance_db: torch.Tensor  # [N,k]


def held_out_terms(
    net: RadioMapNet, samples: SampleArrays, shared: HeldOut | None = None,
    keys: tuple[tuple[float, float], ...] | None = None,
) -> HeldOut:
    """Log terms of `samples` under `net`; `shared` reuses the fingerprint terms of a map
    with the same fingerprints and grid (they do not depend on the residual length scale).
    `keys` limits the fingerprint densities to those (bandwidth dB, background) settings
    (default: every one the search tries)."""
    lls, distances, indices = [], [], []
    rows = chunk_rows(len(net.grid_m), samples.rx_id.shape[1])
    with torch.no_grad():
        for start in range(0, len(samples), rows):
            part = samples.select(np.arange(start, min(start + rows, len(samples))))
            rx, rx_id, rss, heard, present = _inputs(part)
            station = net._stations(rx_id)
            any_silent = bool((present & ~heard).any())
            lls.append(net.map_log_likelihood(rx, station, rss, heard, present, any_silent))
            if shared is None:
                d, i = net.fingerprint_neighbours(station, rss, heard, present)
                distances.append(d)
                indices.append(i)
        truth = samples.tx_position_m.astype(np.float64)
        if shared is not None:
            return HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), shared.log_density, shared.nearest_db,
                           shared.neighbour_cell, shared.neighbour_position_m, shared.neighbour_distance_db)
        distance, index = torch.cat(distances), torch.cat(indices)
        position = net.fingerprint_position_m[index]
        density = {}
        for bandwidth, background in keys or itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS):
            parts = [
                net.fingerprint_log_density(distance[s : s + _CHUNK], index[s : s + _CHUNK],
                                            torch.tensor(bandwidth), torch.tensor(background))
                for s in range(0, len(samples), _CHUNK)
            ]
            density[(bandwidth, background)] = torch.cat(parts)
    return HeldOut(truth, net.grid_m, net.log_prior, torch.cat(lls), density, distance[:, 0].double().numpy(),
                   net.cell_of(position), position, distance)


def second_pass_terms(net: RadioMapNet, samples: SampleArrays, key: tuple[float, float]) -> HeldOut:
    """`held_out_terms` of `samples` as the runtime's second pass sees them: each receiver's
    drift re-estimated from `net`'s residuals over `samples` as one batch
    (`models.drift.corrected_rss`) and taken out of its readings. `net` carries the chosen
    fingerprint and temperature settings (`apply_hyperparameters`); the terms hold the
    fingerprint density of its (bandwidth dB, background) `key` only."""
    residuals = []
    rows = chunk_rows(len(net.grid_m), samples.rx_id.shape[1])
    with torch.no_grad():
        for start in range(0, len(samples), rows):
            part = samples.select(np.arange(start, min(start + rows, len(samples))))
            residuals.append(net(*_inputs(part))[2].double().numpy())
    rss = corrected_rss(samples.rx_id, samples.heard, samples.rss_dbm, np.concatenate(residuals),
                        net.config.num_stations)
    rss_dbm = np.where(samples.heard, rss, samples.rss_dbm).astype(samples.rss_dbm.dtype)
    return held_out_terms(net, dataclasses.replace(samples, rss_dbm=rss_dbm), keys=(key,))


def _scaled(
    held: HeldOut, key: tuple[float, float], weight: float, temperature: float, point_mass: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log-likelihood + weight x temperature x log-density, before the temperature and the
    prior: over the grid [N,G], and over the fingerprint points [N,k] (None when
    `point_mass` <= 0), as `models.radio_map.with_fingerprint_points` builds them."""
    grid = held.log_likelihood + weight * temperature * held.log_density[key]
    if point_mass <= 0:
        return grid, None
    point_density = math.log(point_mass) - 0.5 * (held.neighbour_distance_db / key[0]) ** 2
    return grid, held.log_likelihood.gather(1, held.neighbour_cell) + weight * temperature * point_density


def _weights(held: HeldOut, grid: torch.Tensor, points: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Posterior weights [N,G] or [N,G+k] at `temperature`."""
    logits = grid / temperature + held.log_prior
    if points is None:
        return torch.softmax(logits, dim=1)
    return torch.softmax(torch.cat([logits, points / temperature + held.log_prior[held.neighbour_cell]], dim=1), dim=1)


def _answer(held: HeldOut, weights: torch.Tensor) -> torch.Tensor:
    """[N,2] geometric median of the candidates under `weights` (m), as `RadioMapNet.summarize`
    answers: Weiszfeld steps from the weighted mean."""
    g = held.grid_m.shape[0]
    mean = weights[:, :g] @ held.grid_m
    if weights.shape[1] > g:
        mean = mean + torch.einsum("nk,nki->ni", weights[:, g:], held.neighbour_position_m)
    # The candidates the steps use, looked up by index: no [N, G+k, 2] table of locations.
    top, index = torch.topk(weights, min(GEOMETRIC_MEDIAN_CANDIDATES, weights.shape[1]), dim=1)
    location = held.grid_m[index.clamp(max=g - 1)]
    if weights.shape[1] > g:
        point = (index - g).clamp(min=0)[..., None].expand(-1, -1, 2)
        location = torch.where((index >= g)[..., None], held.neighbour_position_m.gather(1, point), location)
    return geometric_median(top, location, mean)


def grid_log_score(held: HeldOut, key: tuple[float, float], weight: float, temperature: float) -> np.ndarray:
    """[N,G] float32: each held-out sample's log-score of every grid point as `RadioMapNet`'s
    `grid_log_score` output gives it (log-likelihood plus `weight` x `temperature` x the
    fingerprint log-density of `key`; no prior)."""
    return _scaled(held, key, weight, temperature, 0.0)[0].float().numpy()


def posterior_answer(
    held: HeldOut, key: tuple[float, float], weight: float, temperature: float, point_mass: float = 0.0
) -> np.ndarray:
    """[N,2] answers (m, the posterior's geometric median) at fingerprint `key` (bandwidth dB,
    background), `weight`, `temperature` and fingerprint point mass (`RadioMapNet.summarize`'s)."""
    grid, points = _scaled(held, key, weight, temperature, point_mass)
    return _answer(held, _weights(held, grid, points, temperature)).double().numpy()


def posterior_moments(
    held: HeldOut, key: tuple[float, float], weight: float, temperature: float, covariance_temperature: float,
    point_mass: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """([N,2] answers (m, `posterior_answer`), [N,2,2] covariances about them (m^2) at
    `covariance_temperature`)."""
    grid, points = _scaled(held, key, weight, temperature, point_mass)
    answer = _answer(held, _weights(held, grid, points, temperature))
    wide = _weights(held, grid, points, covariance_temperature)
    g = held.grid_m.shape[0]
    spread = held.grid_m[None] - answer[:, None, :]
    covariance = torch.einsum("ng,ngi,ngj->nij", wide[:, :g], spread, spread)
    if points is not None:
        spread = held.neighbour_position_m - answer[:, None, :]
        covariance = covariance + torch.einsum("nk,nki,nkj->nij", wide[:, g:], spread, spread)
    return answer.double().numpy(), covariance.double().numpy()
