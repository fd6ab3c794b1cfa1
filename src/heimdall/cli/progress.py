"""Rich progress bars (with ETA) on stderr for the pipelines' `ProgressFn` reports."""

from __future__ import annotations

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

__all__ = ["progress_bars", "step"]


@contextmanager
def progress_bars(quiet: bool = False) -> Iterator[ProgressFn | None]:
    """Yield a `ProgressFn` drawing one bar per stage, or None when `quiet`.

    Bars go to stderr, so `--json` output on stdout stays one clean line; on a terminal
    that is not interactive rich prints each bar once, when it finishes.
    """
    if quiet:
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
        if stage not in tasks:
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
def step(progress: ProgressFn | None, stage: str, note: str) -> Iterator[None]:
    """Show one step of unknown length as a pulsing bar that completes when the block ends."""
    if progress is not None:
        progress(stage, 0, 0, note)
    yield
    if progress is not None:
        progress(stage, 1, 1, "done")
