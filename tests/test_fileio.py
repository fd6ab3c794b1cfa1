"""Files written under a temporary name and renamed get ordinary permissions (0644 under umask 022)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from heimdall.fileio import default_dir_mode, default_file_mode, temp_dir, temp_file_beside
from heimdall.network import default_network
from heimdall.pipelines import Context, generate
from heimdall.pipelines.datasets import dataset_export


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        assert default_file_mode() == 0o640 and default_dir_mode() == 0o750
        fd, name = temp_file_beside(tmp_path / "x.csv")
        os.close(fd)
        assert _mode(Path(name)) == 0o640 and Path(name).name.startswith(".x.csv.")
        assert _mode(temp_dir("d.", tmp_path)) == 0o750
    finally:
        os.umask(previous)


def test_datasets_export_writes_0644(ctx: Context, tmp_path: Path, umask_022: None) -> None:
    generate(ctx, "modes", 200, seed=2)
    for name in ("test.csv", "test.parquet"):
        dataset_export(ctx, "modes", "test", tmp_path / name)
        assert _mode(tmp_path / name) == 0o644, name
    network = tmp_path / "network.yaml"
    default_network().save(network)
    assert _mode(network) == 0o644
    dataset_dirs = [p for p in (ctx.settings.resolved_artifacts_dir / "datasets").iterdir() if p.is_dir()]
    assert dataset_dirs and all(_mode(p) == 0o755 for p in dataset_dirs)
