"""Errors and coverage by the distance from each truth to the nearest training transmitter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.evaluation.by_distance import bin_by_distance, by_distance_to_training


def test_terciles_of_the_distance_to_training_split_errors_that_grow_with_it() -> None:
    rng = np.random.default_rng(0)
    training = rng.uniform(0.0, 1000.0, size=(50, 2))
    truth = training[rng.integers(0, 50, 3000)] + rng.normal(size=(3000, 2)) * rng.uniform(1.0, 60.0, (3000, 1))
    distance = np.min(np.linalg.norm(truth[:, None] - training[None], axis=2), axis=1)
    # A model whose error is the distance itself, under ellipses of a constant 30 m sigma.
    sigma_m = 30.0
    groups = by_distance_to_training(truth, training, distance, (distance / sigma_m) ** 2, ellipse95_sigmas=3.0)
    assert [g["n"] for g in groups] == [1000, 1000, 1000]
    assert groups[0]["from_m"] == 0.0 and groups[-1]["to_m"] is None
    assert groups[0]["to_m"] == pytest.approx(np.quantile(distance, 1 / 3))
    medians = [g["median_error_m"] for g in groups]
    assert medians == sorted(medians) and medians[2] > 2 * medians[0]
    # Coverage is exactly the share of each group within 1 and 2 sigma of its truth.
    for g in groups:
        inside = (distance >= g["from_m"]) & (distance < (g["to_m"] or math.inf))
        assert g["coverage_1sigma"] == pytest.approx(np.mean(distance[inside] <= sigma_m))
        assert g["coverage_2sigma"] == pytest.approx(np.mean(distance[inside] <= 2 * sigma_m))
        assert g["coverage_95"] == pytest.approx(np.mean(distance[inside] <= 3 * sigma_m))
    assert groups[0]["coverage_1sigma"] > groups[2]["coverage_1sigma"]


def test_too_few_samples_or_no_training_positions_give_no_groups() -> None:
    truth = np.zeros((29, 2))
    assert by_distance_to_training(truth, np.ones((5, 2)), np.ones(29), np.ones(29)) == []
    assert by_distance_to_training(np.zeros((60, 2)), np.full((3, 2), np.nan), np.ones(60), np.ones(60)) == []


def test_an_unplaced_sample_is_an_infinite_error_outside_every_ellipse() -> None:
    rows = bin_by_distance(np.array([1.0, 2.0, 3.0]), np.array([5.0, np.nan, 7.0]), np.array([0.5, np.nan, 3.0]), ())
    (only,) = rows
    assert only["n"] == 3 and only["median_error_m"] == 7.0
    assert only["coverage_1sigma"] == pytest.approx(1 / 3) and only["coverage_2sigma"] == pytest.approx(2 / 3)
