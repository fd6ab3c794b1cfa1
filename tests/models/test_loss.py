"""Gaussian NLL: the closed form, its reference values, numerical safety."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from heimdall.models.loss import GaussianNLLLoss, gaussian_nll_2d


def _tril(sigma_x: float, sigma_y: float, rho: float) -> torch.Tensor:
    cov = torch.tensor([[sigma_x**2, rho * sigma_x * sigma_y], [rho * sigma_x * sigma_y, sigma_y**2]], dtype=torch.float64)
    return torch.linalg.cholesky(cov)[None]


def test_matches_independent_reference_values(reference_values: dict) -> None:
    for case in reference_values["gaussian_nll_2d"]:
        value = gaussian_nll_2d(
            torch.zeros(1, 2, dtype=torch.float64),
            _tril(case["sigma_x"], case["sigma_y"], case["rho"]),
            torch.tensor([[case["dx"], case["dy"]]], dtype=torch.float64),
        )
        assert float(value) == pytest.approx(case["value"], abs=1e-5)


def test_matches_torch_multivariate_normal() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 2, generator=generator, dtype=torch.float64)
    target = torch.randn(64, 2, generator=generator, dtype=torch.float64) * 3
    a = torch.randn(64, 2, 2, generator=generator, dtype=torch.float64)
    cov = a @ a.transpose(-1, -2) + 0.1 * torch.eye(2, dtype=torch.float64)
    tril = torch.linalg.cholesky(cov)
    expected = -torch.distributions.MultivariateNormal(mean, scale_tril=tril).log_prob(target)
    torch.testing.assert_close(gaussian_nll_2d(mean, tril, target), expected)
    assert float(GaussianNLLLoss()(mean, tril, target)) == pytest.approx(float(expected.mean()))


def test_minimised_by_the_true_sigma() -> None:
    # For errors ~ N(0, s^2 I), the expected NLL is smallest at predicted sigma = s.
    errors = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3.0
    sigmas = np.linspace(1.0, 6.0, 51)
    losses = [float(gaussian_nll_2d(torch.zeros_like(errors), _tril(s, s, 0.0).expand(len(errors), 2, 2), errors).mean()) for s in sigmas]
    assert sigmas[int(np.argmin(losses))] == pytest.approx(3.0, abs=0.1)


def test_finite_for_tiny_and_huge_scales() -> None:
    for scale in (1e-6, 1e6):
        value = gaussian_nll_2d(torch.zeros(1, 2), torch.eye(2)[None] * scale, torch.ones(1, 2))
        assert math.isfinite(float(value))
