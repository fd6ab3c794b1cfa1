"""Rich progress bars (with ETA) on stderr for the pipelines' `ProgressFn` reports."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from heimdall.cli.common import console
from heimdall.progress import ProgressFn

__all__ = ["progress_bars", "quiet_libraries", "step"]


@contextmanager
def progress_bars(quiet: bool = False) -> Iterator[ProgressFn | None]:
    """Yield a `ProgressFn` drawing one bar per stage, or None when `quiet`.

    Bars go to stderr, so `--json` output on stdout stays one clean line; on a terminal
    that is not interactive rich prints each bar once, when it finishes.
    """
    if quiet:
        with quiet_libraries():
            yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[stage]:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    bars = Progress(*columns, console=console, transient=False)
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int, note: str = "") -> None:
        # Started on the first report, so a command failing early prints only its error.
        if not tasks:
            bars.start()
        # total 0: the length is unknown, so the bar pulses and shows elapsed time only.
        size = total if total > 0 else None
        task = bars.tasks[tasks[stage]] if stage in tasks else None
        # A stage that finished and starts again (the demo's second dataset) gets a new bar,
        # with its own elapsed time.
        if task is None or (task.finished and done < task.completed):
            tasks[stage] = bars.add_task(stage, total=size, stage=stage, note=note)
        bars.update(tasks[stage], completed=done, total=size, note=note)

    try:
        yield update
    except BaseException:
        # A failed command leaves its one error line, not a half-finished bar (nor the
        # blank line a non-terminal prints when a transient display stops).
        if tasks:
            bars.live.transient = True
            console.quiet = True
            try:
                bars.stop()
            finally:
                console.quiet = False
            tasks.clear()
        raise
    finally:
        if tasks:
            bars.stop()

@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Inside the block, libraries print nothing but errors: no Lightning or MLflow
    warnings, no tqdm bars (MLflow's downloads); everything is restored after."""
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "mlflow", "alembic", "optuna")
    levels = {name: logging.getLogger(name).level for name in names}
    environment = {name: os.environ.get(name) for name in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                logging.getLogger(name).setLevel(logging.ERROR)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: tqdm (>= 4.66) and MLflow's artifact transfers read these.
_QUIET_ENV = {"TQDM_DISABLE": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@contextmanager
def step(progress: ProgressFn | None, stage: str, note: str) -> Iterator[None]:
    """Show one step of unknown length as a pulsing bar that completes when the block ends."""
    if progress is not None:
        progress(stage, 0, 0, note)
    yield
    if progress is not None:
        progress(stage, 1, 1, "done")
