"""Repairs of what a killed export leaves (in process; the kill -9 tests run real processes)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from sqlalchemy import select

from heimdall.pipelines import Context
from heimdall.pipelines.publishing import doctor, model_repairs, publish_lock, repair_models
from heimdall.storage.tables import ModelRecord


def _publish_fake_bundle(ctx: Context, tmp_path: Path, name: str, version: int, **extra: str) -> None:
    source = tmp_path / f"b{name}{version}"
    source.mkdir()
    (source / "model.onnx").write_bytes(b"onnx")
    (source / "metrics.json").write_text(json.dumps({"evaluation": {"median_error_m": 1234.0, "baselines": {}}}))
    config = {"dataset": "d", "job_id": None, "mlflow_run_id": None, "training": {"init_from": "models:/p/1"}, **extra}
    (source / "config.yaml").write_text(yaml.safe_dump(config))
    ctx.store.publish_dir(f"models/{name}/v{version}", source, "config.yaml")


def test_half_published_versions_are_removed_and_unrecorded_ones_recorded(ctx: Context, tmp_path: Path) -> None:
    name = "m"
    _publish_fake_bundle(ctx, tmp_path, name, 1)
    ctx.tracker.register(name, ctx.store.uri(f"models/{name}/v1"), None)  # registered, never recorded
    _publish_fake_bundle(ctx, tmp_path, name, 2)  # published, never registered
    found = model_repairs(ctx, name)
    assert (found.unregistered, found.unrecorded) == ([2], [1])
    report = doctor(ctx)
    assert not report.clean and [m.name for m in report.models if not m.empty] == [name]
    with publish_lock(ctx, name):
        repair_models(ctx, name)
    assert not ctx.store.exists(f"models/{name}/v2/config.yaml") and ctx.store.exists(f"models/{name}/v1/config.yaml")
    with ctx.db.session() as session:
        record = session.scalars(select(ModelRecord).where(ModelRecord.name == name)).one()
    assert (record.version, record.dataset_name, record.parent_model) == (1, "d", "models:/p/1")
    assert record.metrics == {"median_error_m": 1234.0}
    assert model_repairs(ctx, name).empty and doctor(ctx).clean
    # The freed number is the next registration's again.
    assert ctx.tracker.next_version(name) == 2


def test_doctor_fix_repairs_every_model(ctx: Context, tmp_path: Path) -> None:
    _publish_fake_bundle(ctx, tmp_path, "other", 1)
    fixed = doctor(ctx, fix=True)
    assert fixed.fixed and [m.unregistered for m in fixed.models if m.name == "other"] == [[1]]
    assert doctor(ctx).clean


def test_a_version_whose_export_still_runs_is_left_alone(ctx: Context, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from heimdall.storage.staging import owner_token

    now = datetime.now(timezone.utc).isoformat()
    _publish_fake_bundle(ctx, tmp_path, "live", 1, published_by=owner_token(), created_at=now)  # this process
    _publish_fake_bundle(ctx, tmp_path, "far", 1, published_by="ffffff-1-1", created_at=now)  # another machine
    for name in ("live", "far"):
        with publish_lock(ctx, name):
            assert repair_models(ctx, name).unregistered == []
        assert ctx.store.exists(f"models/{name}/v1/config.yaml")

