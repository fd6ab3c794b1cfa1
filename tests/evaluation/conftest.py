"""Fixtures for evaluation tests: the reference values computed outside the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The shared test data live beside the repository: <parent of repo root>/shared/testdata.
TESTDATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def reference_values() -> dict:
    """reference_values.json as a dict; fails (never skips) when the file is missing."""
    path = TESTDATA_DIR / "reference_values.json"
    if not path.is_file():
        pytest.fail(f"reference values not found at {path} (shared/testdata beside the repo)")
    return json.loads(path.read_text())
