"""Compiled loop of terrain diffraction: profile lookup and Deygout's three edges per link.

The same maths as `heimdall.sim.diffraction.deygout_loss` (the readable numpy reference,
which a parity test holds this kernel to), done link by link while the profile sits in L1:
about 30x faster than the numpy version's passes over [N, R, P] arrays. Shapes are checked
by the caller.
"""

from __future__ import annotations

import math

import numpy as np

from heimdall.jit import kernel
from heimdall.sim.diffraction import GROUND_TOLERANCE_M

__all__ = ["deygout_links"]


@kernel
def _knife_edge_db(v: float) -> float:
    if v <= -0.78:
        return 0.0
    w = v - 0.1
    return 6.9 + 20.0 * math.log10(math.sqrt(w * w + 1.0) + w)


@kernel
def _ground(grid: np.ndarray, east0: float, north0: float, step: float, east: float, north: float) -> float:
    rows, cols = grid.shape
    row = min(max((north - north0) / step, 0.0), rows - 1.0)
    col = min(max((east - east0) / step, 0.0), cols - 1.0)
    r0 = min(int(row), rows - 2)
    c0 = min(int(col), cols - 2)
    fr = row - r0
    fc = col - c0
    top = grid[r0, c0] * (1.0 - fc) + grid[r0, c0 + 1] * fc
    bottom = grid[r0 + 1, c0] * (1.0 - fc) + grid[r0 + 1, c0 + 1] * fc
    return top * (1.0 - fr) + bottom * fr


@kernel
def _edge_v(z: np.ndarray, k: int, t: float, t0: float, t1: float, start: float, end: float, distance: float, wavelength: float) -> float:
    line = start + (t - t0) / max(t1 - t0, 1e-12) * (end - start)
    d1 = max((t - t0) * distance, 1e-3)
    d2 = max((t1 - t) * distance, 1e-3)
    return (z[k] - line) * math.sqrt(2.0 * (d1 + d2) / (wavelength * d1 * d2))


@kernel
def deygout_links(
    tx: np.ndarray,
    rx: np.ndarray,
    grid: np.ndarray,
    east0: float,
    north0: float,
    step: float,
    tx_height: float,
    rx_height: float,
    wavelength: float,
    z: np.ndarray,
    loss: np.ndarray,
    line_of_sight: np.ndarray,
    obstructions: np.ndarray,
) -> None:
    """Fill loss/line_of_sight/obstructions [N, R] for transmitters tx [N, 2] and receivers
    rx [R, 2+] over `grid` (metres); `z` [P] is the profile's scratch space."""
    points = z.shape[0]
    last = points - 1
    for n in range(tx.shape[0]):
        for r in range(rx.shape[0]):
            de = rx[r, 0] - tx[n, 0]
            dn = rx[r, 1] - tx[n, 1]
            distance = max(math.sqrt(de * de + dn * dn), 1e-3)
            for k in range(points):
                t = k / last
                z[k] = _ground(grid, east0, north0, step, tx[n, 0] + t * de, tx[n, 1] + t * dn)
            g0 = z[0]
            g1 = z[last]
            a0 = g0 + tx_height
            a1 = g1 + rx_height
            best_v = -np.inf
            best_k = -1
            runs = 0
            was_blocked = False
            for k in range(1, last):
                t = k / last
                blocked = z[k] > a0 + t * (a1 - a0)
                if blocked and not was_blocked:
                    runs += 1
                was_blocked = blocked
                if z[k] > g0 + t * (g1 - g0) + GROUND_TOLERANCE_M:
                    v = _edge_v(z, k, t, 0.0, 1.0, a0, a1, distance, wavelength)
                    if v > best_v:
                        best_v = v
                        best_k = k
            total = 0.0
            if best_k >= 0 and best_v > -0.78:
                total = _knife_edge_db(best_v)
                tm = best_k / last
                zm = z[best_k]
                side = -np.inf
                for k in range(1, best_k):
                    t = k / last
                    if z[k] > g0 + t * (g1 - g0) + GROUND_TOLERANCE_M:
                        side = max(side, _edge_v(z, k, t, 0.0, tm, a0, zm, distance, wavelength))
                total += _knife_edge_db(side)
                side = -np.inf
                for k in range(best_k + 1, last):
                    t = k / last
                    if z[k] > g0 + t * (g1 - g0) + GROUND_TOLERANCE_M:
                        side = max(side, _edge_v(z, k, t, tm, 1.0, zm, a1, distance, wavelength))
                total += _knife_edge_db(side)
            loss[n, r] = total
            line_of_sight[n, r] = runs == 0
            obstructions[n, r] = runs
