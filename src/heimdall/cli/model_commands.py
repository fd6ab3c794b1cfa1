"""Model commands: train, export, evaluate, localize, models list/promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from heimdall.cli.common import (
    JsonFlag,
    context,
    emit,
    fail,
    fmt_m,
    handle_errors,
    summary_table,
)


@handle_errors
def train(
    dataset: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size")] = 256,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--learning_rate")] = 2e-3,
    validation_split: Annotated[float | None, typer.Option("--validation-split", "--validation_split")] = None,
    accelerator: Annotated[str, typer.Option(help="cpu, gpu or auto.")] = "cpu",
    devices: Annotated[int, typer.Option(help="Devices (processes) per node.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", "--num_nodes", help="Machines in a DDP run.")] = 1,
    strategy: Annotated[str, typer.Option(help="auto, ddp or ddp_spawn (DDP: gloo on CPU, NCCL on GPU).")] = "auto",
    precision: Annotated[str, typer.Option(help="32-true, bf16-mixed or 16-mixed (GPU only).")] = "32-true",
    num_workers: Annotated[int, typer.Option("--num-workers", "--num_workers")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads per process (default: one per core).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint to resume or export.")] = None,
    resume_training: Annotated[bool, typer.Option("--resume-training", "--resume_training")] = False,
    export_only: Annotated[bool, typer.Option("--export-only", "--export_only")] = False,
    init_from: Annotated[str | None, typer.Option("--init-from", "--init_from", help="Checkpoint to fine-tune.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    spectrogram_encoder: Annotated[
        str | None, typer.Option("--spectrogram-encoder", help="nano, tiny, small, base or large (iq datasets).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a model on a dataset (or resume, or export a checkpoint)."""
    from heimdall import pipelines

    if accelerator not in ("cpu", "gpu", "auto"):
        fail(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")
    ctx = context()
    if export_only:
        if checkpoint is None:
            fail("--export-only needs --checkpoint PATH")
        result = pipelines.export(ctx, checkpoint)
        emit(_export_payload(result), as_json)
        return
    request = pipelines.TrainRequest(
        dataset=dataset, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        validation_split=validation_split, accelerator=accelerator, devices=devices,  # type: ignore[arg-type]
        num_nodes=num_nodes, strategy=strategy, precision=precision,  # type: ignore[arg-type]
        num_workers=num_workers, num_threads=threads, checkpoint=checkpoint, resume_training=resume_training,
        init_from=init_from, seed=seed, progress_bar=progress, spectrogram_encoder=spectrogram_encoder,
    )
    result = pipelines.train(ctx, request)
    if not result.is_global_zero:
        return  # the extra processes of a DDP run; rank 0 reports
    payload = {
        "checkpoint": result.checkpoint,
        "best_checkpoint": result.best_checkpoint,
        "epochs_run": result.epochs_run,
        "mlflow_run_id": result.mlflow_run_id,
        "job_id": result.job_id,
    }
    emit(payload, as_json, lambda: Console().print(
        f"trained {result.epochs_run} epochs; best {result.best_checkpoint}; MLflow run {result.mlflow_run_id}"
    ))



def _export_payload(result: Any) -> dict[str, Any]:
    return {
        "bundle": result.bundle,
        "onnx": result.onnx,
        "max_abs_diff": result.max_abs_diff,
        "registered": result.registered,
        "version": result.version,
    }



@handle_errors
def export(
    checkpoint: Annotated[Path, typer.Option(help="Training checkpoint (.ckpt).")],
    version: Annotated[int | None, typer.Option(help="Bundle version (default: next).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint to an ONNX bundle, evaluate it and register it."""
    from heimdall import pipelines

    result = pipelines.export(context(), checkpoint, version)
    emit(_export_payload(result), as_json, lambda: Console().print(
        f"bundle {result.bundle} (ONNX max abs diff {result.max_abs_diff:.2e}), registered {result.registered}"
    ))



@handle_errors
def evaluate(
    model: Annotated[str, typer.Option(help="Bundle dir, models:/NAME@ALIAS or checkpoint.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    report: Annotated[Path | None, typer.Option(help="Directory for evaluation.json.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a model against baselines (and the CRLB on synthetic data)."""
    from heimdall import pipelines

    result = pipelines.evaluate(context(), model, dataset, split, report)
    emit(result, as_json, lambda: Console().print(summary_table(result, f"{dataset} / {split} ({result['n']} samples)")))



@handle_errors
def localize(
    model: Annotated[str, typer.Option(help="Bundle dir, models:/NAME@ALIAS or checkpoint.")],
    measurements: Annotated[Path | None, typer.Option(help="Measurement file (CSV/Parquet).")] = None,
    recordings: Annotated[Path | None, typer.Option(help="Directory of SigMF recordings.")] = None,
    as_json: JsonFlag = False,
    geojson: Annotated[bool, typer.Option("--geojson", help="Print a GeoJSON FeatureCollection.")] = False,
) -> None:
    """Locate the transmitter of every sample in a measurement file."""
    from heimdall import pipelines

    if (measurements is None) == (recordings is None):
        fail("give either --measurements FILE or --recordings DIR")
    result = pipelines.localize(context(), model, measurements, geojson=geojson, recordings=recordings)

    def render() -> None:
        table = Table("sample", "lat", "lon", "sigma major", "sigma minor", "orient.", "heard")
        for p in result["predictions"]:
            table.add_row(str(p["sample_id"]), f"{p['lat']:.5f}", f"{p['lon']:.5f}", fmt_m(p["sigma_major_m"]),
                          fmt_m(p["sigma_minor_m"]), f"{p['orientation_deg']:.0f}", str(p["n_receivers_heard"]))
        Console().print(table)

    emit(result, as_json or geojson, render)



@handle_errors
def models_list(as_json: JsonFlag = False) -> None:
    """List exported, registered model versions (from the `models` table)."""
    from heimdall.pipelines.serving import list_models

    rows = list_models(context())

    def render() -> None:
        table = Table("reference", "aliases", "dataset", "test median error", "created")
        for row in rows:
            median = row["metrics"].get("median_error_m")
            table.add_row(row["reference"], ", ".join(row["aliases"]), str(row["dataset"]),
                          fmt_m(median) if isinstance(median, (int, float)) else "-", str(row["created_at"])[:19])
        Console().print(table)

    emit({"models": rows}, as_json, render)



@handle_errors
def models_promote(
    name: str,
    version: int,
    alias: Annotated[str, typer.Option(help="Alias to point at this version.")] = "production",
    as_json: JsonFlag = False,
) -> None:
    """Point an alias (default `production`) at a registered version."""
    from heimdall.pipelines.serving import promote_model

    result = promote_model(context(), name, version, alias)
    emit(result, as_json, lambda: Console().print(f"models:/{name}@{alias} -> version {version}"))

