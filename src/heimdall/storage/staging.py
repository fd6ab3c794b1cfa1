"""Private working directories that say who owns them, so a dead owner's can be found.

A command that stages files (an import, an export's bundle, a local publish) names its
directory after its process: `PREFIX.OWNER.RANDOM`, where OWNER is this machine's short
hash, the process id and the process's start time (so a recycled pid does not look alive).
After a `kill -9` nothing removes the directory; the next command of the same kind (and
`heimdall doctor`) finds it with `stale_dirs` and removes it: an owner that is gone will
never finish it. Directories of another machine are left alone (their owner may be alive).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["owner_token", "owned_dir", "owner_alive", "StaleDir", "stale_dirs", "remove_stale"]

_TOKEN = re.compile(r"\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<start>\d+)(?:\.|$)")
#: Directories from before owners were recorded count as stale once this old.
LEGACY_AGE_S = 3600.0


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_token(pid: int | None = None) -> str:
    """`HOST-PID-START` of this process (or of `pid`)."""
    pid = os.getpid() if pid is None else pid
    return f"{_host()}-{pid}-{_start_ticks(pid) or 0}"


def owned_dir(root: Path, prefix: str) -> Path:
    """A new directory `root/PREFIX.OWNER.RANDOM` owned by this process."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}.{owner_token()}.", dir=root))


def owner_alive(name: str) -> bool | None:
    """Whether the process named in `name` still runs: None when `name` records no owner
    or belongs to another machine (unknown)."""
    match = _TOKEN.search(name)
    if match is None or match["host"] != _host():
        return None
    pid = int(match["pid"])
    start = _start_ticks(pid)
    if start is None:
        return False
    return int(match["start"]) in (0, start)


@dataclass(frozen=True)
class StaleDir:
    """A working directory whose owner is gone."""

    path: Path
    age_s: float


def stale_dirs(root: Path, pattern: str = "*") -> list[StaleDir]:
    """Directories under `root` matching `pattern` whose owner process has died (or,
    recording none, older than LEGACY_AGE_S and not a resumable generation's)."""
    if not root.is_dir():
        return []
    found = []
    now = time.time()
    for path in sorted(root.glob(pattern)):
        if not path.is_dir():
            continue
        try:
            age_s = now - path.stat().st_mtime
        except FileNotFoundError:
            continue  # removed meanwhile by its owner
        alive = owner_alive(path.name)
        # A resumable generation (`staging/NAME`, no dot) holds a `.lock` and is never stale here.
        legacy = (
            alive is None and _TOKEN.search(path.name) is None and "." in path.name
            and not (path / ".lock").exists() and age_s > LEGACY_AGE_S
        )
        if alive is False or legacy:
            found.append(StaleDir(path=path, age_s=age_s))
    return found


def remove_stale(root: Path, pattern: str = "*") -> list[Path]:
    """Remove what `stale_dirs` finds; return the removed paths."""
    removed = []
    for stale in stale_dirs(root, pattern):
        shutil.rmtree(stale.path, ignore_errors=True)
        removed.append(stale.path)
    return removed
