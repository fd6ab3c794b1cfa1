"""`heimdall tune`: hyperparameter search over a shared Optuna study."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from heimdall.cli.common import JsonFlag, context, emit, fail, handle_errors


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        fail(f"{flag} takes comma-separated integers, got {text!r}")
        raise  # unreachable: fail exits


@handle_errors
def tune(
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    trials: Annotated[int, typer.Option(help="Finished (completed or pruned) trials the study should hold.")] = 20,
    workers: Annotated[int, typer.Option(help="Local worker processes sharing the study.")] = 1,
    study: Annotated[str | None, typer.Option(help="Study name (default tune-DATASET); join it from any machine.")] = None,
    sampler: Annotated[str, typer.Option(help="tpe or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median or none.")] = "median",
    epochs: Annotated[int, typer.Option(help="Maximum epochs per trial.")] = 10,
    timeout_s: Annotated[float | None, typer.Option("--timeout-s", help="Start no trial after this many seconds.")] = None,
    hidden_dims: Annotated[str, typer.Option("--hidden-dims", help="Widths to try, comma-separated.")] = "32,64,128",
    layers: Annotated[str, typer.Option(help="Attention-block counts to try, comma-separated.")] = "1,2,3",
    accelerator: Annotated[str, typer.Option(help="cpu, gpu or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Random seed (training and sampler).")] = 0,
    heartbeat_s: Annotated[int, typer.Option("--heartbeat-s", help="Seconds between a running trial's heartbeats.")] = 10,
    grace_s: Annotated[
        int, typer.Option("--grace-s", help="Seconds without a heartbeat after which a trial is failed and re-queued.")
    ] = 30,
    export: Annotated[bool, typer.Option("--export/--no-export", help="Export and register the best trial.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Search hyperparameters (learning rate, batch size, dropout, weight decay, model size)."""
    from heimdall.pipelines.tune import TuneRequest, tune as run_tune

    if accelerator not in ("cpu", "gpu", "auto"):
        fail(f"--accelerator must be cpu, gpu or auto, got {accelerator!r}")
    request = TuneRequest(
        dataset=dataset, trials=trials, workers=workers, study=study, sampler=sampler,  # type: ignore[arg-type]
        pruner=pruner, epochs=epochs, timeout_s=timeout_s, seed=seed, accelerator=accelerator,  # type: ignore[arg-type]
        hidden_dims=_ints(hidden_dims, "--hidden-dims"), layer_counts=_ints(layers, "--layers"), export=export,
        heartbeat_interval_s=heartbeat_s, grace_period_s=grace_s,
    )
    request.validate()
    ctx = context()
    try:
        result = run_tune(ctx, request)
    finally:
        ctx.close()
    payload: dict[str, Any] = {
        "study": result.study,
        "mlflow_run_id": result.parent_run_id,
        "wall_s": round(result.wall_s, 1),
        "complete": result.count("COMPLETE"),
        "pruned": result.count("PRUNED"),
        "failed": result.count("FAIL"),
        "trials": [dataclasses.asdict(t) for t in result.trials],
        "best": dataclasses.asdict(result.best) if result.best else None,
        "model": result.export.registered if result.export else None,
        "bundle": result.export.bundle if result.export else None,
        "test_median_error_m": result.export.evaluation.get("median_error_m") if result.export else None,
    }
    emit(payload, as_json, lambda: _render(payload))


def _render(payload: dict[str, Any]) -> None:
    table = Table(title=f"study {payload['study']} ({payload['wall_s']} s)")
    for column in ("trial", "state", "val loss", "epochs", "params"):
        table.add_column(column, justify="right" if column != "params" else "left")
    best = payload["best"]["number"] if payload["best"] else None
    for trial in payload["trials"]:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items())
        loss = "-" if trial["val_loss"] is None else f"{trial['val_loss']:.4f}"
        marker = " *" if trial["number"] == best else ""
        table.add_row(f"{trial['number']}{marker}", trial["state"], loss, str(trial["epochs_run"]), params)
    console = Console()
    console.print(table)
    console.print(
        f"{payload['complete']} complete, {payload['pruned']} pruned, {payload['failed']} failed; "
        f"best trial {best} -> {payload['model'] or 'not exported'}"
        + (f", test median error {payload['test_median_error_m']:,.0f} m" if payload["test_median_error_m"] else "")
    )
