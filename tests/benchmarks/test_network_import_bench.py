"""benchmarks/network_import.py: the importer's speed where many receiver ids share a place."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np


def test_every_case_builds_the_whole_network_and_reports_its_time(load_benchmark: Callable[[str], ModuleType]) -> None:
    bench = load_benchmark("network_import")
    built = {name: len(build()) for name, (build, _) in bench.cases(np.random.default_rng(0)).items()}
    assert built == {name: expected for name, (_, expected) in bench.cases(np.random.default_rng(0)).items()}
    result = bench.run(repeats=1)
    for name in built:
        assert result[f"{name}_s"] > 0 and isinstance(result[f"{name}_within_target"], bool)
