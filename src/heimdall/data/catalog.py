"""Dataset rows in the database (`synthetic_datasets`, `synthetic_training_samples`)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update

from heimdall.data.layout import SPLIT_NAMES
from heimdall.data.shards import DatasetManifest, DatasetReader
from heimdall.errors import NotFoundError
from heimdall.storage.database import Database
from heimdall.storage.tables import SyntheticDataset, SyntheticTrainingSample

__all__ = ["register_dataset", "list_datasets", "dataset_row"]

_INSERT_CHUNK = 20_000
#: Names of rows still being registered; no dataset name starts with a dot.
_STAGING_PREFIX = ".registering-"


def register_dataset(db: Database, reader: DatasetReader, storage_uri: str) -> int:
    """Insert the dataset row and one summary row per sample; return the dataset row's id.

    The sample rows go in one short transaction per chunk (a million rows in one would hold
    SQLite's write lock for many seconds, and every other writer, a job's progress or
    another import, would wait or fail). Until the last transaction the row carries a
    hidden staging name, so no reader sees a half-registered dataset; the last one swaps it
    in for any earlier row of that name.
    """
    manifest: DatasetManifest = reader.manifest
    staging_name = f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
    with db.session() as session:
        row = SyntheticDataset(
            name=staging_name,
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
    try:
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
                with db.session() as session:
                    session.execute(insert(SyntheticTrainingSample), rows[start : start + _INSERT_CHUNK])
        with db.session() as session:
            old_ids = list(session.scalars(select(SyntheticDataset.id).where(SyntheticDataset.name == manifest.name)))
            if old_ids:
                session.execute(delete(SyntheticTrainingSample).where(SyntheticTrainingSample.dataset_id.in_(old_ids)))
                session.execute(delete(SyntheticDataset).where(SyntheticDataset.id.in_(old_ids)))
            session.execute(
                update(SyntheticDataset).where(SyntheticDataset.id == dataset_id).values(name=manifest.name)
            )
    except BaseException:
        with db.session() as session:
            session.execute(delete(SyntheticTrainingSample).where(SyntheticTrainingSample.dataset_id == dataset_id))
            session.execute(delete(SyntheticDataset).where(SyntheticDataset.id == dataset_id))
        raise
    return dataset_id


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def list_datasets(db: Database) -> list[SyntheticDataset]:
    """Every dataset row, newest first."""
    with db.session() as session:
        return list(
            session.scalars(
                select(SyntheticDataset)
                .where(~SyntheticDataset.name.startswith(_STAGING_PREFIX))
                .order_by(SyntheticDataset.created_at.desc())
            )
        )


def dataset_row(db: Database, name: str) -> SyntheticDataset:
    """The row of dataset `name`."""
    with db.session() as session:
        row = session.scalars(select(SyntheticDataset).where(SyntheticDataset.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"dataset {name!r} not found")
    return row
