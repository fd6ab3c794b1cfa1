"""`heimdall train` killed with SIGKILL mid-epoch, then `--resume-training`: same job, same
MLflow run, the requested number of epochs, the job row completed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heimdall.jobs import repository as jobs
from heimdall.pipelines import generate, open_context
from heimdall.settings import Settings
from heimdall.storage.tables import TrainingJob

CLI = "from heimdall.cli import app; app()"
EPOCHS = 5


def _only_job(ctx) -> TrainingJob | None:
    rows = jobs.list_jobs(ctx.db, kind="train")
    return rows[0] if rows else None


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_training(home: Path, tools) -> None:
    ctx = open_context(Settings(home=home))
    generate(ctx, "tk", 1500, seed=3)
    command = [sys.executable, "-c", CLI, "train", "--dataset", "tk", "--epochs", str(EPOCHS), "--batch-size", "64",
               "--json"]
    process = subprocess.Popen(command, cwd=tools.REPO, env=tools.clean_env(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 480
    job = None
    # Wait for epoch 1's checkpoint (the job row counts epochs done), then a little into epoch 2.
    while process.poll() is None and time.monotonic() < deadline:
        job = _only_job(ctx)
        if job is not None and job.current_epoch >= 1 and job.checkpoint_dir and (Path(job.checkpoint_dir) / "last.ckpt").is_file():
            break
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert job is not None and job.mlflow_run_id
    killed = jobs.get_job(ctx.db, job.id)
    assert killed.status == "running" and 1 <= killed.current_epoch < EPOCHS  # what a SIGKILL leaves

    last = Path(job.checkpoint_dir) / "last.ckpt"
    resumed = subprocess.run(
        [sys.executable, "-c", CLI, "train", "--checkpoint", str(last), "--resume-training", "--epochs", str(EPOCHS),
         "--batch-size", "64", "--json"],
        cwd=tools.REPO, env=tools.clean_env(home), capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout.splitlines()[-1])
    assert result["job_id"] == job.id
    assert result["mlflow_run_id"] == job.mlflow_run_id
    # Only the epochs left were trained: those after last.ckpt. The job row counts an epoch
    # when its metrics are logged, just before its checkpoint is written, so a kill between
    # the two leaves the row one epoch ahead of the checkpoint the run resumes from.
    assert EPOCHS - killed.current_epoch <= result["epochs_run"] <= EPOCHS - killed.current_epoch + 1
    final = jobs.get_job(ctx.db, job.id)
    assert final.status == "completed" and final.current_epoch == EPOCHS
    assert [m.epoch for m in jobs.job_metrics(ctx.db, job.id)] == list(range(EPOCHS))
    assert len(jobs.list_jobs(ctx.db, kind="train")) == 1
    run = ctx.tracker.client.get_run(job.mlflow_run_id)
    assert run.info.status == "FINISHED"
