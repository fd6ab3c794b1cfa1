"""2-D Gaussian negative log-likelihood with a full covariance."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["GaussianNLLLoss", "gaussian_nll_2d"]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_nll_2d(mean: torch.Tensor, scale_tril: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample NLL of `target` [B,2] under N(mean [B,2], L L^T), L = `scale_tril` [B,2,2].

    Closed form `log(2 pi) + 0.5 log det S + 0.5 d^T S^-1 d`, evaluated through the
    Cholesky factor (log det S = 2 log(l11 l22); S^-1 by two triangular divisions), which
    stays finite for any positive diagonal.
    """
    delta = target - mean
    l11 = scale_tril[:, 0, 0]
    l21 = scale_tril[:, 1, 0]
    l22 = scale_tril[:, 1, 1]
    z1 = delta[:, 0] / l11
    z2 = (delta[:, 1] - l21 * z1) / l22
    return _LOG_2PI + torch.log(l11) + torch.log(l22) + 0.5 * (z1 * z1 + z2 * z2)


class GaussianNLLLoss(nn.Module):
    """Mean 2-D Gaussian NLL over a batch (the seeds' name, with a full covariance)."""

    def forward(self, mean: torch.Tensor, scale_tril: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gaussian_nll_2d(mean, scale_tril, target).mean()
