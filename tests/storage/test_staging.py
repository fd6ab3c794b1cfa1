"""Working directories that name their owner: a dead owner's are stale, a live one's never."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from heimdall.storage.staging import owned_dir, owner_alive, owner_token, remove_stale, stale_dirs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_directories_of_dead_owners_on_this_machine_are_stale(tmp_path: Path) -> None:
    mine = owned_dir(tmp_path, "bundle")
    assert owner_alive(mine.name) is True
    dead = tmp_path / f"imp.{owner_token().split('-')[0]}-{_dead_pid()}-12345.abcd"
    dead.mkdir()
    elsewhere = tmp_path / f"imp.ffffff-{os.getpid()}-1.abcd"  # another machine's hash
    elsewhere.mkdir()
    resumable = tmp_path / "gen"  # a planned generation: kept for --resume
    resumable.mkdir()
    (resumable / ".lock").touch()
    legacy = tmp_path / "bundle.old123"
    legacy.mkdir()
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    os.utime(resumable, (old, old))
    fresh_legacy = tmp_path / "bundle.new456"
    fresh_legacy.mkdir()
    assert owner_alive(elsewhere.name) is None and owner_alive("gen") is None
    assert sorted(s.path.name for s in stale_dirs(tmp_path)) == sorted([dead.name, legacy.name])
    assert sorted(p.name for p in remove_stale(tmp_path)) == sorted([dead.name, legacy.name])
    assert mine.is_dir() and elsewhere.is_dir() and resumable.is_dir() and fresh_legacy.is_dir()
    assert not dead.exists() and not legacy.exists()
