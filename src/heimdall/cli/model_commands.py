"""Model commands: train, export, evaluate, localize, models list/promote/compare."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from heimdall.cli.common import (
    JsonFlag,
    QuietFlag,
    context,
    distance_table,
    emit,
    fail,
    fit_table,
    fit_table_notes,
    fmt_axes,
    fmt_m,
    given_options,
    handle_errors,
    print_value,
    summary_table,
)
from heimdall.cli.progress import progress_bars, step
from heimdall.requests import TrainRequest, option_name


#: `heimdall train`'s options are views of `TrainRequest`: defaults and help come from it,
#: and tests/test_requests.py fails when an option is missing or extra.
_TRAIN = TrainRequest()


def _train_option(name: str) -> Any:
    """The typer option of TrainRequest field `name`: its flag (and the seeds' underscore
    spelling of it), its help."""
    field = next(f for f in dataclasses.fields(TrainRequest) if f.name == name)
    flag = option_name(field)
    spelled = (flag, "--" + flag[2:].replace("-", "_")) if "-" in flag[2:] else (flag,)
    return typer.Option(*spelled, help=field.metadata["help"])


@handle_errors
def train(
    cli: typer.Context,
    dataset: Annotated[str | None, _train_option("dataset")] = _TRAIN.dataset,
    epochs: Annotated[int, _train_option("epochs")] = _TRAIN.epochs,
    batch_size: Annotated[int, _train_option("batch_size")] = _TRAIN.batch_size,
    learning_rate: Annotated[float, _train_option("learning_rate")] = _TRAIN.learning_rate,
    weight_decay: Annotated[float, _train_option("weight_decay")] = _TRAIN.weight_decay,
    dropout: Annotated[float, _train_option("dropout")] = _TRAIN.dropout,
    hidden_dim: Annotated[int, _train_option("hidden_dim")] = _TRAIN.hidden_dim,
    num_layers: Annotated[int, _train_option("num_layers")] = _TRAIN.num_layers,
    validation_split: Annotated[float | None, _train_option("validation_split")] = _TRAIN.validation_split,
    accelerator: Annotated[str, _train_option("accelerator")] = _TRAIN.accelerator,
    devices: Annotated[int, _train_option("devices")] = _TRAIN.devices,
    num_nodes: Annotated[int, _train_option("num_nodes")] = _TRAIN.num_nodes,
    strategy: Annotated[str, _train_option("strategy")] = _TRAIN.strategy,
    precision: Annotated[str, _train_option("precision")] = _TRAIN.precision,
    num_workers: Annotated[int, _train_option("num_workers")] = _TRAIN.num_workers,
    threads: Annotated[int | None, _train_option("num_threads")] = _TRAIN.num_threads,
    checkpoint: Annotated[Path | None, _train_option("checkpoint")] = _TRAIN.checkpoint,
    resume_training: Annotated[bool, _train_option("resume_training")] = _TRAIN.resume_training,
    export_only: Annotated[bool, typer.Option("--export-only", "--export_only", help="Only export --checkpoint.")] = False,
    init_from: Annotated[str | None, _train_option("init_from")] = _TRAIN.init_from,
    seed: Annotated[int, _train_option("seed")] = _TRAIN.seed,
    spectrogram_encoder: Annotated[str | None, _train_option("spectrogram_encoder")] = _TRAIN.spectrogram_encoder,
    estimator: Annotated[str, _train_option("estimator")] = _TRAIN.estimator,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Train a model (on measured data a radio map, fitted in one step), resume one or export a checkpoint."""
    from heimdall import pipelines

    ctx = context()
    if export_only:
        if checkpoint is None:
            fail("--export-only needs --checkpoint PATH")
        with progress_bars(quiet) as progress, step(progress, "export", "ONNX, parity, calibration, registry"):
            result = pipelines.export(ctx, checkpoint)
        emit(_export_payload(result), as_json, lambda: _print_export(result))
        return
    request = TrainRequest(
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
        "model_kind": result.model_kind,
    }
    if result.fit_summary:
        payload["fit"] = result.fit_summary

    def render() -> None:
        out = Console()
        if result.model_kind == "radio_map":
            # Fitted in one step: no epochs, nothing to resume; what the cross-fitting measured instead.
            seconds = result.fit_summary.get("fit_seconds", float("nan"))
            out.print(f"fitted a radio map in {seconds:.1f} s; MLflow run {result.mlflow_run_id}", highlight=False)
            samples = result.fit_summary.get("train_samples", 0.0)
            out.print(f"cross-fitted: each of {samples:,.0f} transmissions answered by a map fitted without it",
                      highlight=False)
            out.print(fit_table(result.fit_summary))
            for note in fit_table_notes(result.fit_summary):
                out.print(note, highlight=False)
            print_value("checkpoint (export it with heimdall export --checkpoint)", result.checkpoint, out)
            return
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
    evaluation = result.evaluation or {}
    if "median_error_m" in evaluation:
        # The test split is measured before any refit on every labelled sample: unseen. Without
        # one, export measures the validation split, which training saw.
        split = evaluation.get("split", "test")
        title = f"{'held-out ' if split == 'test' else ''}{split} split, {evaluation.get('n', 0):,} samples"
        out.print(summary_table(evaluation, title))
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
    def show() -> None:
        console = Console()
        console.print(summary_table(result, f"{dataset} / {split} ({result['n']} samples)"))
        by_distance = distance_table(result)
        if by_distance is not None:
            console.print(by_distance)

    emit(result, as_json, show)



@handle_errors
def localize(
    model: Annotated[str, typer.Option(help="Bundle dir, models:/NAME@ALIAS or checkpoint.")],
    measurements: Annotated[Path | None, typer.Option(help="Measurement file (CSV/Parquet).")] = None,
    recordings: Annotated[Path | None, typer.Option(help="Directory of SigMF recordings.")] = None,
    receivers: Annotated[Path | None, typer.Option(
        help="Receivers' positions: --measurements is then a wide table (one column of dBm per receiver).",
    )] = None,
    as_json: JsonFlag = False,
    geojson: Annotated[bool, typer.Option("--geojson", help="Print a GeoJSON FeatureCollection.")] = False,
    drift_correction: Annotated[bool, typer.Option(
        "--drift-correction/--no-drift-correction",
        help="Radio maps: re-estimate each receiver's offset drift from the whole file and localise again.",
    )] = True,
    tracks: Annotated[bool, typer.Option(
        "--tracks/--no-tracks",
        help="Radio maps that keep a smoother: timestamped transmissions are smoothed along their track "
             "(--no-tracks: each alone, e.g. for a file mixing several moving transmitters).",
    )] = True,
) -> None:
    """Locate the transmitter of every sample in a measurement file."""
    from heimdall import pipelines

    if (measurements is None) == (recordings is None):
        fail("give either --measurements FILE or --recordings DIR")
    result = pipelines.localize(context(), model, measurements, geojson=geojson, recordings=recordings,
                                drift_correction=drift_correction, receivers=receivers, tracks=tracks)

    def render() -> None:
        # Semi-axes as "major x minor" in one unit: the 1-sigma and the 95% ellipse share the
        # orientation. Warnings go under the table, where a long name cannot squeeze the numbers.
        table = Table(*(Column(name, no_wrap=True) for name in ("sample", "lat (deg)", "lon (deg)")),
                      "1σ", "95%", "axis (deg)", "heard", pad_edge=False)
        flagged = []
        for p in result["predictions"]:
            table.add_row(str(p["sample_id"]), f"{p['lat']:.5f}", f"{p['lon']:.5f}",
                          fmt_axes(p["sigma_major_m"], p["sigma_minor_m"]),
                          fmt_axes(p["ellipse95_major_m"], p["ellipse95_minor_m"]),
                          f"{p['orientation_deg']:.0f}", str(p["n_receivers_heard"]))
            if p.get("warnings"):
                flagged.append(f"sample {p['sample_id']}: {', '.join(p['warnings'])}")
        out = Console()
        out.print(table)
        out.print("semi-axes major x minor; axis: bearing of the major axis, clockwise from north", highlight=False)
        for line in flagged:
            out.print(line, highlight=False)

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
