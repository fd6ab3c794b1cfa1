"""The whole job on the production services: PostgreSQL, S3 (moto) and MLflow on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from heimdall.export.localizer import Localizer
from heimdall.pipelines import TrainRequest, dataset_export, export, generate, localize, open_context, train
from heimdall.settings import Settings
from heimdall.storage.tables import ModelRecord, SyntheticDataset, SyntheticTrainingSample

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_generate_train_export_register_localize_on_services(
    postgres_database: str, s3_endpoint_url: str, s3_client, tmp_path: Path
) -> None:
    prefix = f"h{uuid.uuid4().hex[:10]}"
    settings = Settings(
        home=tmp_path / "home",
        database_url=postgres_database,
        mlflow_tracking_uri=postgres_database,
        s3_endpoint_url=s3_endpoint_url,
        s3_access_key_id="heimdall-test",  # moto accepts any non-empty credentials
        s3_secret_access_key="heimdall-test-secret",
        s3_bucket_prefix=prefix,
    )
    ctx = open_context(settings)
    try:
        _flow(ctx, settings, s3_client, prefix, tmp_path)
    finally:
        ctx.close()


def _flow(ctx, settings: Settings, client, prefix: str, tmp_path: Path) -> None:
    generate(ctx, "prod", 1500, seed=1)
    result = train(ctx, TrainRequest(dataset="prod", epochs=1, hidden_dim=32, num_layers=1))
    exported = export(ctx, Path(result.best_checkpoint))
    # Rows in PostgreSQL.
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SyntheticTrainingSample)) == 1500
        assert session.scalars(select(SyntheticDataset.storage_uri)).one().startswith(f"s3://{prefix}-datasets/")
        assert session.scalars(select(ModelRecord.bundle_uri)).one() == f"s3://{prefix}-models/heimdall-localizer/v1"
    # Objects in S3: the dataset, the bundle (manifest included) and MLflow's copy of it.
    datasets = {o["Key"] for o in client.list_objects_v2(Bucket=f"{prefix}-datasets")["Contents"]}
    assert "prod/manifest.json" in datasets and "prod/shard-00000.npz" in datasets
    models = {o["Key"] for o in client.list_objects_v2(Bucket=f"{prefix}-models")["Contents"]}
    assert {f"heimdall-localizer/v1/{f}" for f in ("model.onnx", "config.yaml", "metrics.json", "README.md")} <= models
    mlflow_objects = [o["Key"] for o in client.list_objects_v2(Bucket=f"{prefix}-mlflow").get("Contents", [])]
    assert any(key.endswith("bundle/v1/model.onnx") for key in mlflow_objects), mlflow_objects
    # The registry on PostgreSQL resolves the version, and the model localises from it.
    localizer = Localizer.from_registry("models:/heimdall-localizer/latest", settings)
    assert localizer.config["dataset"] == "prod"
    csv = tmp_path / "test.csv"
    dataset_export(ctx, "prod", "test", csv)
    located = localize(ctx, exported.registered, csv)
    assert len(located["predictions"]) > 0
