"""Temporary files and directories for atomic writes, with the permissions of ordinary ones.

`tempfile.mkstemp` creates files 0600 and `mkdtemp` directories 0700, so a file written
under a temporary name and renamed into place (how Heimdall writes everything it must never
leave half-written) kept a private mode, unlike what `open()` or `mkdir` give: exported
CSVs, networks and SigMF files other users could not read. These helpers give the mode an
ordinary file (0666) or directory (0777) gets under the process umask (0644 / 0755 with
the usual umask 022).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["default_dir_mode", "default_file_mode", "temp_dir", "temp_file_beside"]


def _umask() -> int:
    # /proc reads it without changing it; os.umask would briefly change it for every thread.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode `open(path, "w")` would give a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """The mode `mkdir` would give a new directory: 0o777 less the umask."""
    return 0o777 & ~_umask()


def temp_file_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in `path`'s directory (to rename onto `path`): (open fd, name).

    Its mode is the ordinary one (`default_file_mode`), not mkstemp's 0600.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, default_file_mode())
    return fd, name


def temp_dir(prefix: str, parent: Path) -> Path:
    """A new temporary directory under `parent` (to rename into place), mode `default_dir_mode`."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    directory.chmod(default_dir_mode())
    return directory
