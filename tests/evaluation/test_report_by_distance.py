"""report.md shows the error by distance to the training data when the evaluation has it."""

from __future__ import annotations

import numpy as np

from heimdall.evaluation.evaluate import Evaluation
from heimdall.evaluation.figures import ReportContext
from heimdall.evaluation.report import _markdown
from heimdall.geo import ReferencePoint


def _evaluation(summary_extra: dict) -> tuple[Evaluation, ReportContext]:
    summary = {"n": 60, "median_error_m": 80.0, "p90_error_m": 200.0, "rmse_m": 120.0, "coverage_1sigma": 0.5,
               "coverage_2sigma": 0.8, "baselines": {}, **summary_extra}
    empty = np.zeros((0, 2))
    evaluation = Evaluation(summary, empty, empty, np.zeros((0, 2, 2)), {"model": np.zeros(0)}, None, np.zeros(0))
    context = ReportContext(ReferencePoint(40.76, -111.84), np.zeros(0), np.zeros(0), [], [], [], "measured")
    return evaluation, context


def test_the_groups_by_distance_to_training_become_a_table() -> None:
    groups = [
        {"from_m": 0.0, "to_m": 8.4, "n": 20, "median_error_m": 41.0, "coverage_1sigma": 0.75, "coverage_2sigma": 0.95},
        {"from_m": 8.4, "to_m": 22.0, "n": 20, "median_error_m": 77.0, "coverage_1sigma": 0.6, "coverage_2sigma": 0.85},
        {"from_m": 22.0, "to_m": None, "n": 20, "median_error_m": 150.0, "coverage_1sigma": 0.4, "coverage_2sigma": 0.7},
    ]
    text = _markdown(*_evaluation({"by_distance_to_training": groups}))
    assert "| 0 m - 8 m | 20 | 41 m | 0.750 | 0.950 |" in text
    assert "| 22 m - ... | 20 | 150 m | 0.400 | 0.700 |" in text
    assert "distance to training" not in _markdown(*_evaluation({}))
