"""Dataset commands: generate, import, network, datasets list/show/export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from heimdall.cli.common import (
    JsonFlag,
    QuietFlag,
    context,
    emit,
    fail,
    fmt_splits,
    handle_errors,
    print_value,
)
from heimdall.cli.progress import progress_bars, step


@handle_errors
def generate(
    name: Annotated[str, typer.Option(help="Dataset name.")],
    samples: Annotated[int, typer.Option(help="Number of samples.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    network: Annotated[Path | None, typer.Option(help="Receiver network file (YAML/JSON).")] = None,
    kind: Annotated[str, typer.Option(help="features or iq.")] = "features",
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes; the bytes do not depend on it. For --kind iq one per core pays for its "
            "few seconds of start-up on large datasets (2 cores: about twice one process)."
        ),
    ] = 1,
    split_mode: Annotated[str, typer.Option("--split-mode", "--split_mode", help="random or grid.")] = "random",
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="YAML/JSON of simulation settings (ScenarioConfig).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run of the same command.")] = False,
    audio_dir: Annotated[Path | None, typer.Option("--audio-dir", help="Kind iq: WAV files for the voice audio.")] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Simulate a dataset for a receiver network (interrupted? rerun it with --resume)."""
    from heimdall.pipelines import generate as run_generate
    from heimdall.sim.scenario import load_scenario

    ctx = context()
    with progress_bars(quiet) as progress:
        result = run_generate(
            ctx, name, samples, seed=seed, network_path=network, kind=kind, workers=workers,
            split_mode=split_mode, description=description,  # type: ignore[arg-type]
            scenario=load_scenario(scenario) if scenario else None, audio_dir=audio_dir, progress=progress,
            resume=resume,
        )
    payload = {
        "dataset": result.dataset,
        "samples": result.samples,
        "samples_per_s": round(result.samples_per_s, 1),
        "acceptance_rate": round(result.acceptance_rate, 4),
        "splits": result.splits,
    }
    emit(payload, as_json, lambda: Console().print(
        f"dataset {result.dataset}: {result.samples} samples ({result.samples_per_s:,.0f} samples/s), "
        f"acceptance {result.acceptance_rate:.1%}\n  {fmt_splits(result.splits)}", highlight=False
    ))


generate.resume_flag = "--resume"  # type: ignore[attr-defined]


@handle_errors
def import_measurements(
    file: Annotated[Path, typer.Argument(help="Measurement file: long CSV/Parquet or POWDER JSON.")],
    name: Annotated[str, typer.Option(help="Dataset name.")],
    file_format: Annotated[str, typer.Option("--format", help="long or powder-json.")] = "long",
    receivers: Annotated[
        Path | None,
        typer.Option(help="Receivers' positions (receiver_id, rx_lat, rx_lon, rx_alt_m?): FILE is then a wide "
                          "table, one row per transmission and one column of dBm per receiver."),
    ] = None,
    split_mode: Annotated[str, typer.Option("--split-mode", "--split_mode", help="random, grid or time.")] = "grid",
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    frequency_hz: Annotated[
        float | None,
        typer.Option("--frequency-hz", "--frequency_hz", help="Carrier (Hz) when the file has no frequency_hz column."),
    ] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Import real measurements of known transmitters as a dataset of kind `measured`."""
    from heimdall import pipelines

    if split_mode not in ("random", "grid", "time"):
        fail(f"--split-mode must be random, grid or time, got {split_mode!r}")
    ctx = context()
    with progress_bars(quiet) as progress, step(progress, "import", f"reading {file.name}"):
        result = pipelines.import_measurements(
            ctx, file, name, file_format, split_mode, seed, frequency_hz, receivers  # type: ignore[arg-type]
        )
    payload = {"dataset": result.dataset, "samples": result.samples, "rows_read": result.rows_read,
               "rows_dropped": result.rows_dropped, "splits": result.splits,
               "readings_not_received": result.readings_not_received}
    dropped = ", ".join(f"{count} {why}" for why, count in result.rows_dropped.items()) or "none"
    markers = (f"\n  {result.readings_not_received} readings below -174 dBm read as heard nothing"
               if result.readings_not_received else "")
    emit(payload, as_json, lambda: Console().print(
        f"dataset {result.dataset}: {result.samples} samples from {result.rows_read} rows\n"
        f"  rows dropped: {dropped}{markers}\n  {fmt_splits(result.splits)}", highlight=False
    ))



@handle_errors
def network_from_measurements(
    dataset: Annotated[str, typer.Argument(help="A measured dataset.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="YAML or JSON file to write.")],
    as_json: JsonFlag = False,
) -> None:
    """Write a dataset's receiver network for `generate --network`, and the scenario fitted to it beside."""
    from heimdall import pipelines

    result = pipelines.network_from_dataset(context(), dataset, output)

    def render() -> None:
        Console().print(f"wrote {result['receivers']} receivers to {result['network']}")
        if result["scenario"]:
            Console().print(
                f"wrote the scenario fitted to its training split to {result['scenario']} "
                f"(use: heimdall generate --network {result['network']} --scenario {result['scenario']})"
            )
        elif "scenario_not_fitted" in result:
            Console().print(f"no scenario fitted: {result['scenario_not_fitted']}")

    emit(result, as_json, render)



@handle_errors
def datasets_list(as_json: JsonFlag = False) -> None:
    """List datasets."""
    from heimdall.pipelines import datasets_list as run_list

    rows = run_list(context())

    def render() -> None:
        # The network is in --json; at 80 columns the table keeps what tells datasets apart.
        table = Table("kind", "samples", "train/val/test", "created (UTC)")
        # Names are what users copy: a column of their own width, never cut.
        table.columns.insert(0, Column("name", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=4)))
        for row in rows:
            splits = "/".join(str(row["splits"].get(s, 0)) for s in ("train", "val", "test"))
            table.add_row(row["name"], row["kind"], str(row["samples"]), splits, row["created_at"][:16].replace("T", " "))
        Console().print(table)

    emit({"datasets": rows}, as_json, render)



@handle_errors
def datasets_show(name: Annotated[str, typer.Argument(help="Dataset name.")], as_json: JsonFlag = False) -> None:
    """Show one dataset's manifest."""
    from heimdall.pipelines import dataset_show

    info = dataset_show(context(), name)

    def render() -> None:
        out = Console()
        shown = info.get("display_name")
        out.print(f"dataset {info['name']}" + (f" ({shown})" if shown else "") + f", kind {info['kind']}", highlight=False)
        out.print(f"{info['num_samples']} samples, {info['num_receivers']} receivers, "
                  f"{info['frequency_hz'] / 1e6:g} MHz", highlight=False)
        out.print(f"  {fmt_splits(info['split_counts'])}", highlight=False)
        ref = info["reference_point"]
        out.print(f"reference point {ref['lat_deg']:.5f} deg, {ref['lon_deg']:.5f} deg; seed {info.get('seed')}; "
                  f"split mode {info['split_mode']}", highlight=False)
        if info.get("description"):
            out.print(f"description: {info['description']}", highlight=False)
        print_value("stored at", info["storage_uri"], out)
        out.print("(--json prints the whole manifest)", highlight=False)

    emit(info, as_json, render)



@handle_errors
def datasets_export(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV/Parquet file, or a directory for SigMF.")],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    file_format: Annotated[str, typer.Option("--format", help="long (CSV/Parquet) or sigmf (iq datasets).")] = "long",
    limit: Annotated[int, typer.Option(help="SigMF: at most this many samples.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Write a split in the long measurement format or as SigMF recordings, truth included."""
    from heimdall.pipelines import dataset_export

    result = dataset_export(context(), name, split, output, file_format, limit)
    emit(result, as_json, lambda: Console().print(
        f"wrote {result.get('rows', result.get('recordings'))} rows/recordings ({result['samples']} samples) to {output}"
    ))


@handle_errors
def import_recordings(
    directory: Annotated[Path, typer.Argument(help="Directory of <sample_id>/<receiver_id>.sigmf-meta|-data.")],
    name: Annotated[str, typer.Option(help="Dataset name.")],
    split_mode: Annotated[str, typer.Option("--split-mode", "--split_mode", help="random or grid.")] = "random",
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Import SigMF recordings of known transmitters as a dataset of kind `iq`."""
    from heimdall.pipelines.recordings import import_recordings as run_import

    ctx = context()
    with progress_bars(quiet) as progress, step(progress, "import", f"SigMF recordings in {directory.name}"):
        result = run_import(ctx, directory, name, split_mode, seed)  # type: ignore[arg-type]
    payload = {"dataset": result.dataset, "samples": result.samples, "recordings": result.recordings,
               "receivers": result.receivers, "sample_rate_hz": result.sample_rate_hz, "splits": result.splits}
    emit(payload, as_json, lambda: Console().print(
        f"dataset {result.dataset}: {result.samples} transmissions from {result.recordings} recordings "
        f"({result.receivers} receivers, {result.sample_rate_hz:g} Hz)\n  {fmt_splits(result.splits)}", highlight=False
    ))
