"""The Optuna study behind `heimdall tune`: storage, search space, sampler, pruner, summary.

The study lives in the project's database so every process that reaches the database can
join it. Optuna brings its own Alembic history, whose bookkeeping table (`alembic_version`)
would collide with Heimdall's, so the study tables are kept apart: on PostgreSQL in the
schema `optuna` of the same database; on SQLite in a sibling file (`heimdall.db` ->
`heimdall-optuna.db`), since one SQLite file has no schemas.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.errors import ConfigError

__all__ = [
    "GRID",
    "grid_space",
    "OPTUNA_SCHEMA",
    "TrialSummary",
    "close_storage",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "study_storage_url",
    "suggest",
    "summarize",
]

OPTUNA_SCHEMA = "optuna"

#: The `--sampler grid` search over the training hyperparameters: 2^4 = 16 points, times the
#: model sizes asked for (`grid_space`). Learning rate, dropout and weight decay take values
#: from the seeds' grid (their 1e-2 learning rate diverges here); their batch sizes 16-64 are
#: too small for a set model on CPU, so the batch sizes are ours.
GRID: dict[str, list[Any]] = {
    "learning_rate": [1e-3, 3e-3],
    "batch_size": [128, 256],
    "dropout": [0.1, 0.2],
    "weight_decay": [1e-5, 1e-4],
}


def grid_space(hidden_dims: tuple[int, ...], layer_counts: tuple[int, ...]) -> dict[str, list[Any]]:
    """`GRID` plus the model-size axes (hidden width, attention blocks)."""
    return {**GRID, "hidden_dim": list(hidden_dims), "num_layers": list(layer_counts)}


def study_storage_url(database_url: str) -> tuple[str, dict[str, Any]]:
    """The Optuna storage URL and engine options for the project's database URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError("a hyperparameter search shared between processes needs a database file, not :memory:")
        path = Path(url.database)
        optuna_path = path.with_name(f"{path.stem}-optuna{path.suffix or '.db'}")
        # Several processes write to one file: wait for the lock instead of failing.
        return f"sqlite:///{optuna_path}", {"connect_args": {"timeout": 60}}
    if backend == "postgresql":
        # SQLAlchemy needs the psycopg (3) driver named; the schema keeps Optuna's tables apart.
        url = url.set(drivername="postgresql+psycopg")
        options = {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True}
        return url.render_as_string(hide_password=False), options
    raise ConfigError(f"hyperparameter search supports SQLite and PostgreSQL databases, not {backend}")


def _create_schema(url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"cannot create the schema {OPTUNA_SCHEMA!r} for the study: {exc.__class__.__name__}") from None
    finally:
        engine.dispose()


def open_storage(database_url: str, heartbeat_interval_s: int, grace_period_s: int, max_retry: int = 2) -> Any:
    """Optuna RDB storage with heartbeats.

    A trial whose process stops beating for `grace_period_s` is marked FAIL by the next
    process that looks, and re-queued (WAITING, same parameters) up to `max_retry` times.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url, engine_kwargs = study_storage_url(database_url)
    if url.startswith("postgresql"):
        _create_schema(url)
    with warnings.catch_warnings():
        # Heartbeats and the retry callback are marked experimental since Optuna 2.8/2.9.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval_s,
                grace_period=grace_period_s,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry),
            )
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot open the study storage: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None


def close_storage(storage: Any) -> None:
    """Close the storage's database connections (its heartbeats have stopped by then)."""
    storage.remove_session()
    storage.engine.dispose()


def make_sampler(kind: str, seed: int, worker_index: int, grid: dict[str, list[Any]]) -> Any:
    """TPE, or a grid sampler over `grid`, seeded per worker.

    Workers of one study draw from different streams (same seeds would make their first,
    random, TPE trials identical); a shared study's sequence depends on which trial
    finishes first, so it is not reproducible bit for bit across runs anyway.
    """
    import optuna

    worker_seed = int(np.random.SeedSequence([seed, worker_index]).generate_state(1)[0])
    if kind == "grid":
        return optuna.samplers.GridSampler(grid, seed=worker_seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=worker_seed, n_startup_trials=5)
    raise ConfigError(f"unknown sampler {kind!r}; expected tpe or grid")


def make_pruner(kind: str) -> Any:
    """`median`: stop a trial whose epoch-k validation loss is worse than the median of
    earlier trials at epoch k (after 3 finished trials and from epoch 2 on); `none`: never."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {kind!r}; expected median or none")


def suggest(trial: Any, hidden_dims: tuple[int, ...], layer_counts: tuple[int, ...]) -> dict[str, Any]:
    """One point of the search space (the grid sampler only ever proposes `GRID` values).

    Learning rate 1e-4..1e-2 and weight decay 1e-6..1e-3 (log scale), dropout 0..0.3,
    batch size 64/128/256, hidden width from `hidden_dims`, attention blocks from `layer_counts`.
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "hidden_dim": trial.suggest_categorical("hidden_dim", list(hidden_dims)),
        "num_layers": trial.suggest_categorical("num_layers", list(layer_counts)),
    }


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the report shows it (val_loss: best validation Gaussian NLL, nats)."""

    number: int
    state: str
    params: dict[str, Any]
    val_loss: float | None
    epochs_run: int
    mlflow_run_id: str | None
    checkpoint: str | None
    #: host:pid of the process that ran it.
    worker: str | None


def summarize(study: Any) -> list[TrialSummary]:
    """Every trial of `study`, in order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        if value is None and trial.intermediate_values:
            finite = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
            value = min(finite) if finite else None
        rows.append(
            TrialSummary(
                number=trial.number,
                state=trial.state.name,
                params=dict(trial.params),
                val_loss=value,
                epochs_run=len(trial.intermediate_values),
                mlflow_run_id=trial.user_attrs.get("mlflow_run_id"),
                checkpoint=trial.user_attrs.get("checkpoint"),
                worker=trial.user_attrs.get("worker"),
            )
        )
    return rows
