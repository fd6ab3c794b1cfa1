"""Post-hoc variance calibration: one scale factor for predicted covariances."""

from __future__ import annotations

import numpy as np

from heimdall.errors import DataError
from heimdall.evaluation.metrics import mahalanobis_sq

__all__ = ["COVERAGE_TARGETS", "fit_covariance_scale"]

#: (k, fraction of truths a calibrated 2-D Gaussian's k-sigma ellipse holds) at 1 and 2 sigma.
COVERAGE_TARGETS = ((1.0, 1.0 - float(np.exp(-0.5))), (2.0, 1.0 - float(np.exp(-2.0))))


def fit_covariance_scale(delta_m: np.ndarray, covariance_m2: np.ndarray) -> float:
    """Factor c such that ellipses of c * covariance hold ~39.3% / 86.5% of errors at 1 / 2 sigma.

    Fitted on held-out (validation) errors by a log-spaced search minimising the squared
    coverage misfit at 1 and 2 sigma; a well-calibrated model gets c close to 1.
    """
    d2 = mahalanobis_sq(delta_m, covariance_m2)
    d2 = d2[np.isfinite(d2)]
    if d2.size < 10:
        raise DataError("need at least 10 validation samples to calibrate the covariance")
    scales = np.exp(np.linspace(np.log(0.01), np.log(100.0), 2001))
    misfit = np.zeros_like(scales)
    for k, target in COVERAGE_TARGETS:
        coverage = (d2[None, :] <= (k * k) * scales[:, None]).mean(axis=1)
        misfit += (coverage - target) ** 2
    return float(scales[int(np.argmin(misfit))])
