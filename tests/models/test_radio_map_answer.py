"""The radio map's answer: the posterior's geometric median, the point of least expected distance."""

from __future__ import annotations

import numpy as np
import torch

from heimdall.models.radio_map_candidates import geometric_median


def _answer(weights: list[float], points_m: list[tuple[float, float]], candidates: int = 256) -> np.ndarray:
    w = torch.tensor([weights], dtype=torch.float32)
    loc = torch.tensor([points_m], dtype=torch.float32)
    start = torch.einsum("bc,bci->bi", w, loc) / w.sum(1, keepdim=True)
    return geometric_median(w, loc, start, candidates=candidates)[0].double().numpy()


def _expected_distance_m(x: np.ndarray, weights: np.ndarray, points_m: np.ndarray) -> np.ndarray:
    """E|x - l| for each row of x [N,2] under normalised weights."""
    return (np.linalg.norm(x[:, None, :] - points_m[None], axis=2) * (weights / weights.sum())).sum(1)


def test_a_minor_far_mode_does_not_pull_the_answer_off_the_main_one() -> None:
    # 70% of the mass at the origin, 30% a kilometre east: the mean sits 300 m from the
    # main mode with an expected error of 420 m; the median stays on it (expected 300 m).
    answer = _answer([0.7, 0.3], [(0.0, 0.0), (1000.0, 0.0)])
    assert np.linalg.norm(answer) < 2.0
    points = np.array([[0.0, 0.0], [1000.0, 0.0]])
    weights = np.array([0.7, 0.3])
    assert _expected_distance_m(answer[None], weights, points)[0] < 0.75 * _expected_distance_m(
        np.array([[300.0, 0.0]]), weights, points)[0]


def test_a_symmetric_posterior_keeps_its_centre() -> None:
    answer = _answer([0.25] * 4, [(-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0)])
    np.testing.assert_allclose(answer, [0.0, 0.0], atol=1e-3)


def test_on_a_line_it_is_the_weighted_median() -> None:
    answer = _answer([1 / 3, 1 / 3, 1 / 3], [(0.0, 0.0), (100.0, 0.0), (1000.0, 0.0)])
    np.testing.assert_allclose(answer, [100.0, 0.0], atol=1.5)


def test_no_point_of_a_fine_lattice_has_a_smaller_expected_distance() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(0.0, 200.0, size=(60, 2)) + np.where(rng.random((60, 1)) < 0.3, 800.0, 0.0)
    weights = rng.random(60) ** 3
    answer = _answer((weights / weights.sum()).tolist(), [tuple(p) for p in points])
    east, north = np.meshgrid(np.linspace(-600, 1400, 201), np.linspace(-600, 1400, 201))
    lattice = np.stack([east.ravel(), north.ravel()], axis=1)
    best = _expected_distance_m(lattice, weights, points).min()
    assert _expected_distance_m(answer[None], weights, points)[0] <= best + 0.5


def test_candidates_of_negligible_weight_are_left_out_without_moving_it() -> None:
    rng = np.random.default_rng(5)
    points = rng.uniform(-1000.0, 1000.0, size=(2000, 2))
    weights = np.full(2000, 1e-9)
    weights[:50] = rng.random(50)
    full = _answer(weights.tolist(), [tuple(p) for p in points], candidates=2000)
    kept = _answer(weights.tolist(), [tuple(p) for p in points], candidates=256)
    np.testing.assert_allclose(kept, full, atol=0.5)
