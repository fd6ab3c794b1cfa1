"""The channel from one transmitter to R receivers: multipath, oscillator offsets, noise.

Conventions as in `heimdall.sim.signals`: IQ is complex64 baseband in sqrt(mW), and
`snr_db` is the signal power over the noise power inside the 12.5 kHz channel, the noise
being white over the whole sample rate.

`received_iq` yields what the receivers record one transmission at a time, into a buffer it
reuses, so a caller that turns each into features keeps the working set in cache;
`apply_channel` collects them into one array.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from heimdall.errors import InputError
from heimdall.sim.audio import positive_float, positive_int
from heimdall.sim.kernels import delayed_copies, rotate_add_noise
from heimdall.sim.noise import box_muller_parts, draw_noise_seeds

__all__ = ["CHANNEL_BANDWIDTH_HZ", "ChannelSettings", "apply_channel", "received_iq"]

CHANNEL_BANDWIDTH_HZ = 12_500.0


@dataclass(frozen=True, eq=False)
class ChannelSettings:
    """How the channel treats every transmission: sampling, oscillators, multipath, noise floor.

    `num_taps` taps evenly spaced over [0, `delay_spread_s`] (seconds), exp(-k) power
    profile, the first Rician with `k_factor_db` (scalar, [R] or [n, R]), the rest Rayleigh.
    The carrier moves by `tx_offset_hz` (scalar or [n], the transmitter's oscillator error)
    plus `rx_lo_offset_hz` (scalar, [R] or [n, R], receiver LO errors). White noise over
    `sample_rate_hz` has its power given inside `channel_bandwidth_hz`; `noise_floor_dbm`
    (scalar, [R] or [n, R]) fixes it instead of an SNR.
    """

    sample_rate_hz: float
    tx_offset_hz: ArrayLike = 0.0
    rx_lo_offset_hz: ArrayLike = 0.0
    k_factor_db: ArrayLike = 3.0
    num_taps: int = 3
    delay_spread_s: float = 2e-6
    noise_floor_dbm: ArrayLike | None = None
    channel_bandwidth_hz: float = CHANNEL_BANDWIDTH_HZ


def _per_rx(value: ArrayLike, name: str, shape: tuple[int, int], per_sample: bool = False):
    """`value` broadcast to [n, R]; with `per_sample` a 1-D value is one per sample."""
    arr = np.asarray(value, dtype=np.float64)
    arr = arr[:, None] if per_sample and arr.ndim == 1 else arr
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError as exc:
        raise InputError(f"{name} of shape {arr.shape} does not fit [n, R] = {shape}") from exc
    if np.any(np.isnan(arr)):
        raise InputError(f"{name} must not be NaN")
    return arr


#: Sample offsets of the cubic (4-point) Lagrange interpolator that delays the tap copies.
_LAGRANGE_NODES = (-1, 0, 1, 2)


@functools.lru_cache(maxsize=8)
def _delay_filters(fs: float, delays_s: tuple[float, ...]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(sample shifts s, weights [len(delays), len(s)]): x(t - tau) ~ sum_j w_j x[t - s_j].

    Each delay is a whole number of samples plus a fraction, interpolated by the cubic
    Lagrange polynomial through 4 neighbouring samples: within 0.1 dB and 1 degree of the
    exact delay up to fs / 6 (8 kHz at 48 kHz, past the FM channel), at a fraction of an FFT's
    cost. Samples wrap around the ends (a circular delay, as an FFT delay would be).
    """
    shifts = sorted({int(np.floor(d * fs)) + m for d in delays_s for m in _LAGRANGE_NODES})
    weights = np.zeros((len(delays_s), len(shifts)), dtype=np.float32)
    for row, delay_s in enumerate(delays_s):
        whole, fraction = int(np.floor(delay_s * fs)), delay_s * fs - np.floor(delay_s * fs)
        for m in _LAGRANGE_NODES:
            others = [j for j in _LAGRANGE_NODES if j != m]
            weights[row, shifts.index(whole + m)] = np.prod([(fraction - j) / (m - j) for j in others])
    shifts_array, weights = np.array(shifts, dtype=np.int64), weights
    shifts_array.flags.writeable = weights.flags.writeable = False  # cached: shared by callers
    return shifts_array, weights


@functools.lru_cache(maxsize=8)
def _shift_block(num_samples: int) -> int:
    """The largest divisor of `num_samples` not above its square root."""
    return next(d for d in range(math.isqrt(num_samples), 0, -1) if num_samples % d == 0)


def _carrier_tables(frequency_hz: NDArray[np.float64], fs: float, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(coarse [..., T / B, 2], fine [..., B, 2]) float32 for `frequency_hz` [...]:
    exp(2j pi f t / fs) at t = a B + b is coarse[a] * fine[b], B = `_shift_block(T)`; what
    `rotate_add_noise` multiplies by."""
    block = _shift_block(num_samples)
    radians_per_sample = 2.0 * np.pi * frequency_hz[..., None] / fs

    def phasors(t: np.ndarray) -> np.ndarray:
        # Wrapped in float64, then float32's vectorised cos and sin (2e-7 rad of error).
        angle = np.remainder(radians_per_sample * t, 2.0 * np.pi).astype(np.float32)
        return np.stack((np.cos(angle), np.sin(angle)), axis=-1)

    return phasors(np.arange(0, num_samples, block)), phasors(np.arange(block))


@dataclass(frozen=True, eq=False)
class _Draws:
    """Everything `received_iq` draws or derives up front, per sample and receiver."""

    tx: torch.Tensor  # [n, T] complex64
    target_mw: NDArray[np.float64]  # [n, R]
    carrier: tuple[np.ndarray, np.ndarray]  # `_carrier_tables` of the offsets, [n, R, ...]
    noise_scale: NDArray[np.float32] | None  # [n, R], rms of each part of the noise
    taps: NDArray[np.complex128]  # [n, R, K]
    delays_s: tuple[float, ...]  # of taps 1..K-1 (tap 0 is undelayed)
    noise_seeds: NDArray[np.uint64]  # [n]
    fs: float


def _draw(
    rng: np.random.Generator,
    tx_iq: ArrayLike,
    rx_power_dbm: ArrayLike,
    snr_db: ArrayLike | None,
    channel: ChannelSettings,
) -> tuple[_Draws, bool]:
    """Checked arguments and the random draws of `received_iq`; also whether `tx_iq` was [T]."""
    fs = positive_float(channel.sample_rate_hz, "sample_rate_hz")
    num_taps = positive_int(channel.num_taps, "num_taps")
    delay_spread_s = channel.delay_spread_s
    noise_floor_dbm = channel.noise_floor_dbm
    if not (math.isfinite(delay_spread_s) and delay_spread_s >= 0.0):
        raise InputError(f"delay_spread_s must be finite and >= 0, got {delay_spread_s!r}")
    tx, power_dbm = np.asarray(tx_iq), np.asarray(rx_power_dbm, dtype=np.float64)
    single = tx.ndim == 1
    tx, power_dbm = (tx[None], power_dbm[None]) if single else (tx, power_dbm)
    if tx.ndim != 2 or power_dbm.ndim != 2 or len(power_dbm) != len(tx):
        raise InputError(f"tx_iq {tx.shape}, rx_power_dbm {power_dbm.shape} must be [n, T], [n, R]")
    if snr_db is not None and noise_floor_dbm is not None:
        raise InputError("give snr_db or noise_floor_dbm, not both")
    if not np.all(np.isfinite(power_dbm)):
        raise InputError("rx_power_dbm must be finite")
    shape = power_dbm.shape
    offset_hz = _per_rx(channel.tx_offset_hz, "tx_offset_hz", shape, per_sample=not single)
    offset_hz = offset_hz + _per_rx(channel.rx_lo_offset_hz, "rx_lo_offset_hz", shape)
    noise_scale = None
    if snr_db is not None or noise_floor_dbm is not None:
        if snr_db is not None:
            noise_dbm = power_dbm - _per_rx(snr_db, "snr_db", shape)
        else:
            noise_dbm = _per_rx(noise_floor_dbm, "noise_floor_dbm", shape)
        # White noise over fs carries fs / B times the power it has inside the B-wide channel.
        bandwidth_hz = positive_float(channel.channel_bandwidth_hz, "channel_bandwidth_hz")
        noise_rms = np.sqrt(10.0 ** (noise_dbm / 10.0) * (fs / bandwidth_hz))
        noise_scale = (noise_rms / math.sqrt(2.0)).astype(np.float32)
    # Multipath: y = sum_k h_k x(t - tau_k), exp(-k) power profile; the first tap Rician
    # (K/(K+1) of its power in the direct path, 1/(K+1) scattered), the rest Rayleigh.
    tap_power = np.exp(-np.arange(num_taps)) / np.exp(-np.arange(num_taps)).sum()
    k_lin = 10.0 ** (_per_rx(channel.k_factor_db, "k_factor_db", shape) / 10.0)
    draws = rng.standard_normal((2, *shape, num_taps))
    taps = (draws[0] + 1j * draws[1]) * np.sqrt(tap_power / 2.0)  # [n, R, K]
    direct = np.exp(2j * np.pi * rng.random(shape)) * np.sqrt(tap_power[0])
    taps[..., 0] = direct * np.sqrt(k_lin / (k_lin + 1.0)) + taps[..., 0] / np.sqrt(k_lin + 1.0)
    delays_s = tuple(float(d) for d in np.linspace(0.0, delay_spread_s, num_taps)[1:])
    noise_seeds = draw_noise_seeds(rng, len(tx))
    tx_t = torch.from_numpy(np.ascontiguousarray(tx.astype(np.complex64, copy=False)))
    target_mw = 10.0 ** (power_dbm / 10.0)
    carrier = _carrier_tables(offset_hz, fs, tx.shape[-1])
    return _Draws(tx_t, target_mw, carrier, noise_scale, taps, delays_s, noise_seeds, fs), single


@dataclass(frozen=True, eq=False)
class _Buffers:
    """What `_receive` writes besides its output, reused across transmissions, with the
    numpy views the kernels take (made once: a view costs microseconds per call)."""

    tap_rows: torch.Tensor  # [2K, 2T] float32
    tap_rows_np: np.ndarray
    noise: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # `box_muller_parts`, [R, T] each
    noise_np: tuple[np.ndarray, np.ndarray, np.ndarray]
    tx_np: np.ndarray  # [n, 2T] float32, the waveforms


def _receive(draws: _Draws, work: _Buffers, i: int, out: torch.Tensor) -> None:
    """Write what the R receivers record of transmission `i` into `out` [R, T]."""
    num_taps = draws.taps.shape[-1]
    # Tap k's copy c_k of the waveform (delayed by interpolation) and i c_k, as real rows with
    # re/im interleaved: y = h c is then Re(h) c + Im(h) (i c), one [R, 2K] x [2K, 2T] real
    # product, which writes y in place and is several times faster than a complex matmul
    # with so few taps.
    shifts, weights = _delay_filters(draws.fs, draws.delays_s)
    # The mean power of y = h c is h^H G h, G[k, l] = <c_k, c_l> / T the copies' Gram matrix:
    # dividing it out makes the mean signal power exactly rx_power_dbm (whatever the taps and
    # the waveform's own power) without a pass over y.
    gram = np.empty((num_taps, num_taps), dtype=np.complex128)
    delayed_copies(work.tx_np[i], shifts, weights, work.tap_rows_np, gram)
    taps = draws.taps[i]
    realised = ((taps.conj() @ gram) * taps).sum(axis=1).real
    h = taps * np.sqrt(draws.target_mw[i] / np.maximum(realised, 1e-300))[:, None]
    h_rows = torch.from_numpy(np.concatenate((h.real, h.imag), axis=1).astype(np.float32))
    y = torch.view_as_real(out).view(len(h), -1)
    torch.matmul(h_rows, work.tap_rows, out=y)
    if draws.noise_scale is None:
        noise_scale = np.zeros(len(h), dtype=np.float32)  # the noise parts hold zeros
    else:
        box_muller_parts(draws.noise_seeds[i], *work.noise)  # each part of the noise N(0, 1)
        noise_scale = draws.noise_scale[i]
    coarse, fine = draws.carrier
    rotate_add_noise(y.numpy(), coarse[i], fine[i], noise_scale, *work.noise_np)


def _iterate(draws: _Draws, out: torch.Tensor | None) -> Iterator[torch.Tensor]:
    """Receive each transmission of `draws` into `out[i]`, or into one reused buffer."""
    n, num_samples = draws.tx.shape
    num_rx = draws.target_mw.shape[1]
    tap_rows = torch.empty((2 * draws.taps.shape[-1], 2 * num_samples))
    # Without noise the parts stay zero: a radius of sqrt(-2 * 0) = 0.
    noise = (torch.zeros((num_rx, num_samples)), torch.zeros((num_rx, num_samples)), torch.zeros((num_rx, num_samples)))
    tx_np = torch.view_as_real(draws.tx).reshape(n, -1).numpy()
    work = _Buffers(tap_rows, tap_rows.numpy(), noise, (noise[0].numpy(), noise[1].numpy(), noise[2].numpy()), tx_np)
    buffer = torch.empty((num_rx, num_samples), dtype=torch.complex64) if out is None else None
    for i in range(n):
        target = buffer if out is None else out[i]
        _receive(draws, work, i, target)
        yield target


def received_iq(
    rng: np.random.Generator,
    tx_iq: ArrayLike,
    rx_power_dbm: ArrayLike,
    snr_db: ArrayLike | None,
    channel: ChannelSettings,
) -> Iterator[torch.Tensor]:
    """What the R receivers record of each transmission in turn: complex64 [R, T] tensors.

    Arguments and bytes as `apply_channel` (`tx_iq` [n, T], `rx_power_dbm` [n, R]), but one
    sample at a time, each into the same buffer (copy what you keep), so a caller that turns
    each into features works in cache. The arguments are checked and every random draw made
    now, before the first sample is asked for.
    """
    draws, _ = _draw(rng, tx_iq, rx_power_dbm, snr_db, channel)
    return _iterate(draws, None)


def apply_channel(
    rng: np.random.Generator,
    tx_iq: ArrayLike,
    rx_power_dbm: ArrayLike,
    snr_db: ArrayLike | None,
    channel: ChannelSettings,
) -> NDArray[np.complex64]:
    """What R receivers record of one transmission each: complex64 [n, R, T] (or [R, T]).

    `tx_iq` is [n, T] (or [T]); `rx_power_dbm` [n, R] (or [R]) is exactly the mean signal
    power, fading included (`propagation.fading_gain_db`): the multipath (`channel`) only
    shapes phase and spectrum, its realised gain divided out. The carrier then moves by the
    channel's oscillator offsets. White complex Gaussian noise over the sample rate has power
    `rx_power_dbm - snr_db` inside the channel bandwidth (or the channel's `noise_floor_dbm`
    there; both None: no noise).
    """
    draws, single = _draw(rng, tx_iq, rx_power_dbm, snr_db, channel)
    out = torch.empty((*draws.target_mw.shape, draws.tx.shape[-1]), dtype=torch.complex64)
    for _ in _iterate(draws, out):
        pass
    return out.numpy()[0] if single else out.numpy()
