"""What a queued job carries: the specs of generate and train jobs, and their helpers.

Specs are plain, JSON-serialisable descriptions stored in the job row, so any worker on any
machine can rebuild the request.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from heimdall.jobs import repository as jobs
from heimdall.data.splits import SplitMode
from heimdall.errors import InputError, NotFoundError
from heimdall.network import ReceiverNetwork, default_network
from heimdall.pipelines.context import Context
from heimdall.sim.scenario import ScenarioConfig
from heimdall.storage.tables import TrainingJob

__all__ = ["GenerateSpec", "TrainSpec", "best_checkpoint", "resolve_init_from"]


_CHECKPOINT_RE = re.compile(r"val_loss(?P<loss>-?[0-9.]+(?:e-?[0-9]+)?)\.ckpt$")
_MODEL_REF_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class GenerateSpec:
    """A dataset generation job. `network` is `ReceiverNetwork.to_dict`'s form (None = default).

    `resume` (the default for jobs): shards staged by an interrupted job of the same name and
    plan are kept, so re-submitting a job whose worker died finishes it with the same bytes.
    """

    name: str
    num_samples: int
    seed: int = 0
    description: str | None = None
    kind: Literal["features"] = "features"
    split_mode: SplitMode = "random"
    scenario: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] | None = None
    frequency_hz: float | None = None
    resume: bool = True

    def build(self) -> tuple[ScenarioConfig, ReceiverNetwork]:
        """The scenario and network this spec asks for; InputError if either is invalid."""
        from pydantic import ValidationError

        if self.kind != "features":
            raise InputError(f"kind {self.kind!r} is not available yet; use 'features'")
        if self.num_samples <= 0:
            raise InputError(f"num_samples must be positive, got {self.num_samples}")
        try:
            scenario = ScenarioConfig(**self.scenario)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"invalid scenario {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}") from exc
        network = ReceiverNetwork.from_dict(self.network) if self.network is not None else default_network()
        if self.frequency_hz is not None:
            network = dataclasses.replace(network, frequency_hz=self.frequency_hz)
        return scenario, network


@dataclass(frozen=True)
class TrainSpec:
    """A training job. `init_from` is a training job id or `models:/NAME/VERSION` (server-side)."""

    dataset: str
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    validation_split: float | None = None
    init_from: str | None = None
    seed: int = 0
    hidden_dim: int = 128
    num_layers: int = 2
    weight_decay: float = 1e-4
    dropout: float = 0.0
    spectrogram_encoder: str | None = None
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    num_workers: int = 0
    num_threads: int | None = None
    export: bool = True

    def request(self, ctx: Context, checkpoint: Path | None = None) -> Any:
        """The `TrainRequest` of a fresh run, or of a resumed one when `checkpoint` is given."""
        from heimdall.pipelines.training import TrainRequest

        if self.devices * self.num_nodes > 1:
            # Lightning's DDP launcher re-runs the process's own command line: in a worker
            # that is the worker, not `heimdall train`.
            raise InputError("a queued training job runs in one process; use `heimdall train --devices N` for DDP")
        # Every training field carries over under its own name; `init_from` is resolved below
        # and `export` is the job's, not training's.
        common = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("init_from", "export")}
        if checkpoint is not None:
            return TrainRequest(**common, checkpoint=checkpoint, resume_training=True)
        init_from = str(resolve_init_from(ctx, self.init_from)) if self.init_from else None
        return TrainRequest(**common, init_from=init_from)


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
