"""The seeds' Python API: `TrainingPipeline(...).run(...)` and `export_and_register_model(...)`.

Users following the seed documents find these names here. Both are thin facades over
`heimdall.pipelines` (the same code `heimdall train` and `heimdall export` run); where the
seeds' shapes differ from the design, the design wins: datasets are named (see
`heimdall datasets list`), not directories, and registry versions are integers.

Example::

    from heimdall.api import TrainingPipeline, export_and_register_model

    result = TrainingPipeline(epochs=40, batch_size=256, learning_rate=2e-3).run(dataset="demo")
    print(result["checkpoint_path"], result["onnx_path"], result["mlflow_run_id"], result["final_metrics"])
    export_and_register_model(result.checkpoint_path, "heimdall-localizer", 7, "heimdall-localizer-7.onnx")
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdall.errors import InputError
from heimdall.names import to_slug
from heimdall.pipelines import Context, ExportResult, export, open_context, train
from heimdall.requests import TrainRequest, fields_on
from heimdall.settings import Settings

__all__ = ["TrainingPipeline", "TrainingPipelineResult", "export_and_register_model"]


@dataclass(frozen=True)
class TrainingPipelineResult:
    """What `TrainingPipeline.run` returns; `result["key"]` works too, as in the seeds.

    `final_metrics`: the last epoch's training metrics (`train_loss`, `val_loss` in nats,
    `val_median_error_m`, ...) and, once exported, the test-split evaluation as `test_*`
    (errors in metres, coverages as fractions).
    """

    checkpoint_path: str
    onnx_path: str | None
    mlflow_run_id: str | None
    final_metrics: dict[str, float]
    model: str | None = None
    bundle_path: str | None = None
    job_id: str | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


def _open(settings: Settings | None) -> Context:
    return open_context(settings if settings is not None else Settings())


def _scalars(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TrainingPipeline:
    """Train, then export and register, a localisation model (seed name for `heimdall train`).

    The keyword arguments are the `facade` fields of `heimdall.requests.TrainRequest` (SI
    units), with its defaults and checks: `epochs`, `batch_size`, `learning_rate`,
    `weight_decay`, `dropout`, `validation_split`, `accelerator` ("cpu", "gpu", "auto"),
    `devices`, `num_workers`, `hidden_dim`, `num_layers`, `seed`, ... `settings`
    overrides the environment's configuration.
    """

    #: The options `__init__` takes (tests/test_requests.py holds them to TrainRequest).
    OPTIONS = frozenset(f.name for f in fields_on(TrainRequest, "facade"))

    def __init__(self, *, settings: Settings | None = None, **options: Any) -> None:
        names = self.OPTIONS
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(f"unknown TrainingPipeline option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        self.options = options
        self.settings = settings

    def run(
        self,
        dataset: str | None = None,
        export_only: bool = False,
        checkpoint: str | Path | None = None,
        resume_training: bool = False,
        data_dir: str | Path | None = None,
    ) -> TrainingPipelineResult:
        """Train on the named dataset (or resume from `checkpoint`), then export the best
        checkpoint as an ONNX bundle and register it; `export_only` only exports `checkpoint`.

        `data_dir` (the seeds' argument) is refused with what to use instead: Heimdall
        trains on named, catalogued datasets, not on directories.
        """
        if data_dir is not None:
            raise InputError(
                f"data_dir={str(data_dir)!r} is not supported: Heimdall trains on named datasets; "
                "create one with `heimdall generate --name NAME` (or import-measurements / import-recordings), "
                "then call run(dataset=NAME) (see `heimdall datasets list`)"
            )
        if export_only and checkpoint is None:
            raise InputError("export_only needs checkpoint=PATH")
        ctx = _open(self.settings)
        try:
            if export_only:
                return _exported(ctx, Path(checkpoint), job_id=None, epoch_metrics={})  # type: ignore[arg-type]
            request = TrainRequest(
                dataset=dataset,
                checkpoint=Path(checkpoint) if checkpoint is not None else None,
                resume_training=resume_training,
                given=frozenset(self.options) | ({"dataset"} if dataset is not None else set()),
                **self.options,
            )
            result = train(ctx, request)
            from heimdall.jobs.repository import latest_metrics

            last = latest_metrics(ctx.db, result.job_id)
            epoch_metrics = {
                k: float(v)
                for k, v in (
                    ("train_loss", last.train_loss if last else None),
                    ("val_loss", last.val_loss if last else None),
                    ("val_median_error_m", last.val_median_error_m if last else None),
                    ("val_coverage_1sigma", last.val_coverage_1sigma if last else None),
                )
                if v is not None
            }
            return _exported(ctx, Path(result.best_checkpoint), job_id=result.job_id, epoch_metrics=epoch_metrics)
        finally:
            ctx.close()


def _exported(ctx: Context, checkpoint: Path, job_id: str | None, epoch_metrics: dict[str, float]) -> TrainingPipelineResult:
    from heimdall.training.checkpoints import load_checkpoint

    exported = export(ctx, checkpoint)
    _, meta = load_checkpoint(checkpoint)
    return TrainingPipelineResult(
        checkpoint_path=str(checkpoint),
        onnx_path=exported.onnx,
        mlflow_run_id=meta.get("mlflow_run_id"),
        final_metrics=epoch_metrics | _scalars(exported.evaluation, "test_"),
        model=exported.registered,
        bundle_path=exported.bundle,
        job_id=job_id or meta.get("job_id"),
    )


def _semantic_version(version: int | str | None) -> str | None:
    """The seeds' version (3, "3", "1.2.0", "v1.2.0", "1.0.0-test") as the bundle's `v{major}.{minor}.{patch}[-pre][+build]`."""
    if version is None:
        return None
    text = str(version).strip()
    if text.isdigit():
        return f"v{int(text)}.0.0"
    return text if text.startswith("v") else f"v{text}"


def export_and_register_model(
    checkpoint_path: str | Path,
    model_name: str,
    version: int | str | None = None,
    onnx_filename: str | Path | None = None,
    *,
    settings: Settings | None = None,
) -> ExportResult:
    """Export a training checkpoint as an ONNX model bundle and register it (seed name).

    The bundle is calibrated on the validation split, evaluated on the test split, stored
    in the artifact store and registered in MLflow as `models:/{model_name}/N`. `version` is
    the bundle's semantic version: `"1.2.0"`, `"v1.2.0"`, a SemVer pre-release or build
    (`"1.0.0-test"`, `"1.0.0+build.1"`), or an integer 3 meaning `v3.0.0` (None: the next
    minor version); anything else is an InputError. `model_name` follows the naming rule of
    datasets (`heimdall.names`): a display name becomes its slug. With `onnx_filename`,
    a copy of the bundle's `model.onnx` is also written to that path (the returned `onnx`
    names it).
    """
    semantic = _semantic_version(version)
    model_name = to_slug(model_name, "model")
    base = settings if settings is not None else Settings()
    ctx = _open(base.model_copy(update={"registered_model_name": model_name}))
    try:
        result = export(ctx, Path(checkpoint_path), version=semantic)
    finally:
        ctx.close()
    if onnx_filename is None:
        return result
    target = Path(onnx_filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(result.onnx, partial)
    partial.replace(target)  # never a half-written file under the final name
    return dataclasses.replace(result, onnx=str(target.resolve()))
