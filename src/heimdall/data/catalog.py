"""Dataset rows in the database (`synthetic_datasets`, `synthetic_training_samples`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select

from heimdall.data.layout import SPLIT_NAMES
from heimdall.data.shards import DatasetManifest, DatasetReader
from heimdall.errors import NotFoundError
from heimdall.storage.database import Database
from heimdall.storage.tables import SyntheticDataset, SyntheticTrainingSample

__all__ = ["register_dataset", "list_datasets", "dataset_row"]

_INSERT_CHUNK = 20_000


def register_dataset(db: Database, reader: DatasetReader, storage_uri: str) -> int:
    """Insert the dataset row and one summary row per sample (bulk executemany)."""
    manifest: DatasetManifest = reader.manifest
    with db.session() as session:
        session.execute(delete(SyntheticDataset).where(SyntheticDataset.name == manifest.name))
        row = SyntheticDataset(
            name=manifest.name,
            kind=manifest.kind,
            num_samples=manifest.num_samples,
            description=manifest.description,
            storage_uri=storage_uri,
            network_name=reader.network.name,
            seed=manifest.seed,
            acceptance_rate=manifest.acceptance_rate,
            split_mode=manifest.split_mode,
            split_counts=manifest.split_counts,
            config={"scenario": manifest.scenario, "effective_sigma_db": manifest.effective_sigma_db},
        )
        session.add(row)
        session.flush()
        dataset_id = row.id
        for shard_index, shard in enumerate(reader.iter_shards()):
            heard = shard.heard.sum(axis=1)
            rows = [
                {
                    "dataset_id": dataset_id,
                    "sample_id": int(shard.sample_id[i]),
                    "split": SPLIT_NAMES[int(shard.split[i])],
                    "tx_lat_deg": _finite(shard.tx_lat_deg[i]),
                    "tx_lon_deg": _finite(shard.tx_lon_deg[i]),
                    "tx_power_dbm": _finite(shard.tx_power_dbm[i]),
                    "num_receivers_heard": int(heard[i]),
                    "shard": shard_index,
                }
                for i in range(len(shard))
            ]
            for start in range(0, len(rows), _INSERT_CHUNK):
                session.execute(insert(SyntheticTrainingSample), rows[start : start + _INSERT_CHUNK])
    return dataset_id


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def list_datasets(db: Database) -> list[SyntheticDataset]:
    """Every dataset row, newest first."""
    with db.session() as session:
        return list(session.scalars(select(SyntheticDataset).order_by(SyntheticDataset.created_at.desc())))


def dataset_row(db: Database, name: str) -> SyntheticDataset:
    """The row of dataset `name`."""
    with db.session() as session:
        row = session.scalars(select(SyntheticDataset).where(SyntheticDataset.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"dataset {name!r} not found")
    return row
