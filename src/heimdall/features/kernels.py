"""Compiled CPU loops of `stft_pass`: framing with a window, then power, mean and mel bands.

Arrays are float32 with complex numbers as interleaved (re, im) pairs, as
`torch.view_as_real` lays them out; shapes are checked by the caller.
"""

from __future__ import annotations

import numpy as np

from heimdall.jit import kernel

__all__ = ["power_mean_mel", "window_frames"]


@kernel
def window_frames(iq: np.ndarray, window: np.ndarray, hop: int, out: np.ndarray) -> float:
    """out[r, m, n] = iq[r, m * hop + n] * window[n]: `iq` [rows, 2T], `out` [rows, frames, 2N].

    Returns the float32 sum of `out`: finite only if every sample the frames cover is (a
    NaN or inf input stays non-finite through the product, even where the window is 0), so
    the caller's finiteness check costs no pass of its own.
    """
    rows, frames, size2 = out.shape
    size = size2 // 2
    total = np.float32(0.0)
    for r in range(rows):
        for m in range(frames):
            source = iq[r, 2 * m * hop : 2 * m * hop + size2]
            frame = out[r, m]
            for n in range(size):
                re = source[2 * n] * window[n]
                im = source[2 * n + 1] * window[n]
                frame[2 * n] = re
                frame[2 * n + 1] = im
                total += re + im
    return total


@kernel
def power_mean_mel(
    spectrum: np.ndarray,
    mean_scale: float,
    band_start: np.ndarray,
    band_stop: np.ndarray,
    band_offset: np.ndarray,
    band_weights: np.ndarray,
    mean_out: np.ndarray,
    mel_out: np.ndarray,
    power_out: np.ndarray,
    power_scale: float,
) -> None:
    """Bin power |X|^2 of `spectrum` [rows, frames, 2N], reduced three ways in one pass.

    - `mean_out` [rows, N]: the mean over frames, times `mean_scale`;
    - `mel_out` [rows, frames, bands]: band b sums the bins band_start[b] <= k <
      band_stop[b] weighted by band_weights[band_offset[b] + k - band_start[b]] (each
      triangle's non-zero run; no bands: nothing written);
    - `power_out` [rows, frames, N] when it has rows: every bin's power times `power_scale`.
    """
    rows, frames, size2 = spectrum.shape
    size = size2 // 2
    bands = band_start.shape[0]
    keep_power = power_out.shape[0] > 0
    power = np.empty(size, np.float32)
    for r in range(rows):
        total = mean_out[r]
        for k in range(size):
            total[k] = 0.0
        for m in range(frames):
            x = spectrum[r, m]
            for k in range(size):
                p = x[2 * k] * x[2 * k] + x[2 * k + 1] * x[2 * k + 1]
                power[k] = p
                total[k] += p
            for b in range(bands):
                # Slices indexed from 0 let the compiler vectorise the dot product.
                width = band_stop[b] - band_start[b]
                weights = band_weights[band_offset[b] : band_offset[b] + width]
                bins = power[band_start[b] : band_stop[b]]
                acc = np.float32(0.0)
                for j in range(width):
                    acc += weights[j] * bins[j]
                mel_out[r, m, b] = acc
            if keep_power:
                row = power_out[r, m]
                for k in range(size):
                    row[k] = power[k] * power_scale
        for k in range(size):
            total[k] *= mean_scale
