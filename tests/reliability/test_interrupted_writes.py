"""A Ctrl-C that lands inside a training metrics write: the write completes, the interrupt
follows it, and the run can still be marked failed (no "database is locked")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from heimdall.settings import Settings
from heimdall.tracking import Tracker


pytestmark = pytest.mark.usefixtures("ctrl_c_raises")


def test_ctrl_c_inside_a_metrics_write_waits_for_the_write(tmp_path: Path) -> None:
    tracker = Tracker(Settings(home=tmp_path / "home"))
    logger = tracker.lightning_logger(None, run_name="interrupted")
    client = logger.experiment
    store = client._tracking_client.store
    real_log_batch = store.log_batch

    def log_batch_hit_by_ctrl_c(*args, **kwargs):  # noqa: ANN002, ANN003
        os.kill(os.getpid(), signal.SIGINT)
        return real_log_batch(*args, **kwargs)

    store.log_batch = log_batch_hit_by_ctrl_c
    try:
        with pytest.raises(KeyboardInterrupt):
            logger.log_metrics({"val_loss": 1.25}, step=3)
    finally:
        store.log_batch = real_log_batch
    logger.finalize("failed")
    run = client.get_run(logger.run_id)
    assert run.data.metrics["val_loss"] == pytest.approx(1.25)
    assert run.info.status == "FAILED"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    tracker.close()
