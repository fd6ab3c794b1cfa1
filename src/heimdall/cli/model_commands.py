"""Model commands: train, export, evaluate, localize, models list/promote/compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from heimdall.cli.common import (
    JsonFlag,
    QuietFlag,
    context,
    emit,
    fail,
    fmt_m,
    given_options,
    handle_errors,
    print_value,
    summary_table,
)
from heimdall.cli.progress import progress_bars, step


@handle_errors
def train(
    cli: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", help="Samples per optimiser step.")] = 256,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--learning_rate", help="Peak AdamW learning rate.")] = 2e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", "--weight_decay", help="AdamW weight decay.")] = 1e-4,
    dropout: Annotated[float, typer.Option(help="Dropout in the attention blocks, in [0, 1).")] = 0.0,
    hidden_dim: Annotated[int, typer.Option("--hidden-dim", "--hidden_dim", help="Width of the set model.")] = 128,
    num_layers: Annotated[int, typer.Option("--num-layers", "--num_layers", help="Attention blocks.")] = 2,
    validation_split: Annotated[
        float | None, typer.Option("--validation-split", "--validation_split", help="Re-split train+val with this val share.")
    ] = None,
    accelerator: Annotated[str, typer.Option(help="cpu, gpu or auto.")] = "cpu",
    devices: Annotated[int, typer.Option(help="Devices (processes) per node.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", "--num_nodes", help="Machines in a DDP run.")] = 1,
    strategy: Annotated[str, typer.Option(help="auto, ddp or ddp_spawn (DDP: gloo on CPU, NCCL on GPU).")] = "auto",
    precision: Annotated[str, typer.Option(help="32-true, bf16-mixed or 16-mixed (GPU only).")] = "32-true",
    num_workers: Annotated[int, typer.Option("--num-workers", "--num_workers", help="DataLoader worker processes.")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads per process (default: one per core).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint to resume or export.")] = None,
    resume_training: Annotated[bool, typer.Option("--resume-training", "--resume_training", help="Continue --checkpoint's run with its settings (only --epochs may change).")] = False,
    export_only: Annotated[bool, typer.Option("--export-only", "--export_only", help="Only export --checkpoint.")] = False,
    init_from: Annotated[str | None, typer.Option("--init-from", "--init_from", help="Checkpoint to fine-tune.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    spectrogram_encoder: Annotated[
        str | None, typer.Option("--spectrogram-encoder", help="nano, tiny, small, base or large (iq datasets).")
    ] = None,
    estimator: Annotated[
        str, typer.Option(help="auto (radio map for measured datasets, the network otherwise), net or radio-map.")
    ] = "auto",
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Train a model on a dataset (or resume, or export a checkpoint)."""
    from heimdall import pipelines

    if accelerator not in ("cpu", "gpu", "auto"):
        fail(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")
    ctx = context()
    if export_only:
        if checkpoint is None:
            fail("--export-only needs --checkpoint PATH")
        with progress_bars(quiet) as progress, step(progress, "export", "ONNX, parity, calibration, registry"):
            result = pipelines.export(ctx, checkpoint)
        emit(_export_payload(result), as_json, lambda: _print_export(result))
        return
    request = pipelines.TrainRequest(
        dataset=dataset, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, dropout=dropout, hidden_dim=hidden_dim, num_layers=num_layers,
        validation_split=validation_split, accelerator=accelerator, devices=devices,  # type: ignore[arg-type]
        num_nodes=num_nodes, strategy=strategy, precision=precision,  # type: ignore[arg-type]
        num_workers=num_workers, num_threads=threads, checkpoint=checkpoint, resume_training=resume_training,
        init_from=init_from, seed=seed, spectrogram_encoder=spectrogram_encoder, estimator=estimator,  # type: ignore[arg-type]
        given=given_options(cli, {"threads": "num_threads"}),
    )
    with progress_bars(quiet) as progress:
        result = pipelines.train(ctx, request, progress=progress)
    if not result.is_global_zero:
        return  # the extra processes of a DDP run; rank 0 reports
    payload = {
        "checkpoint": result.checkpoint,
        "best_checkpoint": result.best_checkpoint,
        "epochs_run": result.epochs_run,
        "mlflow_run_id": result.mlflow_run_id,
        "job_id": result.job_id,
    }
    def render() -> None:
        out = Console()
        out.print(f"trained {result.epochs_run} epoch(s) ({result.status}); MLflow run {result.mlflow_run_id}", highlight=False)
        print_value("best checkpoint (export it with heimdall export --checkpoint)", result.best_checkpoint, out)
        print_value("last checkpoint (continue with --checkpoint ... --resume-training)", result.checkpoint, out)

    emit(payload, as_json, render)



def _export_payload(result: Any) -> dict[str, Any]:
    return {
        "bundle": result.bundle,
        "onnx": result.onnx,
        "max_abs_diff": result.max_abs_diff,
        "registered": result.registered,
        "version": result.version,
        "semantic_version": result.semantic_version,
        "quantization": result.quantization,
    }


def _print_export(result: Any) -> None:
    out = Console()
    out.print(f"exported {result.semantic_version} (registry version {result.version})", highlight=False)
    out.print(
        f"ONNX parity: max difference {result.max_abs_diff:.2e} (positions in m, covariances relative)", highlight=False
    )
    print_value("bundle", result.bundle, out)
    print_value("registered as", result.registered, out)
    q = result.quantization
    if q:
        out.print(
            f"int8 graph: {q['int8_size_bytes']:,} bytes (float {q['float_size_bytes']:,} bytes); "
            f"max position difference {fmt_m(q['max_abs_position_diff_m'])}",
            highlight=False,
        )
        out.print(
            f"{q['split']} split, float -> int8: median {fmt_m(q['float_median_error_m'])} -> "
            f"{fmt_m(q['int8_median_error_m'])}, p90 {fmt_m(q['float_p90_error_m'])} -> {fmt_m(q['int8_p90_error_m'])}",
            highlight=False,
        )


@handle_errors
def export(
    checkpoint: Annotated[Path, typer.Option(help="Training checkpoint (.ckpt).")],
    version: Annotated[
        str | None, typer.Option(help="SemVer, e.g. v1.2.0, 1.0.0-test or 1.0.0+build.1 (default: next minor).")
    ] = None,
    quantize: Annotated[str | None, typer.Option(help="Also write a quantised graph: int8.")] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Export a checkpoint to an ONNX bundle, evaluate it and register it."""
    from heimdall import pipelines

    ctx = context()
    with progress_bars(quiet) as progress, step(progress, "export", "ONNX, parity check, calibration, test split, registry"):
        result = pipelines.export(ctx, checkpoint, version, quantize)
    emit(_export_payload(result), as_json, lambda: _print_export(result))



@handle_errors
def evaluate(
    model: Annotated[str, typer.Option(help="Bundle dir, models:/NAME@ALIAS or checkpoint.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    report: Annotated[Path | None, typer.Option(help="Directory for report.md, figures and predictions.geojson.")] = None,
    variant: Annotated[str, typer.Option(help="Graph of the bundle: float or int8.")] = "float",
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Score a model against baselines (and the CRLB on synthetic data)."""
    from heimdall import pipelines

    ctx = context()
    with progress_bars(quiet) as progress, step(progress, "evaluate", f"{dataset}/{split}: model, baselines, bounds"):
        result = pipelines.evaluate(ctx, model, dataset, split, report, variant)
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
        table = Table("sample", "lat (deg)", "lon (deg)", "sigma major", "sigma minor", "orient. (deg)", "heard (rx)", "warnings")
        for p in result["predictions"]:
            table.add_row(str(p["sample_id"]), f"{p['lat']:.5f}", f"{p['lon']:.5f}", fmt_m(p["sigma_major_m"]),
                          fmt_m(p["sigma_minor_m"]), f"{p['orientation_deg']:.0f}", str(p["n_receivers_heard"]),
                          ", ".join(p.get("warnings", [])) or "-")
        Console().print(table)

    emit(result, as_json or geojson, render)



@handle_errors
def models_list(as_json: JsonFlag = False) -> None:
    """List exported, registered model versions (from the `models` table)."""
    from heimdall.serving.models import list_models

    rows = list_models(context())

    def render() -> None:
        longest = max((len(str(row["dataset"])) for row in rows), default=7)
        table = Table("version", "aliases", Column("dataset", no_wrap=True, min_width=longest), "test median error",
                      "created (UTC)")
        # References are printed whole, on their own lines: a table column would cut them at 80 columns.
        for row in rows:
            median = row["metrics"].get("median_error_m")
            aliases = row["aliases"] + (["latest"] if row["latest"] else [])
            table.add_row(row["semantic_version"] or "-", ", ".join(aliases), str(row["dataset"]),
                          fmt_m(median) if isinstance(median, (int, float)) else "-", str(row["created_at"])[:16])
        out = Console()
        out.print(table)
        for row in rows:
            out.print(f"{row['semantic_version'] or '-'}: {row['reference']}", soft_wrap=True, highlight=False)

    emit({"models": rows}, as_json, render)



@handle_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Registry version number.")],
    alias: Annotated[str, typer.Option(help="Alias to point at this version: production, staging, ...")] = "production",
    as_json: JsonFlag = False,
) -> None:
    """Point an alias (default `production`) at a registered version."""
    from heimdall.serving.models import promote_model

    result = promote_model(context(), name, version, alias)
    emit(result, as_json, lambda: Console().print(f"models:/{name}@{alias} -> version {version}"))



@handle_errors
def models_compare(
    model_a: Annotated[str, typer.Argument(help="Model A: bundle dir, models:/NAME@ALIAS or models:/NAME/VERSION.")],
    model_b: Annotated[str, typer.Argument(help="Model B, same forms.")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    variant_a: Annotated[str, typer.Option("--variant-a", help="Graph of A: float or int8.")] = "float",
    variant_b: Annotated[str, typer.Option("--variant-b", help="Graph of B: float or int8.")] = "float",
    as_json: JsonFlag = False,
) -> None:
    """Score two model versions on the same samples, alone and paired."""
    from heimdall.pipelines.models import compare

    result = compare(context(), model_a, model_b, dataset, split, variant_a, variant_b)

    def render() -> None:
        table = Table("model", "n", "median", "p90", "RMSE", "1-sigma cov.", "2-sigma cov.")
        for side in ("a", "b"):
            r = result[side]
            table.add_row(r["model"], str(r["n"]), fmt_m(r["median_error_m"]), fmt_m(r["p90_error_m"]),
                          fmt_m(r["rmse_m"]), f"{r['coverage_1sigma']:.3f}", f"{r['coverage_2sigma']:.3f}")
        paired = result["paired"]
        console = Console()
        console.print(table)
        console.print(
            f"paired over {paired['n']} samples: median (A - B) error {fmt_m(paired['median_error_difference_m'])}; "
            f"A better on {paired['share_a_better']:.1%}, B better on {paired['share_b_better']:.1%}"
        )

    emit(result, as_json, render)
