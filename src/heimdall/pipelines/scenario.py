"""Scenario jobs: fit a scenario to a measured dataset, validate a scenario on held-out rows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from heimdall.data.layout import SampleArrays
from heimdall.data.shards import DatasetReader
from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.pipelines.context import Context
from heimdall.sim.scenario import ScenarioConfig

__all__ = ["fit_scenario", "validate_scenario_file", "save_scenario", "scenario_path_beside", "static_field_path_beside"]


def save_scenario(scenario: ScenarioConfig, path: Path) -> Path:
    """Write `scenario` as YAML atomically (temp file beside it, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise NotFoundError(f"cannot save scenario: directory {str(path.parent)!r} does not exist")
    text = yaml.safe_dump(scenario.model_dump(), sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def scenario_path_beside(network_path: Path) -> Path:
    """`net.yaml` -> `net.scenario.yaml` (the fitted scenario written beside a network)."""
    network_path = Path(network_path)
    return network_path.with_name(f"{network_path.stem}.scenario.yaml")


def static_field_path_beside(scenario_path: Path) -> Path:
    """`s.yaml` -> `s.static-field.npz` (the kriged static shadowing of a fitted scenario)."""
    scenario_path = Path(scenario_path)
    return scenario_path.with_name(f"{scenario_path.stem}.static-field.npz")


def _measured(ctx: Context, dataset: str) -> DatasetReader:
    reader = DatasetReader(ctx.store, dataset)
    if reader.manifest.kind != "measured":
        raise InputError(f"dataset {dataset!r} is of kind {reader.manifest.kind!r}; a scenario is fitted to measured data")
    return reader


def _held_out(reader: DatasetReader) -> SampleArrays:
    everything = reader.load("all")
    held = everything.select(everything.split != 0)
    if len(held) == 0:
        raise DataError(f"dataset {reader.name!r} has no val or test rows to validate on")
    return held


def fit_scenario(
    ctx: Context,
    dataset: str,
    output: Path,
    report_dir: Path | None = None,
    tx_power_dbm: float = 30.0,
    rss_scale: str = "relative",
    static_field: bool = True,
) -> dict[str, Any]:
    """Fit a scenario on `dataset`'s training split, write it to `output` (YAML; with
    `static_field` also the kriged static shadowing beside it, `NAME.static-field.npz`)
    and, with `report_dir`, the fit report (fit.json and figures); return a summary."""
    from heimdall.evaluation.digital_twin import fit_scenario_to_samples

    if rss_scale not in ("relative", "dbm"):
        raise InputError(f"--rss-scale must be relative or dbm, got {rss_scale!r}")
    reader = _measured(ctx, dataset)
    fit = fit_scenario_to_samples(
        reader.load("train"), reader.network, reader.manifest.reference, tx_power_dbm, rss_scale, static_field=static_field
    )
    output = Path(output)
    scenario = fit.scenario
    if fit.static_map is not None:
        if not output.parent.is_dir():
            raise NotFoundError(f"cannot save scenario: directory {str(output.parent)!r} does not exist")
        field_path = fit.static_map.save(static_field_path_beside(output), reader.network.ids)
        # Relative to the scenario file, so the pair can move together.
        scenario = scenario.model_copy(update={"static_field_file": field_path.name})
    path = save_scenario(scenario, output)
    files: list[str] = []
    if report_dir is not None:
        from heimdall.evaluation.scenario_report import write_fit_report

        files = [str(p) for p in write_fit_report(fit, Path(report_dir))]
    report = fit.report
    return {
        "dataset": dataset,
        "scenario": str(path),
        "links": report["links"],
        "path_loss_exponent": report["path_loss_exponent"],
        "residual_rmse_db": report["residual_rmse_db"],
        "shadowing_sigma_db": fit.scenario.shadowing_sigma_db,
        "terrain_sigma_db": fit.scenario.terrain_sigma_db,
        "terrain_correlation_m": fit.scenario.terrain_correlation_m,
        "static_field_file": None if fit.static_map is None else str(static_field_path_beside(output)),
        "report_files": files,
    }


def validate_scenario_file(ctx: Context, dataset: str, scenario: ScenarioConfig) -> dict[str, Any]:
    """Per-link RSS error of `scenario` on `dataset`'s val + test rows, beside plain log-distance."""
    from heimdall.evaluation.digital_twin import validate_scenario

    reader = _measured(ctx, dataset)
    result = validate_scenario(reader.load("train"), _held_out(reader), scenario, reader.network, reader.manifest.reference)
    return {"dataset": dataset, **result}
