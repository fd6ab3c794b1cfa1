"""Scenario commands: fit a simulation scenario to measurements, validate it in dB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from heimdall.cli.common import JsonFlag, context, emit, handle_errors


@handle_errors
def scenario_fit(
    dataset: Annotated[str, typer.Argument(help="A measured dataset (known transmitter positions).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Scenario YAML to write.")],
    report: Annotated[Path | None, typer.Option(help="Directory for fit.json and the figures.")] = None,
    tx_power_dbm: Annotated[float, typer.Option(help="Nominal transmit power (dBm); fixes how offsets are written.")] = 30.0,
    rss_scale: Annotated[str, typer.Option(help="relative (dB per device, uncalibrated) or dbm.")] = "relative",
    static_field: Annotated[
        bool, typer.Option("--static-field/--no-static-field", help="Also krige the measured static shadowing (NAME.static-field.npz).")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Fit path loss, receiver offsets, shadowing and who-hears-what on the training split."""
    from heimdall.pipelines.scenario import fit_scenario

    result = fit_scenario(context(), dataset, output, report, tx_power_dbm, rss_scale, static_field)
    emit(result, as_json, lambda: Console().print(
        f"scenario {result['scenario']}: exponent {result['path_loss_exponent']:.2f}, residual RMSE "
        f"{result['residual_rmse_db']:.2f} dB over {result['links']} training links; shadowing "
        f"{result['shadowing_sigma_db']:.1f} dB, terrain {result['terrain_sigma_db']:.1f} dB over "
        f"{result['terrain_correlation_m']:.0f} m" + (f"; report in {report}" if report else "")
    ))


@handle_errors
def scenario_validate(
    dataset: Annotated[str, typer.Argument(help="A measured dataset.")],
    scenario: Annotated[Path, typer.Option(help="Scenario YAML/JSON (e.g. from `scenario fit`).")],
    as_json: JsonFlag = False,
) -> None:
    """Per-link RSS error (dB) on the held-out rows (val + test), beside plain log-distance."""
    from heimdall.pipelines.scenario import validate_scenario_file
    from heimdall.sim.scenario import load_scenario

    result = validate_scenario_file(context(), dataset, load_scenario(scenario))

    def render() -> None:
        fitted, plain = result["scenario"], result["plain_log_distance"]
        Console().print(
            f"{result['links']} held-out links: scenario RMSE {fitted['rmse_db']:.2f} dB (bias {fitted['bias_db']:+.2f}), "
            f"plain log-distance {plain['rmse_db']:.2f} dB (bias {plain['bias_db']:+.2f}); heard/not-heard "
            f"agreement {fitted['heard_agreement']:.3f} (plain: {plain['heard_agreement']:.3f})"
        )

    emit(result, as_json, render)
