"""Progress reporting shared by pipelines and adapters, independent of how it is shown.

A `ProgressFn` is called as `progress(stage, done, total, note)`: `stage` names one task
("generate", "train", "export"), `done` of `total` units are finished, and `note` is a
short status ("epoch 3/40, val median 21.4 km"). The CLI draws rich progress bars from it;
jobs write it to the database; `None` means nobody is listening.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "Stages"]

ProgressFn = Callable[[str, int, int, str], None]


class Stages:
    """Report a fixed number of named steps of one stage: `start(note)` before each step.

    >>> seen = []
    >>> steps = Stages(lambda *a: seen.append(a), "export", 2)
    >>> steps.start("writing ONNX"); steps.start("checking parity"); steps.finish()
    >>> seen[-1]
    ('export', 2, 2, 'done')
    """

    def __init__(self, progress: ProgressFn | None, stage: str, total: int) -> None:
        self.progress = progress
        self.stage = stage
        self.total = total
        self.done = -1

    def start(self, note: str) -> None:
        """Mark the previous step finished and the step described by `note` started."""
        self.done = min(self.done + 1, self.total)
        if self.progress is not None:
            self.progress(self.stage, self.done, self.total, note)

    def finish(self, note: str = "done") -> None:
        """Mark every step finished."""
        self.done = self.total
        if self.progress is not None:
            self.progress(self.stage, self.total, self.total, note)
