"""The radio map's candidates and its answer: pure functions on posterior weights over places.

`with_fingerprint_points` joins the grid points and the fingerprint neighbours into one set
of candidates; `geometric_median` turns weights over candidates into the answer (the point
of least expected distance). Used by `RadioMapNet` (and so the ONNX graph) and by the fit's
held-out scoring, so both answer alike. Distances in metres.
"""

from __future__ import annotations

import torch

__all__ = [
    "GEOMETRIC_MEDIAN_CANDIDATES", "GEOMETRIC_MEDIAN_STEPS", "geometric_median", "nearest_fingerprints",
    "with_fingerprint_points",
]

#: Weiszfeld distances are clamped here (m) so a step landing on a candidate stays finite.
_STEP_FLOOR_M = 1.0
#: Fingerprint point mass standing for "none": its points weigh under e^-69 of the grid's.
_NO_POINT_MASS = 1.0e-30
#: Weiszfeld steps from the posterior mean to its geometric median: on the April folds 3
#: steps took 6.1 of the 7.4 m the median gains on random folds, 10 all but 0.2 m.
GEOMETRIC_MEDIAN_STEPS = 10
#: Candidates of most weight the steps use. On seed 0's 10 random and grid April folds 256,
#: 1024 and all (about 6,500) gave the same medians to the metre, 64 moved one fold by 4 m;
#: all of them tripled the fit's time (31 -> 95 s at 4,000 transmissions x 25 receivers).
GEOMETRIC_MEDIAN_CANDIDATES = 256
#: Resolution (dB^2) of the mean-square fingerprint distance when ranking neighbours: far above
#: float32 rounding of the centred sums (~1e-5 dB^2), far below a difference that matters.
_RANK_STEP_DB2 = 1.0e-3
#: Mean-square distances above this (dB^2, a 31.6 dB RMS distance) rank as one: their kernel
#: weight is nil at any bandwidth the fit tries.
_RANK_CAP_DB2 = 1.0e3
#: Resolution (dB) and cap of the mean level difference that orders equally distant neighbours.
_LEVEL_STEP_DB = 0.01
_LEVEL_CAP_DB = 99.0


def geometric_median(
    weights: torch.Tensor, location_m: torch.Tensor, start_m: torch.Tensor, steps: int = GEOMETRIC_MEDIAN_STEPS,
    candidates: int = GEOMETRIC_MEDIAN_CANDIDATES,
) -> torch.Tensor:
    """The point minimising the expected distance sum_c w_c |x - l_c| [B,2] (m), by Weiszfeld
    steps from `start_m` [B,2] over the `candidates` of most weight; `weights` [B,C] (need not
    sum to one), `location_m` [B,C,2] (m).

    The answer that minimises the expected error in metres: where the posterior has a main
    mode and a far minor one, the mean is pulled toward the minor one by its mass times the
    distance; the median is not. Distances are clamped at 1 m so a step that lands on a
    candidate stays finite (and stays there when that candidate holds most of the mass).
    """
    weights, index = torch.topk(weights, min(candidates, weights.shape[1]), dim=1)
    location_m = location_m.gather(1, index[..., None].expand(-1, -1, 2))
    # Steps on offsets from the start: float32 sums of offsets of a few hundred metres keep
    # the precision that sums of kilometre coordinates lose.
    offset = location_m - start_m[:, None, :]
    step = torch.zeros_like(start_m)
    for _ in range(steps):
        distance = ((offset - step[:, None, :]) ** 2).sum(-1).clamp_min(_STEP_FLOOR_M**2).sqrt()
        pull = weights / distance
        step = torch.einsum("bc,bci->bi", pull, offset) / pull.sum(1, keepdim=True)
    return start_m + step


def nearest_fingerprints(
    mean_sq_db2: torch.Tensor, level_db: torch.Tensor, matches: torch.Tensor, k: int
) -> torch.Tensor:
    """Indices [B,k] of the k training fingerprints nearest to each query: by mean-square
    distance `mean_sq_db2` [B,T] (dB^2) rounded to `_RANK_STEP_DB2`, then by the absolute mean
    level difference `level_db` [B,T] (dB), then by index; pairs without `matches` [B,T] last.

    Equal distances are common where a query is heard by one or two receivers: after the mean
    is removed, every fingerprint heard by the same one receiver is at distance 0. Ranked on
    raw float32 distances, which of them make the k depended on rounding noise, so PyTorch and
    the ONNX graph (and two batch sizes) chose different neighbours and answers hundreds of
    metres apart. The rounded key ranks them the same everywhere (in float64, exact for up to
    ~10^5 fingerprints), the most similar level first: blind to the transmit power otherwise,
    the level is the one thing left to tell such neighbours apart.
    """
    steps = torch.round(mean_sq_db2.double().clamp(0.0, _RANK_CAP_DB2) / _RANK_STEP_DB2)
    steps = torch.where(matches, steps, torch.full_like(steps, _RANK_CAP_DB2 / _RANK_STEP_DB2 + 1.0))
    level = torch.round(level_db.double().abs().clamp(max=_LEVEL_CAP_DB) / _LEVEL_STEP_DB)
    count = mean_sq_db2.shape[1]
    order = torch.arange(count, dtype=torch.float64, device=mean_sq_db2.device)
    key = (steps * (_LEVEL_CAP_DB / _LEVEL_STEP_DB + 1.0) + level) * count + order
    return torch.topk(key, k, dim=1, largest=False).indices


def with_fingerprint_points(
    log_likelihood: torch.Tensor,
    log_density: torch.Tensor,
    log_prior: torch.Tensor,
    grid_m: torch.Tensor,
    cell: torch.Tensor,
    position_m: torch.Tensor,
    distance_db: torch.Tensor,
    bandwidth_db: torch.Tensor,
    point_mass: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grid's candidates [B,G] and the k fingerprint neighbours [B,k] as one set [B,G+k].

    `cell` [B,k]: the grid point whose cell holds each neighbour, `position_m` [B,k,2] its
    position, `distance_db` [B,k] its fingerprint distance. A neighbour takes its cell's map
    log-likelihood and prior and the log-mass log(rho) - d^2 / 2h^2 in place of the
    fingerprint log-density (rho = `point_mass`; 0 gives the points no weight).
    Returns (log-likelihood, log-density, log-prior [B,G+k], locations [B,G+k,2] m).
    """
    zeros = torch.zeros_like(log_likelihood)
    point_density = torch.log(point_mass.clamp_min(_NO_POINT_MASS)) - 0.5 * (distance_db / bandwidth_db) ** 2
    return (
        torch.cat([log_likelihood, log_likelihood.gather(1, cell)], dim=1),
        torch.cat([log_density, point_density], dim=1),
        torch.cat([log_prior[None, :] + zeros, log_prior[cell]], dim=1),
        torch.cat([grid_m[None] + torch.zeros_like(position_m[:, :1, :]), position_m], dim=1),
    )
