"""The registry repository's model rows and job counts (`jobs/repository.py`); the job state
machine's transitions are tested in test_queue.py."""

from __future__ import annotations

from pathlib import Path

from heimdall.jobs import repository as jobs
from heimdall.pipelines import Context
from heimdall.settings import Settings
from heimdall.tracking import Tracker


def _record(ctx: Context, name: str, version: int, job_id: str | None = None) -> None:
    jobs.record_model(
        ctx.db,
        name=name,
        version=version,
        bundle_uri=f"file:///models/{name}/v{version}",
        onnx_uri=f"file:///models/{name}/v{version}/model.onnx",
        dataset_name="d",
        job_id=job_id,
        mlflow_run_id=None,
        parent_model=None,
        metrics={"median_error_m": float(version)},
    )


def test_model_rows_are_found_by_name_version_job_and_listed_newest_first(ctx: Context) -> None:
    train = jobs.create_job(ctx.db, "train", "d", {})
    _record(ctx, "b", 1)
    _record(ctx, "a", 1, job_id=train)
    _record(ctx, "a", 2, job_id=train)
    _record(ctx, "a", 3)

    assert [(r.name, r.version) for r in jobs.model_records(ctx.db)] == [("a", 3), ("a", 2), ("a", 1), ("b", 1)]
    found = jobs.model_record(ctx.db, "a", 2)
    assert found is not None and found.job_id == train and found.metrics == {"median_error_m": 2.0}
    assert jobs.model_record(ctx.db, "a", 9) is None
    assert [r.version for r in jobs.job_model_records(ctx.db, train)] == [1, 2]
    assert jobs.recorded_versions(ctx.db, "a") == {1, 2, 3}
    assert jobs.recorded_versions(ctx.db, "c") == set()


def test_job_counts_name_every_state(ctx: Context) -> None:
    assert jobs.job_counts(ctx.db) == dict.fromkeys(
        ("queued", "running", "paused", "completed", "failed", "cancelled"), 0
    )
    first = jobs.create_job(ctx.db, "train", "d", {})
    jobs.create_job(ctx.db, "train", "d", {})
    jobs.request_cancel(ctx.db, first)
    counts = jobs.job_counts(ctx.db)
    assert counts["queued"] == 1 and counts["cancelled"] == 1 and sum(counts.values()) == 2


def test_merge_params_keeps_what_the_row_had(ctx: Context) -> None:
    job_id = jobs.create_job(ctx.db, "train", "d", {"spec": {"epochs": 2}})
    jobs.merge_params(ctx.db, job_id, {"export_job_id": "e1"})
    assert jobs.get_job(ctx.db, job_id).params == {"spec": {"epochs": 2}, "export_job_id": "e1"}


def test_tracker_reports_each_versions_aliases(home: Path, tmp_path: Path) -> None:
    tracker = Tracker(Settings(home=home))
    try:
        source = tmp_path / "bundle"
        source.mkdir()
        for _ in range(3):
            tracker.register("m", source.as_uri(), None)
        tracker.set_alias("m", 2, "staging")
        tracker.set_alias("m", 2, "production")
        tracker.set_alias("m", 3, "canary")
        assert tracker.version_aliases("m") == {2: ["production", "staging"], 3: ["canary"]}
        assert tracker.version_aliases("absent") == {}
    finally:
        tracker.close()
