"""`LocalizerCache` switches models without stalling requests (issue 20, finding 7).

The registry and the ONNX loading are replaced by a table of versions and an event, so
the order of events is exact; the real switch under load is
`tests/reliability/test_localize_load.py::test_default_model_switch_under_concurrency_50_without_errors`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from heimdall.errors import ConfigError
from heimdall.serving.models import LocalizerCache
from heimdall.settings import Settings


class ScriptedCache(LocalizerCache):
    """Aliases from `self.alias`; loads wait for `self.gate` and may be told to fail."""

    def __init__(self, home: Path) -> None:
        super().__init__(Settings(home=home), alias_ttl_s=0.0)
        self.alias = 1
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.loads: list[str] = []

    def _lookup(self, reference):  # noqa: ANN001, ANN202 - the registry, scripted
        return ("m", self.alias)

    def _load(self, exact: str):  # noqa: ANN202
        self.loads.append(exact)
        assert self.gate.wait(30)
        if self.fail:
            raise ConfigError(f"model {exact} cannot be loaded: scripted")
        return SimpleNamespace(name=exact)


def _wait_for(condition, timeout_s: float = 10) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_old_version_answers_while_the_new_one_loads(home: Path) -> None:
    cache = ScriptedCache(home)
    assert cache.get(None)[1] == "models:/m/1"
    cache.alias, cache.gate = 2, threading.Event()
    # The alias moved: v1 keeps answering at once, v2 loads in one background thread.
    started = time.monotonic()
    answers = [cache.get(None)[1] for _ in range(20)]
    assert time.monotonic() - started < 1.0
    assert answers == ["models:/m/1"] * 20
    assert cache.loads == ["models:/m/1", "models:/m/2"]
    cache.gate.set()
    _wait_for(lambda: cache.get(None)[1] == "models:/m/2")
    assert cache.loads == ["models:/m/1", "models:/m/2"]


def test_a_new_version_that_cannot_load_leaves_the_old_one_serving(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ScriptedCache(home)
    cache.get(None)
    cache.alias, cache.fail = 2, True
    assert cache.get(None)[1] == "models:/m/1"
    _wait_for(lambda: not cache._loading)
    assert cache.get(None)[1] == "models:/m/1"
    assert "still serving the previous version" in caplog.text
    # Loading it directly (a promotion through the API) is the 503 the client sees.
    with pytest.raises(ConfigError, match="cannot be loaded"):
        cache.preload("m", 2)


def test_first_load_and_preload_are_synchronous(home: Path) -> None:
    cache = ScriptedCache(home)
    assert cache.preload("m", 3).name == "models:/m/3"
    cache.alias = 3
    assert cache.get(None)[1] == "models:/m/3"
    assert cache.loads == ["models:/m/3"]
