"""The `heimdall` command line: parse, call one pipeline, render.

Every command exits non-zero with one `error: ...` line on bad input; `--json` prints one
JSON object on the last line of stdout.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from heimdall.errors import HeimdallError
from heimdall.settings import Settings

app = typer.Typer(
    name="heimdall",
    help="Locate a radio transmitter from what a network of receivers heard of it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="List, inspect and export datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
network_app = typer.Typer(help="Receiver networks.", no_args_is_help=True)
app.add_typer(network_app, name="network")

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line of stdout.")]


def _context() -> Any:
    from heimdall.logging_setup import configure_logging
    from heimdall.pipelines import open_context

    settings = Settings()
    configure_logging(settings.log_level)
    return open_context(settings)


def _fail(message: str, code: int = 1) -> None:
    # One line, whatever the message held.
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn Heimdall's errors (and validation errors) into one line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        try:
            return func(*args, **kwargs)
        except HeimdallError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            _fail(f"invalid value for {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        except KeyboardInterrupt:
            _fail("interrupted", code=130)

    return wrapper  # type: ignore[return-value]


def _emit(payload: Any, as_json: bool, render: Callable[[], None] | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    elif render is not None:
        render()
    else:
        Console().print_json(json.dumps(payload, default=str))


def _fmt_m(value: Any) -> str:
    return f"{value / 1000:,.1f} km" if value >= 10_000 else f"{value:,.0f} m"


def _summary_table(evaluation: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("method", no_wrap=True)
    for column in ("median", "p90", "RMSE", "cov. 1σ", "cov. 2σ"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row(
        "model",
        _fmt_m(evaluation["median_error_m"]),
        _fmt_m(evaluation["p90_error_m"]),
        _fmt_m(evaluation["rmse_m"]),
        f"{evaluation['coverage_1sigma']:.3f}",
        f"{evaluation['coverage_2sigma']:.3f}",
    )
    for name, summary in evaluation.get("baselines", {}).items():
        table.add_row(name, _fmt_m(summary["median_error_m"]), _fmt_m(summary["p90_error_m"]), _fmt_m(summary["rmse_m"]), "-", "-")
    if "crlb_rmse_m" in evaluation:
        table.add_row("CRLB (bound)", _fmt_m(evaluation["crlb_median_m"]), "-", _fmt_m(evaluation["crlb_rmse_m"]), "-", "-")
    return table


@app.command()
@handle_errors
def demo(
    samples: Annotated[int, typer.Option(help="Samples to simulate.")] = 20_000,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = 40,
    out: Annotated[Path | None, typer.Option(help="Report directory.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate, train, evaluate, export, register and localise, end to end."""
    from heimdall.pipelines.demo import demo as run_demo

    ctx = _context()
    result = run_demo(ctx, samples=samples, epochs=epochs, out=out, step=lambda m: console.print(m))

    def render() -> None:
        out_console = Console()
        out_console.print(_summary_table(result.evaluation, f"Test split of {result.dataset}"))
        out_console.print(_summary_table(result.fresh_evaluation, "Fresh dataset, another seed"))
        out_console.print(f"model bundle:  {result.model}")
        out_console.print(f"MLflow store:  {result.mlflow_store} (run {result.mlflow_run_id})")
        out_console.print(f"report:        {result.report_dir}")
        out_console.print(f"took {result.seconds:.0f} s")

    _emit(result.to_json(), as_json, render)


@app.command()
@handle_errors
def generate(
    name: Annotated[str, typer.Option(help="Dataset name.")],
    samples: Annotated[int, typer.Option(help="Number of samples.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    network: Annotated[Path | None, typer.Option(help="Receiver network file (YAML/JSON).")] = None,
    kind: Annotated[str, typer.Option(help="features or iq.")] = "features",
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    split_mode: Annotated[str, typer.Option("--split-mode", "--split_mode", help="random or grid.")] = "random",
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="YAML/JSON of simulation settings (ScenarioConfig).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate a dataset for a receiver network."""
    from heimdall.pipelines import generate as run_generate
    from heimdall.sim.scenario import load_scenario

    if kind not in ("features", "iq"):
        _fail(f"--kind must be features or iq, got {kind!r}")
    if split_mode not in ("random", "grid"):
        _fail(f"--split-mode must be random or grid, got {split_mode!r}")
    result = run_generate(
        _context(), name, samples, seed=seed, network_path=network, kind=kind, workers=workers,
        split_mode=split_mode, description=description,  # type: ignore[arg-type]
        scenario=load_scenario(scenario) if scenario else None,
    )
    payload = {
        "dataset": result.dataset,
        "samples": result.samples,
        "samples_per_s": round(result.samples_per_s, 1),
        "acceptance_rate": round(result.acceptance_rate, 4),
        "splits": result.splits,
    }
    _emit(payload, as_json, lambda: Console().print(
        f"dataset {result.dataset}: {result.samples} samples ({result.samples_per_s:,.0f}/s), "
        f"acceptance {result.acceptance_rate:.3f}, splits {result.splits}"
    ))


@app.command("import-measurements")
@handle_errors
def import_measurements(
    file: Annotated[Path, typer.Argument(help="Measurement file: long CSV/Parquet or POWDER JSON.")],
    name: Annotated[str, typer.Option(help="Dataset name.")],
    file_format: Annotated[str, typer.Option("--format", help="long or powder-json.")] = "long",
    split_mode: Annotated[str, typer.Option("--split-mode", "--split_mode", help="random, grid or time.")] = "grid",
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Import real measurements of known transmitters as a dataset of kind `measured`."""
    from heimdall import pipelines

    if split_mode not in ("random", "grid", "time"):
        _fail(f"--split-mode must be random, grid or time, got {split_mode!r}")
    result = pipelines.import_measurements(_context(), file, name, file_format, split_mode, seed)  # type: ignore[arg-type]
    payload = {"dataset": result.dataset, "samples": result.samples, "rows_read": result.rows_read,
               "rows_dropped": result.rows_dropped, "splits": result.splits}
    _emit(payload, as_json, lambda: Console().print(
        f"dataset {result.dataset}: {result.samples} samples from {result.rows_read} rows "
        f"(dropped {sum(result.rows_dropped.values())}: {result.rows_dropped or 'none'}), splits {result.splits}"
    ))


@network_app.command("from-measurements")
@handle_errors
def network_from_measurements(
    dataset: Annotated[str, typer.Argument(help="A measured dataset.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="YAML or JSON file to write.")],
    as_json: JsonFlag = False,
) -> None:
    """Write a dataset's receiver network (fixed receivers, frequency) for `generate --network`."""
    from heimdall import pipelines

    result = pipelines.network_from_dataset(_context(), dataset, output)
    _emit(result, as_json, lambda: Console().print(f"wrote {result['receivers']} receivers to {result['network']}"))


@datasets_app.command("list")
@handle_errors
def datasets_list(as_json: JsonFlag = False) -> None:
    """List datasets."""
    from heimdall.pipelines import datasets_list as run_list

    rows = run_list(_context())

    def render() -> None:
        table = Table("name", "kind", "samples", "network", "splits", "created")
        for row in rows:
            table.add_row(row["name"], row["kind"], str(row["samples"]), row["network"], json.dumps(row["splits"]), row["created_at"][:19])
        Console().print(table)

    _emit({"datasets": rows}, as_json, render)


@datasets_app.command("show")
@handle_errors
def datasets_show(name: str, as_json: JsonFlag = False) -> None:
    """Show one dataset's manifest."""
    from heimdall.pipelines import dataset_show

    _emit(dataset_show(_context(), name), as_json)


@datasets_app.command("export")
@handle_errors
def datasets_export(
    name: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV/Parquet file, or a directory for SigMF.")],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    file_format: Annotated[str, typer.Option("--format", help="long (CSV/Parquet) or sigmf (iq datasets).")] = "long",
    limit: Annotated[int, typer.Option(help="SigMF: at most this many samples.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Write a split in the long measurement format or as SigMF recordings, truth included."""
    from heimdall.pipelines import dataset_export

    result = dataset_export(_context(), name, split, output, file_format, limit)
    _emit(result, as_json, lambda: Console().print(
        f"wrote {result.get('rows', result.get('recordings'))} rows/recordings ({result['samples']} samples) to {output}"
    ))


@app.command()
@handle_errors
def train(
    dataset: Annotated[str | None, typer.Option(help="Dataset name.")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size")] = 256,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--learning_rate")] = 2e-3,
    validation_split: Annotated[float | None, typer.Option("--validation-split", "--validation_split")] = None,
    accelerator: Annotated[str, typer.Option(help="cpu, gpu or auto.")] = "cpu",
    devices: Annotated[int, typer.Option(help="Number of devices.")] = 1,
    num_workers: Annotated[int, typer.Option("--num-workers", "--num_workers")] = 0,
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
        _fail(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")
    ctx = _context()
    if export_only:
        if checkpoint is None:
            _fail("--export-only needs --checkpoint PATH")
        result = pipelines.export(ctx, checkpoint)
        _emit(_export_payload(result), as_json)
        return
    request = pipelines.TrainRequest(
        dataset=dataset, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        validation_split=validation_split, accelerator=accelerator, devices=devices,  # type: ignore[arg-type]
        num_workers=num_workers, checkpoint=checkpoint, resume_training=resume_training,
        init_from=init_from, seed=seed, progress_bar=progress, spectrogram_encoder=spectrogram_encoder,
    )
    result = pipelines.train(ctx, request)
    payload = {
        "checkpoint": result.checkpoint,
        "best_checkpoint": result.best_checkpoint,
        "epochs_run": result.epochs_run,
        "mlflow_run_id": result.mlflow_run_id,
        "job_id": result.job_id,
    }
    _emit(payload, as_json, lambda: Console().print(
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


@app.command()
@handle_errors
def export(
    checkpoint: Annotated[Path, typer.Option(help="Training checkpoint (.ckpt).")],
    version: Annotated[int | None, typer.Option(help="Bundle version (default: next).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint to an ONNX bundle, evaluate it and register it."""
    from heimdall import pipelines

    result = pipelines.export(_context(), checkpoint, version)
    _emit(_export_payload(result), as_json, lambda: Console().print(
        f"bundle {result.bundle} (ONNX max abs diff {result.max_abs_diff:.2e}), registered {result.registered}"
    ))


@app.command()
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

    result = pipelines.evaluate(_context(), model, dataset, split, report)
    _emit(result, as_json, lambda: Console().print(_summary_table(result, f"{dataset} / {split} ({result['n']} samples)")))


@app.command()
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
        _fail("give either --measurements FILE or --recordings DIR")
    result = pipelines.localize(_context(), model, measurements, geojson=geojson, recordings=recordings)

    def render() -> None:
        table = Table("sample", "lat", "lon", "sigma major", "sigma minor", "orient.", "heard")
        for p in result["predictions"]:
            table.add_row(str(p["sample_id"]), f"{p['lat']:.5f}", f"{p['lon']:.5f}", _fmt_m(p["sigma_major_m"]),
                          _fmt_m(p["sigma_minor_m"]), f"{p['orientation_deg']:.0f}", str(p["n_receivers_heard"]))
        Console().print(table)

    _emit(result, as_json or geojson, render)


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8002,
) -> None:
    """Run the REST API (without a broker it also runs the jobs, in a background thread)."""
    from heimdall.service.server import serve as run_server

    run_server(host=host, port=port, settings=Settings())


@app.command()
@handle_errors
def worker(concurrency: Annotated[int, typer.Option(help="Jobs run at once.")] = 1) -> None:
    """Run a Celery worker taking jobs from HEIMDALL_BROKER_URL."""
    from heimdall.worker import main as run_worker

    run_worker(concurrency=concurrency)


models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
@handle_errors
def models_list(as_json: JsonFlag = False) -> None:
    """List exported, registered model versions (from the `models` table)."""
    from heimdall.pipelines.serving import list_models

    rows = list_models(_context())

    def render() -> None:
        table = Table("reference", "aliases", "dataset", "test median error", "created")
        for row in rows:
            median = row["metrics"].get("median_error_m")
            table.add_row(row["reference"], ", ".join(row["aliases"]), str(row["dataset"]),
                          _fmt_m(median) if isinstance(median, (int, float)) else "-", str(row["created_at"])[:19])
        Console().print(table)

    _emit({"models": rows}, as_json, render)


@models_app.command("promote")
@handle_errors
def models_promote(
    name: str,
    version: int,
    alias: Annotated[str, typer.Option(help="Alias to point at this version.")] = "production",
    as_json: JsonFlag = False,
) -> None:
    """Point an alias (default `production`) at a registered version."""
    from heimdall.pipelines.serving import promote_model

    result = promote_model(_context(), name, version, alias)
    _emit(result, as_json, lambda: Console().print(f"models:/{name}@{alias} -> version {version}"))


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handle_errors
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the database migrations (the embedded SQLite also upgrades itself on first use)."""
    from heimdall.storage.database import Database
    from heimdall.storage.migrate import current_revision

    settings = Settings()
    database = Database(settings.resolved_database_url)
    database.create_schema()
    payload = {"database": database.safe_url, "revision": current_revision(database.url)}
    _emit(payload, as_json, lambda: Console().print(f"{payload['database']} at revision {payload['revision']}"))


@app.command()
@handle_errors
def bench(
    quick: Annotated[bool, typer.Option(help="Smaller sizes, for a smoke run.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Measure generation, training, export and inference speed, and peak memory."""
    from heimdall.logging_setup import configure_logging
    from heimdall.pipelines.bench import run_bench

    configure_logging(Settings().log_level)
    result = run_bench(quick=quick)

    def render() -> None:
        table = Table("figure", "value")
        for key, value in result.items():
            if key != "conditions":
                table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
        Console().print(table)
        Console().print(f"conditions: {json.dumps(result['conditions'])}")

    _emit(result, as_json, render)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
