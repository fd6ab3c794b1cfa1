"""Resuming training is faithful: the checkpoint's settings come back, conflicting flags and
too few epochs are one error line, the MLflow run and the step counts continue."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.jobs import repository as jobs
from heimdall.cli import app
from heimdall.errors import InputError
from heimdall.pipelines import Context, TrainRequest, generate, train
from heimdall.pipelines.resume import restore_request

pytestmark = pytest.mark.slow  # each test trains a small model first (about 15 s on 2 cores)
BATCH = 64
PEAK_LR = 1e-3


@pytest.fixture
def first_run(ctx: Context) -> tuple[Context, Path, str]:
    """Two epochs with non-default batch size, learning rate and model size."""
    generate(ctx, "rs", 1200, seed=2)
    result = train(
        ctx,
        TrainRequest(dataset="rs", epochs=2, batch_size=BATCH, learning_rate=PEAK_LR, hidden_dim=32, num_layers=1,
                     warmup_epochs=1),
    )
    return ctx, Path(result.checkpoint), str(result.job_id)


def _schedule(epoch: int, warmup: int, total: int) -> float:
    """The module's warm-up + cosine factor (training/module.py), for the expected rates."""
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / max(total - warmup, 1)
    return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def test_resume_restores_every_setting_and_counts_true_steps(first_run) -> None:
    ctx, last, job_id = first_run
    first = jobs.get_job(ctx.db, job_id)
    seen: list[tuple[int, int]] = []
    # Only --epochs given: batch size, learning rate and model size come from the checkpoint,
    # not from TrainRequest's defaults (256, 2e-3, 128 x 2).
    result = train(
        ctx,
        TrainRequest(checkpoint=last, resume_training=True, epochs=4, given=frozenset({"epochs"})),
        progress=lambda stage, done, total, note: seen.append((done, total)),
    )
    assert result.job_id == job_id and result.mlflow_run_id == first.mlflow_run_id
    assert result.epochs_run == 2
    train_samples = int(ctx.tracker.client.get_run(result.mlflow_run_id).data.params["train_samples"])
    per_epoch = math.ceil(train_samples / BATCH)
    # The bar counts the batches this run trains (2 epochs of batch 64), and ends full.
    assert {total for _, total in seen} == {2 * per_epoch}
    assert seen[-1] == (2 * per_epoch, 2 * per_epoch)
    rates = {m.epoch: m.learning_rate for m in jobs.job_metrics(ctx.db, job_id)}
    assert sorted(rates) == [0, 1, 2, 3]
    # Recorded after the epoch's scheduler step: the rate of the next epoch, peak 1e-3 over 4 epochs.
    for epoch in (2, 3):
        assert rates[epoch] == pytest.approx(PEAK_LR * _schedule(epoch + 1, 1, 4), rel=1e-6), rates
    run = ctx.tracker.client.get_run(result.mlflow_run_id)
    assert run.data.params["batch_size"] == str(BATCH)
    assert run.data.tags["resumed_epochs"].startswith("2 -> 4")
    history = ctx.tracker.client.get_metric_history(result.mlflow_run_id, "val_loss")
    steps = [m.step for m in history]
    assert len(history) == 4 and steps == sorted(steps) and len(set(steps)) == 4  # true, continuing steps
    from heimdall.training.checkpoints import read_checkpoint

    restored = read_checkpoint(Path(result.checkpoint))["heimdall"]["train_settings"]
    assert restored["batch_size"] == BATCH and restored["learning_rate"] == PEAK_LR and restored["epochs"] == 4


def test_conflicting_flag_and_too_few_epochs_are_one_line(first_run, home: Path) -> None:
    _ctx, last, _job = first_run
    runner = CliRunner()
    for args, fragment in (
        (["--batch-size", "32"], "--batch-size 32 (the run has 64)"),
        (["--learning-rate", "0.002", "--epochs", "5"], "--learning-rate 0.002 (the run has 0.001)"),
        (["--hidden-dim", "128"], "--hidden-dim 128 (the run has 32)"),
        (["--epochs", "1"], "already finished 2 epoch(s); pass --epochs above 2"),
        (["--epochs", "2"], "pass --epochs above 2"),
    ):
        result = runner.invoke(app, ["train", "--checkpoint", str(last), "--resume-training", *args])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1, result.output
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output
        assert "Misconfiguration" not in result.output and "Traceback" not in result.output


def test_restore_request_without_given_keeps_non_default_values(first_run) -> None:
    ctx, last, _job = first_run
    from heimdall.training.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(last)
    meta, hyper = checkpoint["heimdall"], checkpoint["hyper_parameters"]
    # A caller that cannot say which fields it chose: defaults are restored, the rest checked.
    restored = restore_request(ctx, TrainRequest(checkpoint=last, resume_training=True, epochs=3), meta, hyper, 2)
    assert (restored.batch_size, restored.learning_rate, restored.epochs, restored.dataset) == (BATCH, PEAK_LR, 3, "rs")
    assert (restored.hidden_dim, restored.num_layers, restored.warmup_epochs) == (32, 1, 1)
    with pytest.raises(InputError, match="--batch-size 16"):
        restore_request(ctx, TrainRequest(checkpoint=last, resume_training=True, batch_size=16, epochs=3), meta, hyper, 2)
