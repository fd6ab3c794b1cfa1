"""`heimdall tune`: a hyperparameter search shared by any number of processes and machines.

Every process that runs `tune` with the same `--study` works on one Optuna study stored in
the project's database (see `tune_study`). Each trial is one `pipelines.train` run, logged
as an MLflow run nested under the study's parent run; a median pruner stops trials whose
per-epoch validation loss trails their peers. A killed process stops beating; after the
grace period its trial is marked FAIL and re-queued for another process. Ctrl-C marks the
trials in flight FAIL before exiting, so at most those are lost. The process that was asked
to (`export=True`) exports and registers the best trial's checkpoint when the study is done.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from heimdall.data.shards import DatasetReader
from heimdall.errors import ConflictError, DataError, HeimdallError, InputError
from heimdall.pipelines.context import Context, open_context
from heimdall.pipelines.model_export import ExportResult, export
from heimdall.pipelines.training import TrainRequest, train
from heimdall.pipelines.tune_study import (
    TrialSummary,
    close_storage,
    grid_space,
    make_pruner,
    make_sampler,
    open_storage,
    suggest,
    summarize,
)
from heimdall.processes import ctrl_c_ignored
from heimdall.settings import Settings

__all__ = ["TuneRequest", "TuneResult", "tune", "run_worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneRequest:
    """Everything `heimdall tune` accepts (seconds for times)."""

    dataset: str
    trials: int = 20
    workers: int = 1
    study: str | None = None
    sampler: Literal["tpe", "grid"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    epochs: int = 10
    timeout_s: float | None = None
    seed: int = 0
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    hidden_dims: tuple[int, ...] = (32, 64, 128)
    layer_counts: tuple[int, ...] = (1, 2, 3)
    #: Export and register the best trial when done (one process per study should).
    export: bool = True
    heartbeat_interval_s: int = 10
    grace_period_s: int = 30

    @property
    def study_name(self) -> str:
        return self.study or f"tune-{self.dataset}"

    def validate(self) -> None:
        """One clear error per bad flag."""
        if self.trials < 1:
            raise InputError(f"--trials must be at least 1, got {self.trials}")
        if self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        if self.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {self.epochs}")
        if self.sampler not in ("tpe", "grid"):
            raise InputError(f"--sampler must be tpe or grid, got {self.sampler!r}")
        if self.pruner not in ("median", "none"):
            raise InputError(f"--pruner must be median or none, got {self.pruner!r}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InputError(f"--timeout-s must be positive, got {self.timeout_s}")
        if not self.hidden_dims or any(d < 4 or d % 4 for d in self.hidden_dims):
            raise InputError(f"--hidden-dims must be multiples of 4 (attention heads), got {self.hidden_dims}")
        if not self.layer_counts or any(n < 1 for n in self.layer_counts):
            raise InputError(f"--layers must be positive, got {self.layer_counts}")
        if self.heartbeat_interval_s < 1 or self.grace_period_s <= self.heartbeat_interval_s:
            raise InputError(
                f"--grace-s ({self.grace_period_s}) must exceed --heartbeat-s ({self.heartbeat_interval_s}), "
                "which must be at least 1"
            )


@dataclass(frozen=True)
class TuneResult:
    study: str
    parent_run_id: str
    trials: list[TrialSummary]
    best: TrialSummary | None
    export: ExportResult | None
    wall_s: float

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


@contextmanager
def _study(ctx: Context, request: TuneRequest, worker_index: int) -> Iterator[Any]:
    """Create or join the study (its connections closed on exit); a study made for another
    dataset or sampler is refused."""
    import optuna

    # Optuna logs an interrupted trial with its traceback at WARNING; we report it in one line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(ctx.settings.resolved_database_url, request.heartbeat_interval_s, request.grace_period_s)
    try:
        sampler = make_sampler(request.sampler, request.seed, worker_index, grid_space(request.hidden_dims, request.layer_counts))
        study = optuna.create_study(
            study_name=request.study_name,
            storage=storage,
            sampler=sampler,
            pruner=make_pruner(request.pruner),
            direction="minimize",
            load_if_exists=True,
        )
        for key, value in (("dataset", request.dataset), ("sampler", request.sampler)):
            existing = study.user_attrs.get(key)
            if existing is None:
                study.set_user_attr(key, value)
            elif existing != value:
                raise ConflictError(
                    f"study {request.study_name!r} searches {key} {existing!r}, not {value!r}; pick another --study"
                )
        yield study
    finally:
        close_storage(storage)


def _parent_run(ctx: Context, study: Any) -> str:
    """The study's MLflow run, created by the first process to need it."""
    run_id = study.user_attrs.get("mlflow_run_id")
    if run_id is None:
        run_id = ctx.tracker.start_run(f"tune-{study.study_name}", tags={"optuna.study": study.study_name})
        study.set_user_attr("mlflow_run_id", run_id)
    return run_id


def _objective(ctx: Context, request: TuneRequest, study_name: str, parent_run_id: str) -> Any:
    from heimdall.training.pruning import TrialPruning

    tracker = ctx.tracker

    def objective(trial: Any) -> float:
        params = suggest(trial, request.hidden_dims, request.layer_counts)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

        def started(run_id: str | None) -> None:
            if run_id is None:
                return
            trial.set_user_attr("mlflow_run_id", run_id)
            tracker.set_parent(run_id, parent_run_id)
            tracker.set_tags(run_id, {"optuna.study": study_name, "optuna.trial": trial.number})

        pruning = TrialPruning(trial, monitor="val_loss", on_start=started)
        train_request = TrainRequest(
            dataset=request.dataset, epochs=request.epochs, seed=request.seed, accelerator=request.accelerator, **params
        )
        try:
            result = train(ctx, train_request, extra_callbacks=[pruning])
        except (SystemExit, KeyboardInterrupt) as exc:
            # Lightning turns Ctrl-C into SystemExit; as KeyboardInterrupt Optuna marks the trial FAIL.
            log.warning("trial %d interrupted; marked FAIL", trial.number)
            raise KeyboardInterrupt from exc
        trial.set_user_attr("checkpoint", result.best_checkpoint)
        trial.set_user_attr("job_id", result.job_id)
        if result.mlflow_run_id:
            state = "PRUNED" if pruning.pruned_at_epoch is not None else "COMPLETE"
            tracker.set_tags(result.mlflow_run_id, {"optuna.state": state})
        log.info("trial %d: %s -> best val_loss %.4f", trial.number, params, pruning.best_value)
        pruning.raise_if_pruned()
        return pruning.best_value

    return objective


def run_worker(ctx: Context, request: TuneRequest, worker_index: int = 0) -> int:
    """Run trials of the shared study until it holds `request.trials` finished ones.

    Finished = completed or pruned. Trials in flight elsewhere count toward the total; when
    only those remain, this process waits for them, so a trial left by a killed process is
    failed and re-queued after the grace period and then run here. Returns the number of
    trials this process ran.
    """
    import optuna
    from optuna.trial import TrialState

    with _study(ctx, request, worker_index) as study:
        objective = _objective(ctx, request, study.study_name, _parent_run(ctx, study))
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        ran = 0
        while deadline is None or time.monotonic() < deadline:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
            running, waiting = states.count(TrialState.RUNNING), states.count(TrialState.WAITING)
            if finished >= request.trials:
                break
            if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study) and not waiting:
                break
            if finished + running >= request.trials and not waiting:
                time.sleep(request.heartbeat_interval_s)
                continue
            study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)
            ran += 1
    return ran


def _worker_main(settings: Settings, request: TuneRequest, worker_index: int) -> None:
    """Entry point of a spawned worker process: its own context, one line per error."""
    import sys

    from heimdall.logging_setup import configure_logging

    configure_logging(settings.log_level)
    ctx = open_context(settings)
    try:
        # Started with Ctrl-C ignored (`_run_processes`): only from here on, where it is
        # handled, does it interrupt, so it never lands in start-up or teardown as a traceback.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        run_worker(ctx, request, worker_index)
    except KeyboardInterrupt:
        sys.exit(130)
    except HeimdallError as exc:
        log.error("tune worker %d: %s", worker_index, exc)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the close short
        ctx.close()


def _run_processes(ctx: Context, request: TuneRequest) -> None:
    """`request.workers` spawned processes joining the study; waits for all of them."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    child_request = dataclasses.replace(request, workers=1, export=False)
    processes = [
        spawn.Process(target=_worker_main, args=(ctx.settings, child_request, index), name=f"heimdall-tune-{index}")
        for index in range(request.workers)
    ]
    with ctrl_c_ignored():
        # Children inherit the ignored SIGINT through spawn's exec, until they handle it.
        for process in processes:
            process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C; let them mark their trials FAIL before exiting.
        for process in processes:
            process.join(timeout=60)
        raise
    codes = [p.exitcode for p in processes]
    if any(codes):
        log.warning("tune worker exit codes %s (non-zero: failed or killed)", codes)


def tune(ctx: Context, request: TuneRequest) -> TuneResult:
    """Run (or join) a search; with `request.export`, export the best trial as a bundle."""
    request.validate()
    DatasetReader(ctx.store, request.dataset)  # a missing dataset fails here, once
    started = time.monotonic()
    with _study(ctx, request, worker_index=request.workers) as study:
        parent_run_id = _parent_run(ctx, study)
        if request.workers == 1:
            run_worker(ctx, request, worker_index=0)
        else:
            _run_processes(ctx, request)
        trials = summarize(study)
        name = study.study_name
    complete = [t for t in trials if t.state == "COMPLETE" and t.val_loss is not None]
    if not complete:
        raise DataError(f"no trial of study {name!r} completed; see the log for the workers' errors")
    best = min(complete, key=lambda t: t.val_loss)  # type: ignore[arg-type, return-value]
    exported = None
    if request.export and best.checkpoint:
        exported = export(ctx, Path(best.checkpoint))
    tracker = ctx.tracker
    tracker.log_params(parent_run_id, {f"best_{k}": v for k, v in best.params.items()} | {"best_trial": best.number})
    tracker.log_metrics(
        parent_run_id,
        {
            "best_val_loss": best.val_loss or float("nan"),
            "trials_complete": sum(t.state == "COMPLETE" for t in trials),
            "trials_pruned": sum(t.state == "PRUNED" for t in trials),
            "trials_failed": sum(t.state == "FAIL" for t in trials),
        },
    )
    if exported is not None:
        tracker.set_tags(parent_run_id, {"best_model": exported.registered})
    tracker.set_terminated(parent_run_id)
    return TuneResult(
        study=name,
        parent_run_id=parent_run_id,
        trials=trials,
        best=best,
        export=exported,
        wall_s=time.monotonic() - started,
    )
