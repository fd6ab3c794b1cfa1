"""Operations: demo, serve, worker, db upgrade, bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heimdall.cli.common import (
    JsonFlag,
    QuietFlag,
    console,
    context,
    emit,
    handle_errors,
    print_value,
    summary_table,
)
from heimdall.cli.progress import progress_bars
from heimdall.extras import require
from heimdall.settings import Settings


@handle_errors
def demo(
    samples: Annotated[int, typer.Option(help="Samples to simulate.")] = 20_000,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = 40,
    out: Annotated[Path | None, typer.Option(help="Report directory.")] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Generate, train, evaluate, export, register and localise, end to end."""
    from heimdall.pipelines.demo import demo as run_demo

    ctx = context()
    with progress_bars(quiet) as progress:
        result = run_demo(
            ctx, samples=samples, epochs=epochs, out=out, progress=progress,
            step=(lambda _m: None) if quiet else (lambda m: console.print(m, soft_wrap=True, highlight=False)),
        )

    def render() -> None:
        out_console = Console()
        out_console.print(summary_table(result.evaluation, f"Test split of {result.dataset}"))
        out_console.print(summary_table(result.fresh_evaluation, "Fresh dataset, another seed"))
        ratio = result.to_json()["model_to_oracle_median_ratio"]
        if ratio is not None:
            out_console.print(f"model / oracle median error: {ratio:.2f} (the oracle knows the simulated terrain; 1.0 is the physical limit)")
        print_value("model bundle", result.model, out_console)
        print_value(f"MLflow store (run {result.mlflow_run_id})", result.mlflow_store, out_console)
        print_value("report", result.report_dir, out_console)
        out_console.print(f"took {result.seconds:.0f} s")

    for warning in result.warnings:  # on stderr, also with --json and --quiet
        typer.echo(f"warning: {warning}", err=True)
    emit(result.to_json(), as_json, render)



@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8002,
) -> None:
    """Run the REST API (without a broker it also runs the jobs, in a background thread)."""
    from heimdall.service.server import serve as run_server

    shown = f"[{host}]" if ":" in host else host
    out = Console()
    out.print(f"Heimdall API on http://{shown}:{port} (Ctrl-C stops it); interactive docs:", highlight=False)
    out.print(f"  http://{shown}:{port}/docs", soft_wrap=True, highlight=False)
    run_server(host=host, port=port, settings=Settings())



@handle_errors
def ui(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
) -> None:
    """Run the MLflow UI over this HEIMDALL_HOME's runs and model registry (needs the ui extra)."""
    from heimdall.pipelines.mlflow_ui import mlflow_ui, run_mlflow_ui

    server = mlflow_ui(Settings(), host=host, port=port)
    # The values users copy on lines of their own (no wrapping inside them).
    typer.echo("MLflow UI over the runs and registered models of this HEIMDALL_HOME (Ctrl-C stops it):")
    typer.echo(server.url)
    typer.echo("tracking URI:")
    typer.echo(server.tracking_uri)
    raise typer.Exit(run_mlflow_ui(server))


@handle_errors
def worker(concurrency: Annotated[int, typer.Option(help="Jobs run at once.")] = 1) -> None:
    """Run a Celery worker taking jobs from HEIMDALL_BROKER_URL."""
    require("server", "heimdall worker")
    from heimdall.worker import main as run_worker

    run_worker(concurrency=concurrency)


@handle_errors
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the database migrations (the embedded SQLite also upgrades itself on first use)."""
    from heimdall.storage.database import Database
    from heimdall.storage.migrate import current_revision

    settings = Settings()
    database = Database(settings.resolved_database_url)
    database.create_schema()
    payload = {"database": database.safe_url, "revision": current_revision(database.url)}
    emit(payload, as_json, lambda: Console().print(f"{payload['database']} at revision {payload['revision']}"))



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
        conditions = result["conditions"]
        shown = ", ".join(f"{k} {v}" for k, v in conditions.items()) if isinstance(conditions, dict) else str(conditions)
        Console().print(f"conditions: {shown}", highlight=False)

    emit(result, as_json, render)


@handle_errors
def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Remove stale work and repair half-published models.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Find what killed commands left behind (staging, half-published model versions)."""
    import dataclasses

    from heimdall.pipelines.publishing import doctor as run_doctor

    report = run_doctor(context(), fix=fix)
    payload = dataclasses.asdict(report) | {"clean": report.clean}

    def render() -> None:
        out = Console()
        if report.clean:
            out.print("nothing left behind by killed commands")
            return
        if report.stale:
            verb = "removed" if report.fixed else "left by killed commands"
            out.print(f"{len(report.stale)} working director(ies) {verb}:")
            for path in report.stale:
                out.print(f"  {path}", soft_wrap=True)
            if not report.fixed:
                out.print("remove them with: heimdall doctor --fix")
        for name in report.resumable:
            out.print(f"interrupted generation of dataset {name}; finish it with:")
            out.print(f"  heimdall generate --name {name} ... --resume", soft_wrap=True)
        for model in report.models:
            then = "" if report.fixed else " (the next export, or heimdall doctor --fix, repairs it)"
            if model.unregistered:
                verb = "removed" if report.fixed else "in the store but never registered"
                out.print(f"model {model.name} versions {model.unregistered}: {verb}{then}")
            if model.unrecorded:
                verb = "recorded" if report.fixed else "registered but not in the models table"
                out.print(f"model {model.name} versions {model.unrecorded}: {verb}{then}")

    emit(payload, as_json, render)


# Services run until Ctrl-C; being interrupted is their normal end, not a job to resume.
for _service in (serve, ui, worker):
    _service.stopped_by_interrupt = True  # type: ignore[attr-defined]
