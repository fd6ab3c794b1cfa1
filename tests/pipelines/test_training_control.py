"""Pause and cancel requests reach a running training job."""

from __future__ import annotations

import signal

import lightning as L
import pytest

from heimdall.errors import Interrupted
from heimdall.jobs.repository import get_job, job_metrics
from heimdall.pipelines import TrainRequest, generate, train

pytestmark = pytest.mark.slow


def test_pause_at_epoch_boundary_then_resume(ctx) -> None:
    generate(ctx, "pc", 1200, seed=2)
    request = TrainRequest(dataset="pc", epochs=3, batch_size=256, hidden_dim=32, num_layers=1)
    paused = train(ctx, request, poll=lambda: "pause")
    assert paused.status == "paused" and paused.epochs_run == 1
    assert get_job(ctx.db, paused.job_id).status == "paused"
    resumed = train(ctx, TrainRequest(checkpoint=paused.checkpoint, resume_training=True, epochs=3))
    assert resumed.status == "completed" and resumed.epochs_run == 2
    assert resumed.job_id == paused.job_id
    assert [m.epoch for m in job_metrics(ctx.db, paused.job_id)] == [0, 1, 2]


def test_cancel_stops_within_the_first_epoch(ctx) -> None:
    generate(ctx, "cc", 1200, seed=3)
    result = train(ctx, TrainRequest(dataset="cc", epochs=5, batch_size=64, hidden_dim=32, num_layers=1), poll=lambda: "cancel")
    assert result.status == "cancelled"
    assert get_job(ctx.db, result.job_id).status == "cancelled"
    assert result.epochs_run <= 1


class _CtrlCDuringSetup(L.Callback):
    """Ctrl-C while the trainer sets up (data loading), before Lightning registers the
    signal handlers its teardown would put back."""

    def setup(self, *args: object, **kwargs: object) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_still_interrupts_the_next_training_in_the_same_process(ctx) -> None:
    # Lightning ignores SIGINT once a fit is interrupted, and puts the old handler back only
    # where the interrupt came after its set-up; a worker or notebook that trains again
    # must still stop on Ctrl-C.
    generate(ctx, "ic", 600, seed=4)
    request = TrainRequest(dataset="ic", epochs=2, batch_size=128, hidden_dim=16, num_layers=1)
    for _ in range(2):
        with pytest.raises(Interrupted):
            train(ctx, request, extra_callbacks=[_CtrlCDuringSetup()])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
