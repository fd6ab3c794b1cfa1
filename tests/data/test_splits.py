"""Fixed splits: fractions, determinism, spatial disjointness, no leak into training."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.shards import DatasetReader
from heimdall.data.splits import assign_splits, hash_uniform
from heimdall.errors import InputError
from heimdall.pipelines import generate


def test_hash_uniform_is_uniform_and_keyed_by_seed() -> None:
    keys = np.arange(100_000)
    u = hash_uniform(3, keys)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.histogram(u, bins=10, range=(0, 1))[0] == pytest.approx(np.full(10, 10_000), rel=0.05)
    assert np.array_equal(u, hash_uniform(3, keys))
    assert not np.array_equal(u, hash_uniform(4, keys))


def test_random_split_fractions_and_independence_from_order() -> None:
    ids = np.arange(50_000)
    tx = np.zeros((50_000, 2))
    codes = assign_splits(ids, tx, "random", seed=1)
    fractions = np.bincount(codes, minlength=3) / len(ids)
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    reversed_codes = assign_splits(ids[::-1], tx, "random", seed=1)
    assert np.array_equal(reversed_codes[::-1], codes)


def test_grid_split_gives_whole_cells_to_one_split() -> None:
    rng = np.random.default_rng(0)
    tx = rng.uniform(0, 80_000, size=(20_000, 2))
    codes = assign_splits(np.arange(20_000), tx, "grid", seed=2, bounds_m=(0, 80_000, 0, 80_000), cell_size_m=10_000)
    cells = (tx[:, 1] // 10_000) * 8 + tx[:, 0] // 10_000
    for cell in np.unique(cells):
        assert len(np.unique(codes[cells == cell])) == 1
    assert set(np.unique(codes)) == {0, 1, 2}


def test_bad_fractions_are_errors() -> None:
    with pytest.raises(InputError, match="sum to 1"):
        assign_splits(np.arange(3), np.zeros((3, 2)), "random", 0, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(InputError, match="unknown split mode"):
        assign_splits(np.arange(3), np.zeros((3, 2)), "spiral", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["random", "grid"])
def test_generated_dataset_has_no_test_position_in_train(ctx, mode: str) -> None:
    generate(ctx, f"leak-{mode}", 3000, seed=9, split_mode=mode)
    reader = DatasetReader(ctx.store, f"leak-{mode}")
    train, test = reader.load("train"), reader.load("test")
    assert len(test) > 0
    assert not set(train.sample_id) & set(test.sample_id)
    train_positions = {tuple(p) for p in np.round(train.tx_position_m, 1)}
    assert not any(tuple(p) in train_positions for p in np.round(test.tx_position_m, 1))
    if mode == "grid":
        # Spatially disjoint: every test point is farther from train than the typical spacing.
        d = np.min(np.linalg.norm(test.tx_position_m[:200, None] - train.tx_position_m[None], axis=-1), axis=1)
        spacing = np.median(np.min(np.linalg.norm(train.tx_position_m[:200, None] - train.tx_position_m[None, 1:], axis=-1), axis=1))
        assert np.median(d) > spacing
