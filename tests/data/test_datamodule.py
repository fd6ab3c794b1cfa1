"""The DataModule owns the splits: loading, re-splitting and the streaming decision."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.data.datamodule import HeimdallDataModule
from heimdall.data.layout import SPLIT_CODES
from heimdall.data.shards import DatasetReader
from heimdall.data.streaming import ShardStream
from heimdall.errors import DataError, InputError
from heimdall.pipelines import generate


@pytest.fixture
def reader(ctx, monkeypatch: pytest.MonkeyPatch) -> DatasetReader:
    monkeypatch.setattr("heimdall.data.synthetic.SHARD_BLOCKS", 1)  # 1,024-sample shards
    generate(ctx, "dm", 2500, seed=5)
    return DatasetReader(ctx.store, "dm")


def test_setup_loads_the_published_splits_and_keeps_test_out(reader: DatasetReader) -> None:
    module = HeimdallDataModule(reader, batch_size=64)
    module.setup("fit")
    counts = reader.manifest.split_counts
    assert (len(module.train_samples), len(module.val_samples)) == (counts["train"], counts["val"])
    assert not module.streams
    assert not np.any(module.train_samples.split == SPLIT_CODES["test"])
    first = next(iter(module.train_dataloader()))
    assert first["rss_dbm"].shape[0] == 64
    assert sum(len(b["rss_dbm"]) for b in module.val_dataloader()) == counts["val"]


def test_validation_split_redraws_train_and_val_only(reader: DatasetReader) -> None:
    plain = HeimdallDataModule(reader)
    plain.setup()
    module = HeimdallDataModule(reader, validation_split=0.3, seed=4)
    module.setup()
    before = set(plain.train_samples.sample_id) | set(plain.val_samples.sample_id)
    after_train, after_val = set(module.train_samples.sample_id), set(module.val_samples.sample_id)
    assert after_train | after_val == before and not after_train & after_val
    assert 0.2 < len(after_val) / len(before) < 0.4
    again = HeimdallDataModule(reader, validation_split=0.3, seed=4)
    again.setup()
    np.testing.assert_array_equal(again.val_samples.sample_id, module.val_samples.sample_id)


def test_streaming_serves_every_shard_and_refuses_a_resplit(reader: DatasetReader) -> None:
    module = HeimdallDataModule(reader, batch_size=100, stream=True)
    module.setup()
    assert module.streams
    loader = module.train_dataloader()
    assert isinstance(loader.dataset, ShardStream)
    assert sum(len(b["rss_dbm"]) for b in loader) == reader.manifest.split_counts["train"]
    with pytest.raises(InputError, match="cannot stream"):
        HeimdallDataModule(reader, stream=True, validation_split=0.2).setup()


def test_a_dataset_without_validation_samples_asks_for_a_split(ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(ctx, "noval", 300, seed=1)
    reader = DatasetReader(ctx.store, "noval")
    monkeypatch.setitem(reader.manifest.split_counts, "val", 0)
    with pytest.raises(DataError, match="--validation-split"):
        HeimdallDataModule(reader).setup()


def test_splits_in_memory_need_no_reader(reader: DatasetReader) -> None:
    train, val = reader.load("train"), reader.load("val")
    module = HeimdallDataModule.from_samples(train, val, batch_size=50)
    module.setup("fit")  # already set up: nothing is read
    assert not module.streams and module.train_samples is train
    assert sum(len(b["rss_dbm"]) for b in module.val_dataloader()) == len(val)
    with pytest.raises(DataError, match="from_samples"):
        HeimdallDataModule(None).setup()
