"""`reuse_freed_memory`: thresholds raised for the duration of a fit, restored once the
last concurrent fit ends, the free heap returned; a no-op without glibc."""

from __future__ import annotations

import threading

import pytest

from heimdall import memory


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    libc = _FakeLibc()
    with memory.reuse_freed_memory(libc):
        assert libc.calls == [("mallopt", memory.M_MMAP_THRESHOLD, memory.HELD_BYTES),
                              ("mallopt", memory.M_TRIM_THRESHOLD, memory.HELD_BYTES)]
    assert libc.calls[2:] == [("mallopt", memory.M_MMAP_THRESHOLD, memory.AFTER_MMAP_BYTES),
                              ("mallopt", memory.M_TRIM_THRESHOLD, memory.AFTER_TRIM_BYTES), ("malloc_trim", 0)]


def test_nested_and_concurrent_fits_restore_once_when_the_last_ends() -> None:
    libc = _FakeLibc()
    inside, release = threading.Event(), threading.Event()

    def other_fit() -> None:
        with memory.reuse_freed_memory(libc):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other_fit)
    with memory.reuse_freed_memory(libc):
        worker.start()
        assert inside.wait(10)
        with memory.reuse_freed_memory(libc):
            pass
    # The outer fit ended while the thread's still runs: nothing restored yet.
    assert [c for c in libc.calls if c[0] == "malloc_trim"] == []
    assert len(libc.calls) == 2
    release.set()
    worker.join(10)
    assert libc.calls[-1] == ("malloc_trim", 0) and len(libc.calls) == 5


def test_an_error_inside_still_restores() -> None:
    libc = _FakeLibc()
    with pytest.raises(ValueError, match="boom"), memory.reuse_freed_memory(libc):
        raise ValueError("boom")
    assert libc.calls[-1] == ("malloc_trim", 0)


def test_without_glibc_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    assert memory._glibc() is None
    with memory.reuse_freed_memory():
        values = [i * i for i in range(10)]
    assert values[-1] == 81


def test_on_this_glibc_the_real_calls_succeed() -> None:
    libc = memory._glibc()
    if libc is None:
        pytest.fail("the test machine runs glibc (Debian); mallopt should be found")
    assert libc.mallopt(memory.M_MMAP_THRESHOLD, memory.HELD_BYTES) == 1  # accepted, not silently refused
    with memory.reuse_freed_memory():
        block = bytearray(64 * 2**20)
        del block
    assert libc.mallopt(memory.M_MMAP_THRESHOLD, memory.AFTER_MMAP_BYTES) == 1
