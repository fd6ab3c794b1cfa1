"""Compiled loops of the channel (`heimdall.sim.channel`) and of its Gaussian noise.

Arrays are float32 with complex numbers as interleaved (re, im) pairs, as
`torch.view_as_real` lays them out; shapes are checked by the caller.
"""

from __future__ import annotations

import numpy as np

from heimdall.jit import kernel

__all__ = ["delayed_copies", "rotate_add_noise", "splitmix64_uniforms"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@kernel
def splitmix64_uniforms(seed: np.uint64, radius_u: np.ndarray, angle: np.ndarray) -> None:
    """Box-Muller's two uniforms per output of SplitMix64 (Steele, Lea & Flood 2014) from `seed`.

    Output i is the generator's (i + 1)-th number, computed from i alone (the generator's
    state advances by a constant), so the loop vectorises. Its top 24 bits give
    radius_u[i] in (0, 1], the next 24 an angle[i] = 2 pi u in [0, 2 pi), u in [0, 1) (the
    float32 resolution).
    """
    step = 1.0 / 16777216.0
    for i in range(radius_u.shape[0]):
        z = seed + np.uint64(i + 1) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        radius_u[i] = np.float32((z >> np.uint64(40)) + np.uint64(1)) * np.float32(step)
        angle[i] = np.float32((z >> np.uint64(16)) & np.uint64(0xFFFFFF)) * np.float32(2.0 * np.pi * step)


@kernel
def delayed_copies(tx: np.ndarray, shifts: np.ndarray, weights: np.ndarray, rows: np.ndarray, gram: np.ndarray) -> None:
    """The tap copies of one waveform, those copies times i, and their Gram matrix.

    `tx` [2T] (interleaved); `rows` [2K, 2T]: row 0 is `tx`, row k < K is
    sum_j weights[k - 1, j] tx[t - shifts[j]] (indices modulo T, a circular delay), and row
    K + k is i times row k ((-im, re) pairs). `gram` [K, K] complex128 receives
    <c_k, c_l> / T = mean(conj(c_k) c_l), summed in float64.
    """
    size = tx.shape[0] // 2
    taps = rows.shape[0] // 2
    rows[0, :] = tx
    for k in range(1, taps):
        row = rows[k]
        row[:] = 0.0
        for j in range(shifts.shape[0]):
            w = weights[k - 1, j]
            s = shifts[j] % size
            # y[t] += w x[t - s]: x[0 : T - s] lands on y[s : T], x[T - s : T] on y[0 : s].
            late, early = row[2 * s :], tx[: 2 * (size - s)]
            for t in range(2 * (size - s)):
                late[t] += w * early[t]
            wrapped, tail = row[: 2 * s], tx[2 * (size - s) :]
            for t in range(2 * s):
                wrapped[t] += w * tail[t]
    for k in range(taps):
        source, rotated = rows[k], rows[taps + k]
        for t in range(size):
            rotated[2 * t] = -source[2 * t + 1]
            rotated[2 * t + 1] = source[2 * t]
    for k in range(taps):
        for m in range(k, taps):
            a, b = rows[k], rows[m]
            re, im = 0.0, 0.0
            for t in range(size):
                # conj(a) b = (ar br + ai bi) + i (ar bi - ai br)
                re += np.float64(a[2 * t]) * b[2 * t] + np.float64(a[2 * t + 1]) * b[2 * t + 1]
                im += np.float64(a[2 * t]) * b[2 * t + 1] - np.float64(a[2 * t + 1]) * b[2 * t]
            gram[k, m] = complex(re / size, im / size)
            gram[m, k] = complex(re / size, -im / size)


@kernel
def rotate_add_noise(
    y: np.ndarray,
    coarse: np.ndarray,
    fine: np.ndarray,
    noise_scale: np.ndarray,
    log_radius_u: np.ndarray,
    cos_angle: np.ndarray,
    sin_angle: np.ndarray,
) -> None:
    """y[r, t] <- y[r, t] exp(2j pi f_r t / fs) + noise_scale[r] n[r, t], in place.

    `y` [R, 2T]; the carrier phasor of sample t = a * B + b is coarse[r, a] * fine[r, b]
    (`coarse` [R, T / B, 2], `fine` [R, B, 2]), two complex multiplies instead of a complex
    exponential. The noise n = sqrt(-2 log_radius_u) (cos_angle + 1j sin_angle) comes as
    `noise.box_muller_parts` gives it ([R, T] each): its radius is taken here, in the same
    pass, rather than in one more pass over memory.
    """
    rx, blocks, block = y.shape[0], coarse.shape[1], fine.shape[1]
    minus_two = np.float32(-2.0)
    for r in range(rx):
        scale = noise_scale[r]
        for a in range(blocks):
            cr, ci = coarse[r, a, 0], coarse[r, a, 1]
            start = a * block
            out = y[r, 2 * start : 2 * (start + block)]
            log_u = log_radius_u[r, start : start + block]
            c, s = cos_angle[r, start : start + block], sin_angle[r, start : start + block]
            f = fine[r]
            for b in range(block):
                pr = cr * f[b, 0] - ci * f[b, 1]
                pi = cr * f[b, 1] + ci * f[b, 0]
                xr, xi = out[2 * b], out[2 * b + 1]
                amplitude = scale * np.sqrt(minus_two * log_u[b])
                out[2 * b] = xr * pr - xi * pi + amplitude * c[b]
                out[2 * b + 1] = xr * pi + xi * pr + amplitude * s[b]


@kernel
def fm_phase(audio: np.ndarray, radians_per_unit: float, out: np.ndarray) -> None:
    """out[r, t] = radians_per_unit * sum(audio[r, :t + 1]) wrapped to [-pi, pi), float32.

    Accumulated in float64 (float32 would drift over a long clip), wrapped as it goes.
    """
    two_pi = 2.0 * np.pi
    for r in range(audio.shape[0]):
        phase = 0.0
        row, target = audio[r], out[r]
        for t in range(audio.shape[1]):
            phase += radians_per_unit * row[t]
            if phase >= np.pi or phase < -np.pi:
                phase -= two_pi * np.floor((phase + np.pi) / two_pi)
            target[t] = phase


@kernel
def first_order_filter(x: np.ndarray, b0: float, b1: float, a1: float, out: np.ndarray) -> None:
    """y[n] = b0 x[n] + b1 x[n - 1] - a1 y[n - 1] along each row of `x` [rows, T] into `out`.

    Each row starts in the steady state of its first sample (as if that value had always
    been there), computed in float64: scipy's `lfilter` with `lfilter_zi` scaled by x[0].
    """
    for r in range(x.shape[0]):
        row, target = x[r], out[r]
        if row.shape[0] == 0:
            continue
        previous_x = np.float64(row[0])
        previous_y = previous_x * (b0 + b1) / (1.0 + a1)
        for t in range(row.shape[0]):
            value = np.float64(row[t])
            previous_y = b0 * value + b1 * previous_x - a1 * previous_y
            previous_x = value
            target[t] = previous_y


@kernel
def crossfade_envelope(start: np.ndarray, end: np.ndarray, envelope: np.ndarray, step: int, out: np.ndarray) -> None:
    """out[r, t] = (start + (end - start) t / (T - 1)) * envelope at t, all [n, T] but `envelope`.

    `envelope` [n, L] holds the envelope at every `step`-th sample; between its points it
    is interpolated linearly, and held past the last one.
    """
    rows, size = out.shape
    points = envelope.shape[1]
    last = max(size - 1, 1)
    for r in range(rows):
        a, b, e, o = start[r], end[r], envelope[r], out[r]
        for j in range(points):
            low, high = e[j], e[min(j + 1, points - 1)]
            for q in range(step):
                t = j * step + q
                if t >= size:
                    break
                level = low + (high - low) * (q / step)
                o[t] = (a[t] + (b[t] - a[t]) * (t / last)) * level
        for t in range(points * step, size):
            o[t] = (a[t] + (b[t] - a[t]) * (t / last)) * e[points - 1]
