"""Radio propagation as pure functions: path loss, noise floor, shadowing, fading.

Units: distances and heights in metres, frequencies in Hz, powers in dBm, gains and losses
in dB. Every function accepts scalars or numpy arrays and broadcasts its arguments; random
draws come from a `numpy.random.Generator` passed in, so the same seed gives the same bytes.

Received power is `P_rx = P_tx + G_tx + G_rx - L + X_shadow + X_fading` (all in dB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heimdall.errors import InputError

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "BOLTZMANN_J_K",
    "REFERENCE_TEMPERATURE_K",
    "OKUMURA_HATA_VALIDITY",
    "HataEnvironment",
    "wavelength_m",
    "free_space_path_loss_db",
    "log_distance_path_loss_db",
    "two_ray_breakpoint_distance_m",
    "two_ray_path_loss_db",
    "okumura_hata_path_loss_db",
    "okumura_hata_validity_issues",
    "thermal_noise_dbm",
    "noise_floor_dbm",
    "shadowing_db",
    "fading_gain_db",
    "received_power_dbm",
]

SPEED_OF_LIGHT_M_S = 299_792_458.0
BOLTZMANN_J_K = 1.380649e-23
REFERENCE_TEMPERATURE_K = 290.0
"""IEEE reference temperature T0 (K) at which noise figures are defined."""

OKUMURA_HATA_VALIDITY: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "frequency_hz": (150e6, 1500e6),
        "base_height_m": (30.0, 200.0),
        "mobile_height_m": (1.0, 10.0),
        "distance_m": (1_000.0, 20_000.0),
    }
)
"""Closed ranges [low, high] over which Hata's fit to Okumura's curves was made."""

HataEnvironment = Literal["urban", "suburban", "open"]

FloatArray = NDArray[np.float64]


def _positive(value: ArrayLike, name: str) -> FloatArray:
    """`value` as a float array, or InputError unless every element is finite and > 0."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric, got {value!r}") from exc
    bad = ~(np.isfinite(arr) & (arr > 0.0))  # also catches NaN
    if np.any(bad):
        raise InputError(f"{name} must be finite and > 0, got {arr[bad].flat[0]}")
    return arr


def wavelength_m(frequency_hz: ArrayLike) -> FloatArray:
    """Free-space wavelength in metres at `frequency_hz`."""
    return SPEED_OF_LIGHT_M_S / _positive(frequency_hz, "frequency_hz")


def free_space_path_loss_db(distance_m: ArrayLike, frequency_hz: ArrayLike) -> FloatArray:
    """Friis free-space path loss in dB between isotropic antennas: 20 log10(4 pi d f / c)."""
    d = _positive(distance_m, "distance_m")
    f = _positive(frequency_hz, "frequency_hz")
    return 20.0 * np.log10(4.0 * math.pi * d * f / SPEED_OF_LIGHT_M_S)


def log_distance_path_loss_db(
    distance_m: ArrayLike,
    frequency_hz: ArrayLike,
    path_loss_exponent: ArrayLike,
    reference_distance_m: ArrayLike = 100.0,
) -> FloatArray:
    """Log-distance path loss in dB: FSPL(d0) + 10 n log10(d / d0).

    `path_loss_exponent` n is 2 in free space, ~2.7-3.5 in suburban and 3-5 in urban
    settings. Distances below the reference distance d0 (metres) are clamped to d0.
    """
    d = _positive(distance_m, "distance_m")
    d0 = _positive(reference_distance_m, "reference_distance_m")
    n = np.asarray(path_loss_exponent, dtype=np.float64)
    if np.any(~np.isfinite(n) | (n < 0.0)):
        raise InputError(f"path_loss_exponent must be finite and >= 0, got {path_loss_exponent!r}")
    # The model is an empirical far-field fit anchored at d0; inside d0 it would extrapolate
    # to ever smaller (eventually negative) losses, so the loss is held at its d0 value.
    d_eff = np.maximum(d, d0)
    return free_space_path_loss_db(d0, frequency_hz) + 10.0 * n * np.log10(d_eff / d0)


def two_ray_breakpoint_distance_m(
    frequency_hz: ArrayLike, tx_height_m: ArrayLike, rx_height_m: ArrayLike
) -> FloatArray:
    """Crossover distance 4 h_t h_r / lambda (m) beyond which two-ray loss goes as 40 log10 d."""
    h_t = _positive(tx_height_m, "tx_height_m")
    h_r = _positive(rx_height_m, "rx_height_m")
    return 4.0 * h_t * h_r / wavelength_m(frequency_hz)


def two_ray_path_loss_db(
    distance_m: ArrayLike,
    frequency_hz: ArrayLike,
    tx_height_m: ArrayLike,
    rx_height_m: ArrayLike,
) -> FloatArray:
    """Plane-earth two-ray path loss in dB (direct ray plus ground reflection, Gamma = -1).

    `distance_m` is the horizontal ground distance; heights are antenna heights above
    the (flat, perfectly reflecting) ground, all in metres. Exact interference of the two
    rays, each with its own length r1, r2 and 1/r amplitude:

        P_rx / P_tx = (lambda / 4 pi)^2 |exp(-j k r1) / r1 - exp(-j k r2) / r2|^2

    Choice: no clamp to free space. Inside the breakpoint the rays alternately add (loss
    down to FSPL - 6 dB) and cancel (deep but finite nulls); that is what a flat reflecting
    ground does, and a smoothed model would hide it. Far beyond the breakpoint
    (`two_ray_breakpoint_distance_m`) the loss tends to 40 log10 d - 20 log10(h_t h_r),
    independent of frequency. Real ground (|Gamma| < 1, curvature, terrain) is not modelled.
    """
    d = _positive(distance_m, "distance_m")
    h_t = _positive(tx_height_m, "tx_height_m")
    h_r = _positive(rx_height_m, "rx_height_m")
    lam = wavelength_m(frequency_hz)
    r1 = np.sqrt(d**2 + (h_t - h_r) ** 2)
    r2 = np.sqrt(d**2 + (h_t + h_r) ** 2)
    # r2 - r1 by the difference of squares: subtracting two nearly equal lengths directly
    # loses most significant digits far out, where the difference is millimetres.
    delta_m = 4.0 * h_t * h_r / (r1 + r2)
    phase_rad = 2.0 * math.pi * delta_m / lam
    # |1/r1 - e^{-j phi}/r2|^2 = (1/r1 - 1/r2)^2 + 4 sin^2(phi/2) / (r1 r2): both terms >= 0,
    # so no cancellation in floating point.
    field2 = (delta_m / (r1 * r2)) ** 2 + 4.0 * np.sin(phase_rad / 2.0) ** 2 / (r1 * r2)
    return 20.0 * np.log10(4.0 * math.pi / lam) - 10.0 * np.log10(field2)


def okumura_hata_path_loss_db(
    distance_m: ArrayLike,
    frequency_hz: ArrayLike,
    base_height_m: ArrayLike,
    mobile_height_m: ArrayLike,
    environment: HataEnvironment = "urban",
) -> FloatArray:
    """Okumura-Hata median path loss in dB (small/medium-city mobile-antenna correction).

    Valid for 150-1500 MHz, base height 30-200 m, mobile height 1-10 m, distance 1-20 km
    (`OKUMURA_HATA_VALIDITY`). Outside those ranges the formula is still evaluated, since
    145 MHz is just below the band and callers may accept that; check with
    `okumura_hata_validity_issues`. `environment` adds the standard suburban or open-area
    correction to the urban loss.
    """
    d_km = _positive(distance_m, "distance_m") / 1_000.0
    f_mhz = _positive(frequency_hz, "frequency_hz") / 1e6
    h_b = _positive(base_height_m, "base_height_m")
    h_m = _positive(mobile_height_m, "mobile_height_m")
    log_f = np.log10(f_mhz)
    a_hm = (1.1 * log_f - 0.7) * h_m - (1.56 * log_f - 0.8)
    urban = (
        69.55
        + 26.16 * log_f
        - 13.82 * np.log10(h_b)
        - a_hm
        + (44.9 - 6.55 * np.log10(h_b)) * np.log10(d_km)
    )
    if environment == "urban":
        return urban
    if environment == "suburban":
        return urban - 2.0 * np.log10(f_mhz / 28.0) ** 2 - 5.4
    if environment == "open":
        return urban - 4.78 * log_f**2 + 18.33 * log_f - 40.94
    raise InputError(
        f"okumura-hata environment {environment!r} unknown (use 'urban', 'suburban' or 'open')"
    )


def okumura_hata_validity_issues(
    distance_m: ArrayLike,
    frequency_hz: ArrayLike,
    base_height_m: ArrayLike,
    mobile_height_m: ArrayLike,
) -> list[str]:
    """One message per input that falls outside `OKUMURA_HATA_VALIDITY`; empty if all valid."""
    issues: list[str] = []
    inputs = {
        "frequency_hz": frequency_hz,
        "base_height_m": base_height_m,
        "mobile_height_m": mobile_height_m,
        "distance_m": distance_m,
    }
    for name, value in inputs.items():
        low, high = OKUMURA_HATA_VALIDITY[name]
        arr = np.asarray(value, dtype=np.float64)
        outside = ~((arr >= low) & (arr <= high))
        n_outside = int(np.count_nonzero(outside))
        if n_outside == 0:
            continue
        if arr.size == 1:
            issues.append(f"{name} {arr.item():g} outside validity range [{low:g}, {high:g}]")
        else:
            issues.append(
                f"{name}: {n_outside} of {arr.size} values outside validity range "
                f"[{low:g}, {high:g}] (min {np.nanmin(arr):g}, max {np.nanmax(arr):g})"
            )
    return issues


def thermal_noise_dbm(
    bandwidth_hz: ArrayLike, temperature_k: ArrayLike = REFERENCE_TEMPERATURE_K
) -> FloatArray:
    """Thermal noise power k T B in dBm over `bandwidth_hz` at `temperature_k`."""
    b = _positive(bandwidth_hz, "bandwidth_hz")
    t = _positive(temperature_k, "temperature_k")
    # +30 converts dBW to dBm.
    return 10.0 * np.log10(BOLTZMANN_J_K * t * b) + 30.0


def noise_floor_dbm(bandwidth_hz: ArrayLike, noise_figure_db: ArrayLike) -> FloatArray:
    """Receiver noise floor in dBm: thermal noise at 290 K over `bandwidth_hz` plus noise figure."""
    return thermal_noise_dbm(bandwidth_hz) + np.asarray(noise_figure_db, dtype=np.float64)


def _shape(size: int | tuple[int, ...], param: FloatArray, param_name: str) -> tuple[int, ...]:
    """`size` as a shape tuple, checked to be one that `param` broadcasts to."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    if any(int(s) < 0 for s in shape):
        raise InputError(f"size {size!r} must not be negative")
    shape = tuple(int(s) for s in shape)
    try:
        fits = np.broadcast_shapes(param.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise InputError(f"{param_name} of shape {param.shape} does not broadcast to size {shape}")
    return shape


def shadowing_db(
    rng: np.random.Generator, sigma_db: ArrayLike, size: int | tuple[int, ...]
) -> FloatArray:
    """Log-normal shadowing: zero-mean Gaussian draws in dB with standard deviation `sigma_db`.

    Draws are independent; `sigma_db` broadcasts against `size`.
    """
    sigma = np.asarray(sigma_db, dtype=np.float64)
    if np.any(~np.isfinite(sigma) | (sigma < 0.0)):
        raise InputError(f"sigma_db must be finite and >= 0, got {sigma_db!r}")
    return rng.standard_normal(_shape(size, sigma, "sigma_db")) * sigma


def fading_gain_db(
    rng: np.random.Generator,
    k_factor_db: ArrayLike | None,
    size: int | tuple[int, ...],
    looks: int = 1,
) -> FloatArray:
    """Rician small-scale fading power gain in dB, unit mean in linear power.

    `k_factor_db` is the Rician K factor (direct-to-scattered power ratio) in dB and
    broadcasts against `size`; None or -inf gives Rayleigh fading, +inf no fading (0 dB).
    The gain is the linear-power average of `looks` independent draws (e.g. over time or
    frequency within one measurement), which narrows its spread; the mean stays 1.
    """
    if isinstance(looks, bool) or not isinstance(looks, (int, np.integer)) or looks < 1:
        raise InputError(f"looks must be an integer >= 1, got {looks!r}")
    k_db = np.asarray(-np.inf if k_factor_db is None else k_factor_db, dtype=np.float64)
    if np.any(np.isnan(k_db)):
        raise InputError("k_factor_db must not be NaN")
    shape = _shape(size, k_db, "k_factor_db")
    k_lin = np.power(10.0, k_db / 10.0)[..., None]  # trailing axis broadcasts over looks
    # Split unit power between the direct path K/(K+1) and the scatter 1/(K+1); written
    # this way K = 0 and K = inf give 1 and 0 without dividing by zero or inf.
    scatter_power = 1.0 / (1.0 + k_lin)
    direct_amplitude = np.sqrt(1.0 - scatter_power)
    # Complex Gaussian scatter with power scatter_power: each quadrature has half of it.
    draws = rng.standard_normal((2, *shape, looks))
    scatter_std = np.sqrt(scatter_power / 2.0)
    in_phase = direct_amplitude + scatter_std * draws[0]
    quadrature = scatter_std * draws[1]
    power = np.mean(in_phase**2 + quadrature**2, axis=-1)
    return 10.0 * np.log10(power)


def received_power_dbm(
    tx_power_dbm: ArrayLike,
    tx_gain_dbi: ArrayLike,
    rx_gain_dbi: ArrayLike,
    path_loss_db: ArrayLike,
) -> FloatArray:
    """Received power in dBm: P_tx + G_tx + G_rx - L (add shadowing and fading separately)."""
    return (
        np.asarray(tx_power_dbm, dtype=np.float64)
        + np.asarray(tx_gain_dbi, dtype=np.float64)
        + np.asarray(rx_gain_dbi, dtype=np.float64)
        - np.asarray(path_loss_db, dtype=np.float64)
    )
