"""The job state machine (`jobs/repository.py`) and the queue that runs jobs (`jobs/queue.py`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from heimdall.errors import ConfigError, InputError, NotFoundError, one_line
from heimdall.jobs import repository as jobs
from heimdall.jobs.queue import (
    CeleryExecutor,
    JobQueue,
    best_checkpoint,
    job_request,
    describe_job,
    resolve_init_from,
    run_job,
)
from heimdall.jobs.repository import ConflictError
from heimdall.pipelines import Context
from heimdall.requests import GenerateRequest, TrainRequest
from heimdall.settings import Settings


def test_state_machine_transitions(ctx: Context) -> None:
    db = ctx.db
    job_id = jobs.create_job(db, "train", "d", {}, total_epochs=4)
    assert jobs.get_job(db, job_id).status == "queued"
    with pytest.raises(ConflictError, match="only a running job"):
        jobs.request_pause(db, job_id)
    with pytest.raises(ConflictError, match="only a paused job"):
        jobs.request_resume(db, job_id)
    assert jobs.control_request(db, job_id) is None
    assert jobs.claim_job(db, job_id)
    assert not jobs.claim_job(db, job_id), "a job is claimed once"
    assert jobs.claim_job(db, job_id, allow_running=True), "redelivery of an idempotent job"
    job = jobs.get_job(db, job_id)
    assert job.status == "running" and job.started_at is not None
    jobs.request_pause(db, job_id)
    assert jobs.control_request(db, job_id) == "pause"
    jobs.record_epoch(db, job_id, 1, {"train_loss": 1.0, "val_loss": 2.0, "unknown": 3.0})
    jobs.finish_job(db, job_id, "paused")
    job = jobs.get_job(db, job_id)
    assert (job.status, job.pause_requested, job.finished_at) == ("paused", False, None)
    assert job.progress_message == "paused after epoch 2/4"
    assert jobs.latest_metrics(db, job_id).val_loss == 2.0
    jobs.request_resume(db, job_id)
    assert jobs.get_job(db, job_id).status == "queued"
    assert jobs.claim_job(db, job_id)
    jobs.request_cancel(db, job_id)
    assert jobs.control_request(db, job_id) == "cancel"
    jobs.finish_job(db, job_id, "cancelled")
    job = jobs.get_job(db, job_id)
    assert job.finished_at is not None and not job.cancel_requested
    for request in (jobs.request_cancel, jobs.request_pause, jobs.request_resume):
        with pytest.raises(ConflictError):
            request(db, job_id)
    with pytest.raises(InputError, match="unknown job status"):
        jobs.finish_job(db, job_id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        jobs.control_request(db, "no-such-job")


def test_only_training_jobs_pause_and_running_export_is_not_interrupted(ctx: Context) -> None:
    job_id = jobs.create_job(ctx.db, "generate", "d", {})
    jobs.claim_job(ctx.db, job_id)
    with pytest.raises(ConflictError, match="only training jobs"):
        jobs.request_pause(ctx.db, job_id)
    # A running generation stops at its next shard (issue 20); an export runs to its end.
    assert jobs.request_cancel(ctx.db, job_id).cancel_requested
    export_id = jobs.create_job(ctx.db, "export", "d", {})
    jobs.claim_job(ctx.db, export_id)
    with pytest.raises(ConflictError, match="cannot be interrupted"):
        jobs.request_cancel(ctx.db, export_id)
    queued = jobs.create_job(ctx.db, "generate", "d", {})
    assert jobs.request_cancel(ctx.db, queued).status == "cancelled"


def test_progress_result_and_listing(ctx: Context) -> None:
    first = jobs.create_job(ctx.db, "generate", "a", {"spec": {"name": "a"}})
    time.sleep(0.01)
    second = jobs.create_job(ctx.db, "train", "a", {"spec": {"dataset": "a"}}, total_epochs=10)
    jobs.set_progress(ctx.db, first, 50, 200, "half way there")
    jobs.set_result(ctx.db, first, {"samples": 200})
    view = describe_job(ctx, first)
    assert view["progress"] == {"current": 50, "total": 200, "fraction": 0.25, "message": "half way there"}
    assert view["result"] == {"samples": 200} and view["params"] == {"name": "a"}
    assert [j.id for j in jobs.list_jobs(ctx.db)] == [second, first]
    assert [j.id for j in jobs.list_jobs(ctx.db, kind="generate")] == [first]
    assert [j.id for j in jobs.list_jobs(ctx.db, dataset_name="a", limit=1)] == [second]
    assert jobs.list_jobs(ctx.db, status="running") == []


def test_run_job_records_failures_on_one_line(ctx: Context) -> None:
    bad = jobs.create_job(ctx.db, "generate", "x", {"spec": {"name": "x", "num_samples": 10, "scenario": {"path_loss_exponent": 99}}})
    assert run_job(ctx, bad) == "failed"
    error = jobs.get_job(ctx.db, bad).error
    assert "path_loss_exponent" in error and "\n" not in error
    unknown = jobs.create_job(ctx.db, "teleport", None, {})
    assert run_job(ctx, unknown) == "failed"
    cancelled = jobs.create_job(ctx.db, "generate", "x", {"spec": {"name": "x", "num_samples": 10}})
    jobs.request_cancel(ctx.db, cancelled)
    assert run_job(ctx, cancelled) == "cancelled", "a cancelled job is not run"


def test_run_job_hides_internal_error_messages(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from heimdall.jobs import runner as jobrunner

    def explode(*_args):
        raise RuntimeError("postgresql://user:hunter2@db/x")

    monkeypatch.setitem(jobrunner._RUNNERS, "generate", explode)
    job_id = jobs.create_job(ctx.db, "generate", "x", {"spec": {}})
    assert run_job(ctx, job_id) == "failed"
    assert jobs.get_job(ctx.db, job_id).error == "internal error (RuntimeError)"


def test_specs_validate_before_queueing(ctx: Context) -> None:
    with pytest.raises(InputError, match="iq"):
        GenerateRequest(name="a", num_samples=10, kind="iq").build()  # type: ignore[arg-type]
    with pytest.raises(InputError, match="positive"):
        GenerateRequest(name="a", num_samples=0).build()
    with pytest.raises(InputError, match="tx_power"):
        GenerateRequest(name="a", num_samples=10, scenario={"tx_power_min_dbm": 50, "tx_power_max_dbm": 10}).build()
    scenario, network = GenerateRequest(name="a", num_samples=10, frequency_hz=433e6).build()
    assert network.frequency_hz == 433e6 and len(network) == 7
    with pytest.raises(InputError, match="epochs"):
        job_request(ctx, TrainRequest(dataset="a", epochs=0)).validate()


def test_init_from_resolves_only_checkpoints_this_installation_wrote(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="job id or models"):
        resolve_init_from(ctx, "/etc/passwd")
    with pytest.raises(NotFoundError):
        resolve_init_from(ctx, "models:/heimdall-localizer/7")
    generate_job = jobs.create_job(ctx.db, "generate", "a", {})
    with pytest.raises(InputError, match="not a training job"):
        resolve_init_from(ctx, generate_job)
    train_job = jobs.create_job(ctx.db, "train", "a", {})
    with pytest.raises(NotFoundError, match="no checkpoints"):
        resolve_init_from(ctx, train_job)
    directory = tmp_path / "ckpts"
    directory.mkdir()
    for name in ("last.ckpt", "epoch000-val_loss3.5000.ckpt", "epoch001-val_loss2.2500.ckpt", "epoch002-val_loss2.7500.ckpt"):
        (directory / name).write_bytes(b"")
    jobs.start_job(ctx.db, train_job, checkpoint_dir=str(directory))
    assert resolve_init_from(ctx, train_job).name == "epoch001-val_loss2.2500.ckpt"
    (directory / "epoch001-val_loss2.2500.ckpt").unlink()
    assert best_checkpoint(jobs.get_job(ctx.db, train_job)).name == "epoch002-val_loss2.7500.ckpt"


def test_an_unreachable_broker_is_a_503_and_a_failed_job(ctx: Context) -> None:
    from heimdall.pipelines import generate

    generate(ctx, "b", 300, seed=1)
    queue = JobQueue(ctx, CeleryExecutor("redis://127.0.0.1:1/0"))
    try:
        health = queue.health()
        assert health["broker"]["status"] == "unavailable"
        with pytest.raises(ConfigError, match="job queue is unavailable"):
            queue.submit_train(TrainRequest(dataset="b", epochs=1))
    finally:
        queue.close()
    [job] = jobs.list_jobs(ctx.db, kind="train")
    assert job.status == "failed" and "worker" in job.error


def test_one_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 500


def test_job_errors_never_store_configured_secrets(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from heimdall.jobs import runner as jobrunner
    from heimdall.pipelines import open_context

    settings = Settings(home=home, api_token="tok-secret-1234", broker_url="redis://user:pa55word@localhost:1/0")
    ctx = open_context(settings)

    def leak(*_args):
        raise ConfigError("cannot reach redis://user:pa55word@localhost:1/0 with tok-secret-1234")

    monkeypatch.setitem(jobrunner._RUNNERS, "generate", leak)
    job_id = jobs.create_job(ctx.db, "generate", "x", {"spec": {}})
    assert run_job(ctx, job_id) == "failed"
    error = jobs.get_job(ctx.db, job_id).error
    assert "pa55word" not in error and "tok-secret" not in error and "***" in error
