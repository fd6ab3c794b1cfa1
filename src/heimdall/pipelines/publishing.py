"""Crash consistency of publishing: leftovers of killed commands, found and repaired.

An export writes three places that cannot change in one transaction: the artifact store
(`models/NAME/vN`), the MLflow registry (version N) and the `models` table. It publishes
them in that order under a per-model lock, so after a `kill -9` at most the last steps are
missing, and the next export (or `heimdall doctor --fix`) repairs them first:

- a bundle in the store that the registry does not know (killed between publish and
  registration) is removed: it was never announced, and its version number is free again;
- a registered version without its `models` row (killed after registration) gets its row,
  rebuilt from the bundle's config and metrics.

Working directories of killed imports, exports and publishes (`storage.staging`) are
removed the same way; a killed generation's staged shards are kept for `--resume`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from heimdall.export.bundle import parse_config
from heimdall.jobs import repository as jobs
from heimdall.pipelines.context import Context
from heimdall.storage.artifacts import LocalStore
from heimdall.storage.staging import owner_alive, remove_stale, stale_dirs

__all__ = [
    "publish_lock", "ModelRepair", "model_repairs", "repair_models", "clean_stale_work", "stale_work", "DoctorReport", "doctor",
]

log = logging.getLogger(__name__)
#: Age after which a half-published version of another machine's export counts as abandoned.
FOREIGN_GRACE_S = 3600.0
_VERSION_DIR = re.compile(r"^models/(?P<name>[^/]+)/v(?P<version>\d+)/config\.yaml$")


@contextmanager
def publish_lock(ctx: Context, name: str) -> Iterator[None]:
    """Exclusive right to publish versions of model `name` (one machine; held until exit)."""
    directory = ctx.settings.home / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"publish-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield


@dataclass(frozen=True)
class ModelRepair:
    """What a killed export left of model `name`."""

    name: str
    #: Versions in the artifact store that the registry does not have (half-published).
    unregistered: list[int] = field(default_factory=list)
    #: Registered versions whose bundle is stored but which have no `models` row.
    unrecorded: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.unregistered and not self.unrecorded


def _stored_versions(ctx: Context, name: str) -> set[int]:
    return {
        int(match["version"])
        for key in ctx.store.list(f"models/{name}")
        if (match := _VERSION_DIR.match(key)) and match["name"] == name
    }


def model_repairs(ctx: Context, name: str) -> ModelRepair:
    """Compare store, registry and table for model `name` (changes nothing)."""
    stored = _stored_versions(ctx, name)
    if not stored:
        return ModelRepair(name)
    registered = ctx.tracker.version_numbers(name)
    recorded = jobs.recorded_versions(ctx.db, name)
    return ModelRepair(
        name, unregistered=sorted(stored - registered), unrecorded=sorted((stored & registered) - recorded)
    )


def _record_from_bundle(ctx: Context, name: str, version: int) -> dict[str, Any]:
    """The models-table columns of a published bundle, read from its config and metrics."""
    prefix = f"models/{name}/v{version}"
    directory = ctx.store.local_dir(prefix)
    config: dict[str, Any] = parse_config((directory / "config.yaml").read_text()) or {}
    metrics = json.loads((directory / "metrics.json").read_text()) if (directory / "metrics.json").is_file() else {}
    evaluation = metrics.get("evaluation") or {}
    return dict(
        name=name,
        version=version,
        bundle_uri=ctx.store.uri(prefix),
        onnx_uri=ctx.store.uri(f"{prefix}/model.onnx"),
        dataset_name=config.get("dataset"),
        job_id=config.get("job_id"),
        mlflow_run_id=config.get("mlflow_run_id"),
        parent_model=(config.get("training") or {}).get("init_from"),
        metrics={k: v for k, v in evaluation.items() if not isinstance(v, dict)},
    )


def _publisher_gone(ctx: Context, name: str, version: int) -> bool:
    """Whether the export that published `name` vVERSION is certainly dead: its process on
    this machine has exited, or (another machine's, or unrecorded) it is over an hour old."""
    directory = ctx.store.local_dir(f"models/{name}/v{version}")
    config: dict[str, Any] = parse_config((directory / "config.yaml").read_text()) or {}
    alive = owner_alive(f".{config.get('published_by', '')}")
    if alive is not None:
        return not alive
    try:
        created = datetime.fromisoformat(str(config.get("created_at")))
    except ValueError:
        return True
    return (datetime.now(timezone.utc) - created).total_seconds() > FOREIGN_GRACE_S


def repair_models(ctx: Context, name: str) -> ModelRepair:
    """Undo half-published versions of `name` and complete registered ones; call under
    `publish_lock` (another export of `name` on this machine may be between its steps).

    A half-published version whose export may still be running on another machine (the
    lock is per machine) is left alone until FOREIGN_GRACE_S has passed.
    """
    found = model_repairs(ctx, name)
    removed = []
    for version in found.unregistered:
        if not _publisher_gone(ctx, name, version):
            log.warning("%s v%d is published but not registered yet; its export still runs", name, version)
            continue
        ctx.store.delete_prefix(f"models/{name}/v{version}")
        removed.append(version)
        log.warning("removed %s v%d: published by an export that died before registering it", name, version)
    for version in found.unrecorded:
        jobs.record_model(ctx.db, **_record_from_bundle(ctx, name, version))
        log.warning("recorded %s v%d: registered by an export that died before recording it", name, version)
    return ModelRepair(name, unregistered=removed, unrecorded=found.unrecorded)


def stale_work(ctx: Context) -> list[Path]:
    """Working directories of killed imports, exports and local publishes (changes nothing)."""
    found = [s.path for s in stale_dirs(ctx.staging_dir)]
    if isinstance(ctx.store, LocalStore):
        found += [s.path for s in ctx.store.stale_partials()]
    return found


def clean_stale_work(ctx: Context) -> list[Path]:
    """Remove `stale_work`; return what was removed (logged once, as a warning)."""
    removed = remove_stale(ctx.staging_dir)
    if isinstance(ctx.store, LocalStore):
        removed += ctx.store.remove_stale_partials()
    if removed:
        log.warning("removed %d working director(ies) of killed commands: %s", len(removed), ", ".join(map(str, removed)))
    return removed


@dataclass(frozen=True)
class DoctorReport:
    """Leftovers of killed commands in this installation (and what `fix` did about them)."""

    #: Working directories whose owner died (removable).
    stale: list[str]
    #: Interrupted generations kept for `heimdall generate ... --resume` (dataset names).
    resumable: list[str]
    #: Model versions a killed export left half-published or unrecorded.
    models: list[ModelRepair]
    fixed: bool = False

    @property
    def clean(self) -> bool:
        return not self.stale and not self.resumable and all(m.empty for m in self.models)


def _model_names(ctx: Context) -> set[str]:
    names = {ctx.settings.registered_model_name}
    names.update(key.split("/")[1] for key in ctx.store.list("models") if key.count("/") >= 2)
    return names


def _resumable(ctx: Context) -> list[str]:
    from heimdall.data.shards import PROGRESS_FILE, staging_in_use

    root = ctx.staging_dir
    if not root.is_dir():
        return []
    return sorted(
        path.name for path in root.iterdir()
        if path.is_dir() and (path / PROGRESS_FILE).is_file() and not staging_in_use(root, path.name)
    )


def doctor(ctx: Context, fix: bool = False) -> DoctorReport:
    """What killed commands left behind; with `fix`, remove stale work and repair models.

    Interrupted generations are reported, never removed: `generate --resume` finishes them.
    """
    names = sorted(_model_names(ctx))
    if not fix:
        return DoctorReport(
            stale=[str(p) for p in stale_work(ctx)], resumable=_resumable(ctx), models=[model_repairs(ctx, n) for n in names]
        )
    stale = [str(p) for p in clean_stale_work(ctx)]
    repairs = []
    for name in names:
        with publish_lock(ctx, name):
            repairs.append(repair_models(ctx, name))
    return DoctorReport(stale=stale, resumable=_resumable(ctx), models=repairs, fixed=True)
