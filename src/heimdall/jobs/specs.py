"""What a queued job needs besides its request: checkpoints and references resolved.

A job row stores its request (`heimdall.requests`) as is, so any worker on any machine can
read it back.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from heimdall.jobs import repository as jobs
from heimdall.errors import InputError, NotFoundError
from heimdall.pipelines.context import Context
from heimdall.requests import TrainRequest
from heimdall.storage.tables import TrainingJob

__all__ = ["job_request", "best_checkpoint", "resolve_init_from"]


_CHECKPOINT_RE = re.compile(r"val_loss(?P<loss>-?[0-9.]+(?:e-?[0-9]+)?)\.ckpt$")
_MODEL_REF_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def job_request(ctx: Context, request: TrainRequest, checkpoint: Path | None = None) -> TrainRequest:
    """What a queued training job runs: `request` (as stored in its row) with `init_from`
    resolved to a checkpoint, or resuming `checkpoint` when given."""
    if request.devices * request.num_nodes > 1:
        # Lightning's DDP launcher re-runs the process's own command line: in a worker
        # that is the worker, not `heimdall train`.
        raise InputError("a queued training job runs in one process; use `heimdall train --devices N` for DDP")
    if checkpoint is not None:
        return dataclasses.replace(request, init_from=None, checkpoint=checkpoint, resume_training=True)
    init_from = str(resolve_init_from(ctx, request.init_from)) if request.init_from else None
    return dataclasses.replace(request, init_from=init_from)


def best_checkpoint(job: TrainingJob) -> Path:
    """The checkpoint of a training job with the lowest validation loss (else its last one)."""
    result = (job.params or {}).get("result") or {}
    if result.get("best_checkpoint") and Path(result["best_checkpoint"]).is_file():
        return Path(result["best_checkpoint"])
    directory = Path(job.checkpoint_dir) if job.checkpoint_dir else None
    if directory is None or not directory.is_dir():
        raise NotFoundError(f"job {job.id} has no checkpoints")
    scored = []
    for path in directory.glob("*.ckpt"):
        match = _CHECKPOINT_RE.search(path.name)
        if match:
            scored.append((float(match["loss"]), path))
    if scored:
        return min(scored)[1]
    if (directory / "last.ckpt").is_file():
        return directory / "last.ckpt"
    raise NotFoundError(f"job {job.id} has no checkpoints")


def resolve_init_from(ctx: Context, reference: str) -> Path:
    """A training job id or `models:/NAME/VERSION` -> the checkpoint it was trained to.

    The API never takes a file path: a checkpoint is a pickle, so only ones this
    installation wrote are loaded.
    """
    job_id = reference
    if match := _MODEL_REF_RE.match(reference):
        record = jobs.model_record(ctx.db, match["name"], int(match["version"]))
        if record is None:
            raise NotFoundError(f"model {reference} not found")
        if record.job_id is None:
            raise NotFoundError(f"model {reference} has no training job to start from")
        job_id = record.job_id
    elif not _UUID_RE.match(reference):
        raise InputError(f"init_from must be a training job id or models:/NAME/VERSION, got {reference!r}")
    job = jobs.get_job(ctx.db, job_id)
    if job.kind != "train":
        raise InputError(f"init_from job {job_id} is a {job.kind} job, not a training job")
    return best_checkpoint(job)
