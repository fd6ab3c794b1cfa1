"""Streaming training data: every training sample once per epoch, reshuffled, split kept."""

from __future__ import annotations

import pytest

from heimdall.data.shards import DatasetReader
from heimdall.data.streaming import ShardStream
from heimdall.pipelines import TrainRequest, generate, train


def _ids(stream: ShardStream) -> list[tuple[float, float]]:
    # Sample ids are not in the batch; transmitter positions identify samples instead.
    return [tuple(p) for batch in stream for p in batch["tx_position_m"].numpy().round(2)]


def test_stream_covers_the_split_once_per_epoch(ctx, monkeypatch) -> None:
    monkeypatch.setattr("heimdall.data.synthetic.SHARD_BLOCKS", 1)  # 1,024-sample shards
    generate(ctx, "st", 3500, seed=1)
    reader = DatasetReader(ctx.store, "st")
    assert len(reader.manifest.shards) == 4
    expected = {tuple(p) for p in reader.load("train").tx_position_m.round(2)}
    stream = ShardStream(reader, "train", batch_size=100, seed=3)
    first, second = _ids(stream), _ids(stream)
    assert len(first) == len(expected) and set(first) == expected
    assert set(second) == expected and first != second  # reshuffled
    # DDP: disjoint halves in equally many batches (a rank with one step more would hang the
    # all-reduce); each shard drops at most one sample per epoch to keep them equal.
    streams = [ShardStream(reader, "train", 100, seed=3, rank=r, world_size=2) for r in (0, 1)]
    batch_sizes = [[len(b["rss_dbm"]) for b in stream] for stream in streams]
    assert batch_sizes[0] == batch_sizes[1]
    ranks = [set(_ids(stream)) for stream in streams]
    assert not ranks[0] & ranks[1] and ranks[0] | ranks[1] <= expected
    assert len(expected) - len(ranks[0] | ranks[1]) <= len(reader.manifest.shards)
    assert len(ranks[0]) == len(ranks[1]) == sum(batch_sizes[0])
    for batch in ShardStream(reader, "val", batch_size=64):
        assert batch["rss_dbm"].shape[0] <= 64


@pytest.mark.slow
def test_training_can_stream(ctx, monkeypatch) -> None:
    monkeypatch.setattr("heimdall.data.synthetic.SHARD_BLOCKS", 1)
    generate(ctx, "st2", 2500, seed=2)
    result = train(ctx, TrainRequest(dataset="st2", epochs=2, hidden_dim=32, num_layers=1, stream=True))
    assert result.status == "completed" and result.epochs_run == 2
