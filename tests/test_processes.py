"""Ctrl-C handling around work that must not stop half-way, and in spawned workers."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from heimdall.processes import ctrl_c_deferred, ctrl_c_ignored, ctrl_c_kept


pytestmark = pytest.mark.usefixtures("ctrl_c_raises")


def test_a_ctrl_c_inside_a_deferred_block_lands_after_it() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the write")
        steps.append("after the block")
    assert steps == ["finished the write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deferred_block_without_ctrl_c_changes_nothing() -> None:
    with ctrl_c_deferred():
        value = 1 + 1
    assert value == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nested_deferral_holds_the_signal_until_the_outer_block_ends() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            with ctrl_c_deferred():
                os.kill(os.getpid(), signal.SIGINT)
            steps.append("outer block goes on")
    assert steps == ["outer block goes on"]


def test_a_deferred_ctrl_c_where_it_is_ignored_stays_ignored() -> None:
    with ctrl_c_ignored():
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_deferral_does_nothing() -> None:
    seen: list[object] = []

    def worker() -> None:
        with ctrl_c_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_a_handler_changed_inside_a_kept_block_is_put_back() -> None:
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as Lightning does after an interrupted fit
            raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_outside_the_main_thread_keeping_does_nothing() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with ctrl_c_kept():
                pass
        except BaseException as exc:  # signal.signal would raise ValueError off the main thread
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == []
