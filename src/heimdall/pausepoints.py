"""Named points where a command can be told to stop and wait, so tests can kill it there.

The crash tests need a process killed at an exact step (a bundle published but not yet
registered, shards staged but not yet published). Timing a `kill -9` from outside cannot
hit such a window reliably, so a command started with `HEIMDALL_PAUSE_AT=STEP` (the
`pause_at` setting, applied by `pipelines.open_context`) writes `HOME/paused-at-STEP` when
it reaches STEP and then waits to be killed. Unset (always, outside tests) it costs one
comparison per step.

Steps: `dataset:staged` (shards written, before publishing; generate and imports),
`publish:copied` (a local publish copied, before its rename), `export:staged` (bundle
evaluated, before publishing), `export:published` (in the artifact store, not yet in the
registry), `export:registered` (in the registry, not yet in the models table).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["configure", "pause_point", "marker_name"]

_pause_at: str | None = None
_marker_dir: Path | None = None


def configure(step: str | None, marker_dir: Path) -> None:
    """Pause at `step` (None: never), writing the marker into `marker_dir`."""
    global _pause_at, _marker_dir
    _pause_at, _marker_dir = step, marker_dir


def marker_name(step: str) -> str:
    """File name of the marker written on reaching `step`."""
    return "paused-at-" + step.replace(":", "-")


def pause_point(step: str) -> None:
    """Wait here forever (until killed or interrupted) if configured to pause at `step`."""
    if _pause_at != step or _marker_dir is None:
        return
    (_marker_dir / marker_name(step)).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)
