"""Hyperparameter search: pruning, the shared study, nested MLflow runs, killed workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.errors import ConfigError, ConflictError, InputError
from heimdall.export.localizer import Localizer
from heimdall.pipelines import generate
from heimdall.pipelines.tune import TuneRequest, tune
from heimdall.pipelines.tune_study import close_storage, open_storage, study_storage_url
from heimdall.training.pruning import TrialPruning

TINY_MODEL = {"hidden_dims": (16,), "layer_counts": (1,)}


def _study_with_history(losses_per_epoch: list[float]) -> optuna.Study:
    """An in-memory study whose 3 finished trials all reached `losses_per_epoch`."""
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    for _ in range(3):
        study.add_trial(
            create_trial(value=min(losses_per_epoch), intermediate_values=dict(enumerate(losses_per_epoch)))
        )
    return study


def _epoch_end(callback: TrialPruning, epoch: int, val_loss: float) -> SimpleNamespace:
    trainer = SimpleNamespace(
        callback_metrics={"val_loss": torch.tensor(val_loss)},
        current_epoch=epoch,
        sanity_checking=False,
        is_global_zero=True,
        should_stop=False,
    )
    callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    return trainer


def test_a_trial_worse_than_the_median_is_stopped_and_pruned() -> None:
    study = _study_with_history([3.0, 2.5, 2.0])
    callback = TrialPruning(study.ask())
    assert not _epoch_end(callback, 0, 9.0).should_stop  # epoch 0 is warm-up: never pruned
    trainer = _epoch_end(callback, 1, 9.0)
    assert trainer.should_stop and callback.pruned_at_epoch == 1
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        callback.raise_if_pruned()


def test_a_trial_better_than_the_median_runs_on() -> None:
    study = _study_with_history([3.0, 2.5, 2.0])
    trial = study.ask()
    callback = TrialPruning(trial)
    for epoch, loss in enumerate([2.9, 2.2, 1.8]):
        assert not _epoch_end(callback, epoch, loss).should_stop
    callback.raise_if_pruned()  # does not raise
    assert callback.best_value == pytest.approx(1.8)
    assert study.trials[-1].intermediate_values == pytest.approx({0: 2.9, 1: 2.2, 2: 1.8})


def test_a_diverged_trial_counts_as_worst_and_is_pruned() -> None:
    study = _study_with_history([3.0, 2.5, 2.0])
    callback = TrialPruning(study.ask())
    _epoch_end(callback, 0, 2.9)
    assert _epoch_end(callback, 1, float("nan")).should_stop


def test_study_storage_sits_beside_the_database(tmp_path: Path) -> None:
    url, options = study_storage_url(f"sqlite:///{tmp_path}/heimdall.db")
    assert url == f"sqlite:///{tmp_path}/heimdall-optuna.db"
    assert options["connect_args"]["timeout"] > 0
    url, options = study_storage_url("postgresql://u:secret@db:5432/heimdall")
    assert url == "postgresql+psycopg://u:secret@db:5432/heimdall"
    assert "search_path=optuna" in options["connect_args"]["options"]
    with pytest.raises(ConfigError, match="memory"):
        study_storage_url("sqlite:///:memory:")


@pytest.mark.parametrize(
    ("change", "message"),
    [({"trials": 0}, "--trials"), ({"workers": 0}, "--workers"), ({"sampler": "random"}, "--sampler"),
     ({"hidden_dims": (30,)}, "--hidden-dims"), ({"grace_period_s": 5, "heartbeat_interval_s": 5}, "--grace-s")],
)
def test_bad_requests_are_refused(change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TuneRequest(dataset="d", **change).validate()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--trials", "0"], "--trials must be at least 1"), (["--hidden-dims", "a,b"], "--hidden-dims"), ([], "nope")],
)
def test_cli_bad_input_is_one_error_line(home: Path, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(app, ["tune", "--dataset", "nope", *args], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert not (home / "heimdall-optuna.db").exists()  # refused before any study is made


def test_a_study_is_bound_to_its_dataset(ctx) -> None:
    generate(ctx, "bound-a", 300, seed=1)
    generate(ctx, "bound-b", 300, seed=2)
    from heimdall.pipelines.tune import _study

    with _study(ctx, TuneRequest(dataset="bound-a", study="shared"), 0) as study:
        assert study.user_attrs["dataset"] == "bound-a"
    with pytest.raises(ConflictError, match="bound-a"), _study(ctx, TuneRequest(dataset="bound-b", study="shared"), 0):
        pass


@pytest.mark.slow
def test_two_processes_share_one_study_and_export_the_best(ctx) -> None:
    generate(ctx, "tiny", 1500, seed=1)
    request = TuneRequest(dataset="tiny", trials=4, workers=2, epochs=2, **TINY_MODEL)
    result = tune(ctx, request)

    states = [t.state for t in result.trials]
    assert set(states) <= {"COMPLETE", "PRUNED"} and 4 <= len(states) <= 5  # 5 only if both workers raced at the end
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert result.best == min(complete, key=lambda t: t.val_loss)
    # Every trial is an MLflow run nested under the study's run, and nothing else is.
    tracker = ctx.tracker
    run_ids = {t.mlflow_run_id for t in result.trials}
    assert None not in run_ids and len(run_ids) == len(result.trials)
    assert set(tracker.child_run_ids(result.parent_run_id)) == run_ids
    for trial in result.trials:
        tags = tracker.client.get_run(trial.mlflow_run_id).data.tags
        assert tags["optuna.trial"] == str(trial.number) and tags["optuna.state"] == trial.state
    # Both worker processes ran trials (the calling process only coordinates).
    workers = {t.worker for t in result.trials}
    assert len(workers) == 2 and f"{socket.gethostname()}:{os.getpid()}" not in workers
    # The exported bundle is the best trial's model, and it localises better than a guess.
    assert result.export is not None
    localizer = Localizer.from_bundle(Path(result.export.bundle))
    assert localizer.config["model"]["hidden_dim"] == result.best.params["hidden_dim"]
    assert localizer.config["checkpoint"] == str(Path(result.best.checkpoint).resolve())
    reader = DatasetReader(ctx.store, "tiny")
    test, train = reader.load("test"), reader.load("train")
    model_error_m = np.linalg.norm(localizer.predict(test).position_m - test.tx_position_m, axis=1)
    guess_error_m = np.linalg.norm(train.tx_position_m.mean(axis=0) - test.tx_position_m, axis=1)
    assert np.median(model_error_m) < 0.95 * np.median(guess_error_m)
    # The report measures on the ellipsoid, this in the local plane: equal within 1 %.
    assert np.median(model_error_m) == pytest.approx(result.export.evaluation["median_error_m"], rel=1e-2)


def _cli(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HEIMDALL_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", "from heimdall.cli import main; main()", "tune", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_worker_leaves_no_trial_running(ctx, home: Path) -> None:
    generate(ctx, "kill", 1200, seed=4)
    common = ["--dataset", "kill", "--trials", "1", "--hidden-dims", "16", "--layers", "1", "--pruner", "none",
              "--heartbeat-s", "1", "--grace-s", "4", "--no-export", "--json"]
    victim = _cli(home, *common, "--epochs", "50")
    storage = open_storage(ctx.settings.resolved_database_url, heartbeat_interval_s=1, grace_period_s=4)
    deadline = time.monotonic() + 180  # CLI start-up (torch, Lightning, MLflow) is slow on a busy machine
    study = None
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="tune-kill", storage=storage)
        except KeyError:  # not created yet
            study = None
        # Kill it mid-training: its trial is RUNNING and its MLflow run has started.
        if study is not None and any(
            t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs for t in study.get_trials()
        ):
            break
        assert victim.poll() is None, victim.communicate()[1]
        time.sleep(0.5)
    else:
        victim.kill()
        victim.communicate()
        pytest.fail("the first worker never started a trial")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()

    survivor = _cli(home, *common, "--epochs", "1")
    _, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    trials = study.get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    killed = trials[0]
    assert killed.state == TrialState.FAIL and len(killed.params) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = [t for t in trials if optuna.storages.RetryFailedTrialCallback.retried_trial_number(t) == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed.params  # the same point is re-run, not lost
    close_storage(storage)


@pytest.mark.slow
def test_ctrl_c_marks_the_trials_in_flight_failed_and_exits(ctx, home: Path) -> None:
    generate(ctx, "intr", 1200, seed=5)
    env = {**os.environ, "HEIMDALL_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", "from heimdall.cli import main; main()", "tune", "--dataset", "intr", "--trials", "4",
               "--workers", "2", "--epochs", "50", "--hidden-dims", "16", "--layers", "1", "--pruner", "none"]
    # Its own process group, as a terminal's Ctrl-C reaches the command and its workers; SIGINT
    # restored to the default in case this test runs where it is ignored (a background job).
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    storage = open_storage(ctx.settings.resolved_database_url, heartbeat_interval_s=10, grace_period_s=30)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="tune-intr", storage=storage).get_trials()
        except KeyError:
            trials = []
        if sum(t.state == TrialState.RUNNING and bool(t.intermediate_values) for t in trials) == 2:
            break
        assert process.poll() is None, process.communicate()[1]
        time.sleep(1)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("the two workers never both trained")
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: interrupted; resume with: heimdall tune "), err
    assert "Traceback" not in err, err  # neither from this process nor from its workers
    trials = optuna.load_study(study_name="tune-intr", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    close_storage(storage)


def test_the_grid_sampler_visits_every_grid_point_once() -> None:
    from itertools import product

    from heimdall.pipelines.tune_study import GRID, grid_space, make_sampler, suggest

    space = grid_space((16, 32), (1,))
    study = optuna.create_study(sampler=make_sampler("grid", 0, 0, space))
    study.optimize(lambda trial: suggest(trial, (16, 32), (1,))["learning_rate"], n_trials=40)
    visited = sorted(tuple(t.params[k] for k in space) for t in study.trials)
    assert visited == sorted(product(*space.values())) and len(visited) == 16 * 2  # then the sampler stops
    assert set(GRID) <= set(space)
