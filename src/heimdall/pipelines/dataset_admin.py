"""Dataset administration the API needs: page through sample rows, delete a dataset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from heimdall.jobs import repository as jobs
from heimdall.data.catalog import dataset_row
from heimdall.data.shards import dataset_prefix
from heimdall.errors import InputError, NotFoundError
from heimdall.jobs.repository import ConflictError
from heimdall.pipelines.context import Context
from heimdall.storage.tables import SyntheticDataset, SyntheticTrainingSample

__all__ = ["MAX_PAGE", "MAX_OFFSET", "dataset_samples", "delete_dataset"]

#: Most sample rows one page returns.
MAX_PAGE = 1000
#: Largest row offset a page may start at: far beyond any dataset, well inside the 64-bit
#: integers SQLite and PostgreSQL take (a larger one overflowed into a 500).
MAX_OFFSET = 10**15


def dataset_samples(ctx: Context, name: str, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """Rows of `synthetic_training_samples` for dataset `name`, in sample order."""
    if not 0 <= offset <= MAX_OFFSET:
        raise InputError(f"offset must be in [0, {MAX_OFFSET}], got {offset}")
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit must be in [1, {MAX_PAGE}], got {limit}")
    dataset_id = dataset_row(ctx.db, name).id
    columns = ("sample_id", "split", "tx_lat_deg", "tx_lon_deg", "tx_power_dbm", "num_receivers_heard", "shard")
    with ctx.db.session() as session:
        total = session.scalar(
            select(func.count()).select_from(SyntheticTrainingSample).where(SyntheticTrainingSample.dataset_id == dataset_id)
        )
        rows = session.execute(
            select(*(getattr(SyntheticTrainingSample, c) for c in columns))
            .where(SyntheticTrainingSample.dataset_id == dataset_id)
            .order_by(SyntheticTrainingSample.sample_id)
            .offset(offset)
            .limit(limit)
        ).all()
    return {
        "dataset": name,
        "total": int(total or 0),
        "offset": offset,
        "limit": limit,
        "samples": [dict(zip(columns, row, strict=True)) for row in rows],
    }


def delete_dataset(ctx: Context, name: str) -> dict[str, Any]:
    """Remove a dataset's stored files and its database rows.

    Refused while a queued or running job uses it; models trained on it stay (their bundles
    carry what they need).
    """
    prefix = dataset_prefix(name)
    busy = [j.id for status in jobs.ACTIVE for j in jobs.list_jobs(ctx.db, status=status, dataset_name=name)]
    if busy:
        raise ConflictError(f"dataset {name!r} is used by active job(s) {', '.join(busy)}; cancel them first")
    files = ctx.store.delete_prefix(prefix)
    try:
        dataset_id: int | None = dataset_row(ctx.db, name).id
    except NotFoundError:
        dataset_id = None
    rows = 0
    if dataset_id is not None:
        with ctx.db.session() as session:
            # Explicitly, not by ON DELETE CASCADE: SQLite enforces it only with a pragma.
            rows = session.execute(
                delete(SyntheticTrainingSample).where(SyntheticTrainingSample.dataset_id == dataset_id)
            ).rowcount
            session.execute(delete(SyntheticDataset).where(SyntheticDataset.id == dataset_id))
    if files == 0 and dataset_id is None:
        raise NotFoundError(f"dataset {name!r} not found")
    return {"dataset": name, "deleted_files": files, "deleted_sample_rows": int(rows or 0)}
