"""Operations: demo, serve, worker, db upgrade, bench."""

from __future__ import annotations

import json
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
    summary_table,
)
from heimdall.cli.progress import progress_bars
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
            step=(lambda _m: None) if quiet else console.print,
        )

    def render() -> None:
        out_console = Console()
        out_console.print(summary_table(result.evaluation, f"Test split of {result.dataset}"))
        out_console.print(summary_table(result.fresh_evaluation, "Fresh dataset, another seed"))
        ratio = result.to_json()["model_to_oracle_median_ratio"]
        if ratio is not None:
            out_console.print(f"model / oracle median error: {ratio:.2f} (the oracle knows the simulated terrain; 1.0 is the physical limit)")
        out_console.print(f"model bundle:  {result.model}")
        out_console.print(f"MLflow store:  {result.mlflow_store} (run {result.mlflow_run_id})")
        out_console.print(f"report:        {result.report_dir}")
        out_console.print(f"took {result.seconds:.0f} s")

    emit(result.to_json(), as_json, render)



@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8002,
) -> None:
    """Run the REST API (without a broker it also runs the jobs, in a background thread)."""
    from heimdall.service.server import serve as run_server

    run_server(host=host, port=port, settings=Settings())



@handle_errors
def worker(concurrency: Annotated[int, typer.Option(help="Jobs run at once.")] = 1) -> None:
    """Run a Celery worker taking jobs from HEIMDALL_BROKER_URL."""
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
        Console().print(f"conditions: {json.dumps(result['conditions'])}")

    emit(result, as_json, render)
