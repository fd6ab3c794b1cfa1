"""DDP on CPU: `heimdall train --devices 2 --strategy ddp` (gloo) as Lightning re-launches it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import heimdall
from heimdall.data.shards import DatasetReader
from heimdall.export.localizer import Localizer
from heimdall.jobs.repository import job_metrics, list_jobs
from heimdall.pipelines import export, generate

pytestmark = pytest.mark.slow


def _heimdall_command() -> list[str]:
    # Lightning's ddp launcher re-runs `sys.executable sys.argv[0] ...`: a script path, not `-c`.
    script = Path(sys.executable).parent / "heimdall"
    if not script.is_file():
        pytest.fail(f"console script {script} not found (is the package installed in this environment?)")
    return [sys.executable, str(script)]


def test_ddp_two_cpu_processes_share_the_epoch_and_write_once(ctx, home: Path) -> None:
    generate(ctx, "ddp", 1200, seed=6)
    train_samples = len(DatasetReader(ctx.store, "ddp").load("train"))
    env = dict(os.environ, PYTHONPATH=str(Path(heimdall.__file__).resolve().parents[1]))
    args = ["train", "--dataset", "ddp", "--epochs", "2", "--batch-size", "64", "--accelerator", "cpu",
            "--devices", "2", "--strategy", "ddp", "--threads", "1", "--json"]  # fmt: skip
    completed = subprocess.run(_heimdall_command() + args, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    json_lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert len(json_lines) == 1, completed.stdout  # rank 1 reports nothing
    result = json.loads(json_lines[0])
    assert result["epochs_run"] == 2

    # One job row, with one metrics row per epoch; one MLflow run.
    jobs = list_jobs(ctx.db, kind="train")
    assert [job.id for job in jobs] == [result["job_id"]] and jobs[0].status == "completed"
    assert [m.epoch for m in job_metrics(ctx.db, result["job_id"])] == [0, 1]
    client = ctx.tracker.client
    runs = client.search_runs([ctx.tracker.experiment_id()])
    assert [run.info.run_id for run in runs] == [result["mlflow_run_id"]]

    # DistributedSampler: each rank trained on its half of the split every epoch.
    per_rank = [m.value for m in client.get_metric_history(result["mlflow_run_id"], "train_samples_per_rank")]
    seen = [m.value for m in client.get_metric_history(result["mlflow_run_id"], "train_samples_seen")]
    half = math.ceil(train_samples / 2)
    assert per_rank == [half, half]
    assert seen == [2 * half, 2 * half]

    # Checkpoints only in rank 0's directory.
    checkpoint_dirs = sorted(p.name for p in ctx.settings.checkpoints_dir.iterdir())
    assert checkpoint_dirs == [result["job_id"]]
    assert Path(result["checkpoint"]).name == "last.ckpt" and Path(result["checkpoint"]).is_file()

    exported = export(ctx, Path(result["best_checkpoint"]))
    assert exported.max_abs_diff < 0.5
    test = DatasetReader(ctx.store, "ddp").load("test")
    predictions = Localizer.from_bundle(exported.bundle).predict(test)
    assert np.all(np.isfinite(predictions.position_m)) and np.all(predictions.sigma_major_m > 0)
