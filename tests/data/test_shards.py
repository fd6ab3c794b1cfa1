"""Dataset storage: round trip, atomic publication, catalogue rows."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from heimdall.data.shards import DatasetReader, DatasetWriter
from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.network import default_network
from heimdall.pipelines import dataset_show, datasets_list, generate
from heimdall.sim.scenario import ScenarioConfig
from heimdall.storage.tables import SyntheticTrainingSample


def test_generate_round_trip_and_catalogue(ctx) -> None:
    result = generate(ctx, "rt", 2500, seed=1)
    assert result.samples == 2500 and sum(result.splits.values()) == 2500
    assert 0.0 < result.acceptance_rate <= 1.0
    reader = DatasetReader(ctx.store, "rt")
    samples = reader.load()
    assert len(samples) == 2500
    assert np.array_equal(np.sort(samples.sample_id), np.arange(2500))
    assert reader.network == default_network()
    assert [row["name"] for row in datasets_list(ctx)] == ["rt"]
    with ctx.db.session() as session:
        count = session.scalar(select(func.count()).select_from(SyntheticTrainingSample))
    assert count == 2500
    shown = dataset_show(ctx, "rt")
    assert shown["num_samples"] == 2500 and shown["scenario"]["path_loss_exponent"] == 3.0


def test_same_seed_gives_identical_datasets(ctx) -> None:
    generate(ctx, "a", 1500, seed=3)
    generate(ctx, "b", 1500, seed=3, workers=2)
    a = DatasetReader(ctx.store, "a").load()
    b = DatasetReader(ctx.store, "b").load()
    for key, value in a.to_dict().items():
        assert value.tobytes() == b.to_dict()[key].tobytes(), key


def test_failed_generation_leaves_nothing(ctx) -> None:
    hopeless = ScenarioConfig(tx_power_min_dbm=-80, tx_power_max_dbm=-70, max_draw_factor=2)
    with pytest.raises(DataError):
        generate(ctx, "broken", 1000, scenario=hopeless)
    with pytest.raises(NotFoundError):
        DatasetReader(ctx.store, "broken")
    assert not list(ctx.staging_dir.iterdir())
    assert ctx.store.list("datasets") == []


def test_names_and_duplicates_are_checked(ctx) -> None:
    generate(ctx, "dup", 1200)
    with pytest.raises(InputError, match="already exists"):
        generate(ctx, "dup", 1200)
    with pytest.raises(InputError, match="invalid dataset name"):
        generate(ctx, "../escape", 1200)


def test_empty_dataset_cannot_be_published(ctx) -> None:
    network = default_network()
    with DatasetWriter(ctx.store, "empty", ctx.staging_dir) as writer, pytest.raises(DataError, match="empty"):
        writer.publish(network, network.reference_point(), kind="features", split_mode="random")


def test_a_reader_that_keeps_loaded_splits_reads_each_once(ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("heimdall.data.synthetic.SHARD_BLOCKS", 1)
    generate(ctx, "kept", 2100, seed=3)
    reads: list[str] = []
    real = DatasetReader.load_shard

    def counted(self, file: str, split: str = "all"):
        reads.append(split)
        return real(self, file, split)

    monkeypatch.setattr(DatasetReader, "load_shard", counted)
    plain, keeping = DatasetReader(ctx.store, "kept"), DatasetReader(ctx.store, "kept", keep_loaded=True)
    for reader in (plain, keeping):
        first = reader.load("test")
        np.testing.assert_array_equal(reader.load("test").sample_id, first.sample_id)
    shards = len(plain.manifest.shards)
    assert reads.count("test") == 2 * shards + shards  # the plain reader twice, the keeping one once
