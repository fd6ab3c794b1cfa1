"""Artifact store: where datasets and model bundles live.

One small interface, `ArtifactStore`, with a local-directory implementation (the embedded
default). Writers stage a whole directory and publish it at once with `publish_dir`; a
reader never sees a half-written dataset or bundle because the manifest is the last file to
appear (and, locally, the directory appears by one atomic rename).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from heimdall.errors import InputError, NotFoundError
from heimdall.pausepoints import pause_point
from heimdall.storage.staging import StaleDir, owner_token, stale_dirs

__all__ = ["ArtifactStore", "LocalStore", "PARTIAL", "check_key"]

#: Marks a directory a local publish is still copying (never listed, never read).
PARTIAL = ".partial."


class ArtifactStore(Protocol):
    """Key/value store of files; keys are `/`-separated relative paths."""

    def uri(self, key: str) -> str:
        """A URI a user can read (file:// or s3://)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""
        ...

    def get_file(self, key: str, destination: Path) -> Path:
        """Copy the object to `destination` and return it."""
        ...

    def local_dir(self, prefix: str) -> Path:
        """A local directory holding every object under `prefix` (downloaded if needed)."""
        ...

    def publish_dir(self, prefix: str, source_dir: Path, manifest_name: str) -> None:
        """Store every file of `source_dir` under `prefix`, `manifest_name` last."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; return how many were deleted."""
        ...


def check_key(key: str) -> str:
    """`key` normalised to `a/b/c`; an InputError if it is empty or climbs out (`.`, `..`).

    Every store (local and S3) checks keys with this one function."""
    parts = [p for p in key.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InputError(f"invalid artifact key {key!r}")
    return "/".join(parts)


class LocalStore:
    """Artifact store in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        if base.is_file():
            return [check_key(prefix)]
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and PARTIAL not in p.relative_to(self.root).as_posix()
        )

    def get_file(self, key: str, destination: Path) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"no artifact at {self.uri(key)}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        return destination

    def local_dir(self, prefix: str) -> Path:
        path = self._path(prefix)
        if not path.is_dir():
            raise NotFoundError(f"no artifacts under {self.uri(prefix)}")
        return path

    def publish_dir(self, prefix: str, source_dir: Path, manifest_name: str) -> None:
        target = self._path(prefix)
        if target.exists():
            raise InputError(f"{self.uri(prefix)} already exists")
        if not (source_dir / manifest_name).is_file():
            raise InputError(f"{source_dir} has no {manifest_name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Named after its owner, so a publish killed half-way is found and removed later.
        staging = target.with_name(f"{target.name}{PARTIAL}{owner_token()}.{uuid.uuid4().hex[:8]}")
        try:
            shutil.copytree(source_dir, staging, ignore=shutil.ignore_patterns(manifest_name))
            shutil.copyfile(source_dir / manifest_name, staging / manifest_name)
            pause_point("publish:copied")
            # One rename: the directory appears whole, manifest included, or not at all.
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def stale_partials(self) -> list[StaleDir]:
        """Half-copied directories of publishes whose process died (`datasets/X.partial.*`, ...)."""
        return [s for pattern in (f"*/*{PARTIAL}*", f"*/*/*{PARTIAL}*") for s in stale_dirs(self.root, pattern)]

    def remove_stale_partials(self) -> list[Path]:
        """Remove `stale_partials`; return their paths."""
        removed = []
        for stale in self.stale_partials():
            shutil.rmtree(stale.path, ignore_errors=True)
            removed.append(stale.path)
        return removed

    def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix)
        if not path.exists():
            return 0
        if path.is_file():
            path.unlink()
            return 1
        count = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return count
