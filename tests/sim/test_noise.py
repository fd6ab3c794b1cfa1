"""The receivers' Gaussian noise: SplitMix64 bits, Box-Muller, polar output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from heimdall.errors import InputError
from heimdall.sim.kernels import splitmix64_uniforms
from heimdall.sim.noise import draw_noise_seeds, standard_complex_normal_polar


def _noise(seed: int, shape: tuple[int, ...] = (7, 17_920)) -> np.ndarray:
    parts = tuple(torch.empty(shape) for _ in range(3))
    standard_complex_normal_polar(np.uint64(seed), *parts)
    radius, cos_angle, sin_angle = (p.numpy().astype(np.float64) for p in parts)
    return radius * (cos_angle + 1j * sin_angle)


def test_splitmix64_outputs_are_the_published_sequence() -> None:
    """SplitMix64 from state 0 gives 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F
    (the reference C implementation); the uniforms are their top 24 bits (+1) and the next 24
    (times 2 pi: the angle)."""
    outputs = np.array([0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F], dtype=np.uint64)
    radius_u, angle = np.empty(3, np.float32), np.empty(3, np.float32)
    splitmix64_uniforms(np.uint64(0), radius_u, angle)
    np.testing.assert_array_equal(radius_u, ((outputs >> np.uint64(40)) + np.uint64(1)) / 2.0**24)
    expected = ((outputs >> np.uint64(16)) & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(2.0 * np.pi / 2.0**24)
    np.testing.assert_allclose(angle, expected, rtol=1e-7)


def test_noise_is_standard_normal_in_each_part() -> None:
    n = _noise(11).ravel()
    for part in (n.real, n.imag):
        assert abs(part.mean()) < 5.0 / np.sqrt(part.size)
        assert abs(part.var() - 1.0) < 0.01
        assert abs(stats.kurtosis(part)) < 0.05  # Gaussian: excess kurtosis 0
        assert stats.kstest(part, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(n.real, n.imag)[0, 1]) < 0.01
    assert np.abs(n).max() <= np.sqrt(2.0 * 24 * np.log(2.0)) + 1e-6  # the 24-bit tail cap


def test_noise_is_white() -> None:
    """Flat spectrum (Welch, 64 segments a bin) and no correlation between neighbours."""
    n = _noise(12, (1, 1 << 18))[0]
    assert abs(np.mean(n[1:] * n[:-1].conj())) < 5.0 * 2.0 / np.sqrt(n.size)
    psd = np.abs(np.fft.fft(n.reshape(64, -1), axis=-1)) ** 2
    per_bin = psd.mean(axis=0) / n.reshape(64, -1).shape[1]
    assert abs(per_bin.mean() - 2.0) < 0.02 and per_bin.std() / per_bin.mean() < 0.2  # chi2 of 128 dof


def test_same_seed_same_bytes_and_seeds_differ() -> None:
    np.testing.assert_array_equal(_noise(5, (3, 100)), _noise(5, (3, 100)))
    assert not np.allclose(_noise(5, (3, 100)), _noise(6, (3, 100)))
    seeds = draw_noise_seeds(np.random.default_rng(0), 4)
    assert seeds.dtype == np.uint64 and len(set(seeds.tolist())) == 4
    np.testing.assert_array_equal(seeds, draw_noise_seeds(np.random.default_rng(0), 4))


def test_noise_buffers_must_be_float32_of_one_shape() -> None:
    with pytest.raises(InputError, match="contiguous float32 tensors"):
        standard_complex_normal_polar(np.uint64(1), torch.empty(4), torch.empty(4), torch.empty(5))
    with pytest.raises(InputError, match="contiguous float32 tensors"):
        standard_complex_normal_polar(np.uint64(1), *(torch.empty(4, dtype=torch.float64) for _ in range(3)))
