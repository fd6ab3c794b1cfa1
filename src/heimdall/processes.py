"""Worker processes that leave Ctrl-C to the process that started them.

A terminal's Ctrl-C reaches every process of the foreground group. A spawned worker that
receives it while importing, or while idle between tasks, dies with a traceback of its own
before the parent can report one clean line. So workers start with SIGINT ignored (the
disposition survives spawn's exec, and Python keeps an inherited "ignore"); the parent
handles the interrupt and stops them, or a worker that can stop cleanly (a tuning trial)
turns the signal back on where it handles it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

__all__ = ["ctrl_c_deferred", "ctrl_c_ignored", "ctrl_c_kept", "spawn_pool"]


@contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """Ignore SIGINT inside the block; processes started in it inherit that.

    Only the main thread can set signal handlers: elsewhere (a server's worker thread,
    which gets no SIGINT anyway) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block and deliver it when the block ends.

    For writes that must not stop half-way: a KeyboardInterrupt raised inside a database
    transaction can leave it open, and the next writer (the run's own "failed" status)
    then waits on the lock and fails. The signal is re-raised after the block with the
    previous handler back in place, so it has its usual effect (KeyboardInterrupt, or
    nothing where it was ignored). Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


@contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """Put back, when the block ends, the Ctrl-C handler it started with.

    For library code that changes the handler and does not restore it: Lightning ignores
    SIGINT for the rest of the process after a fit it interrupted, and its distributed
    teardown sets the default action. A process that trains more than once (a Celery
    worker, a notebook) would then ignore the next Ctrl-C, or die of it without clean-up.
    Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if previous is not None:  # None: set outside Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def spawn_pool(workers: int, initializer: Callable[[], object] | None = None) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes (not forked: the parent may hold torch/OpenMP
    threads that fork would copy broken), all started now with Ctrl-C ignored."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer)
    with ctrl_c_ignored():
        # The executor starts a process per submission until it has `workers` of them.
        for _ in range(workers):
            pool.submit(os.getpid)
    return pool
