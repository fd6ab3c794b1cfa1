"""The `heimdall` command line: parse, call one pipeline, render.

Every command exits non-zero with one `error: ...` line on bad input; `--json` prints one
JSON object on the last line of stdout. The commands live in one module per area; this
module only assembles them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from heimdall.cli import data_commands, model_commands, ops_commands, scenario_commands, tune_commands

app = typer.Typer(
    name="heimdall",
    help="Locate a radio transmitter from what a network of receivers heard of it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
datasets_app = typer.Typer(help="List, inspect and export datasets.", no_args_is_help=True)
network_app = typer.Typer(help="Receiver networks.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
scenario_app = typer.Typer(help="Simulation scenarios fitted to measurements.", no_args_is_help=True)
_GROUP_PATHS = {id(app): "heimdall"}


def _register(group: typer.Typer, name: str, command: Callable[..., Any]) -> None:
    """Add `command` to `group` and tell it its full path, for the hints of its errors."""
    command.command_path = f"{_GROUP_PATHS[id(group)]} {name}"  # type: ignore[attr-defined]
    group.command(name)(command)


def _add_group(group: typer.Typer, name: str) -> None:
    _GROUP_PATHS[id(group)] = f"heimdall {name}"
    app.add_typer(group, name=name)


_register(app, "demo", ops_commands.demo)
_register(app, "generate", data_commands.generate)
_register(app, "import-measurements", data_commands.import_measurements)
_register(app, "import-recordings", data_commands.import_recordings)
_add_group(network_app, "network")
_register(network_app, "from-measurements", data_commands.network_from_measurements)
_add_group(scenario_app, "scenario")
_register(scenario_app, "fit", scenario_commands.scenario_fit)
_register(scenario_app, "validate", scenario_commands.scenario_validate)
_add_group(datasets_app, "datasets")
_register(datasets_app, "list", data_commands.datasets_list)
_register(datasets_app, "show", data_commands.datasets_show)
_register(datasets_app, "export", data_commands.datasets_export)
_register(app, "train", model_commands.train)
_register(app, "export", model_commands.export)
_register(app, "evaluate", model_commands.evaluate)
_register(app, "localize", model_commands.localize)
_add_group(models_app, "models")
_register(models_app, "list", model_commands.models_list)
_register(models_app, "promote", model_commands.models_promote)
_register(models_app, "compare", model_commands.models_compare)
_register(app, "serve", ops_commands.serve)
_register(app, "worker", ops_commands.worker)
_register(app, "ui", ops_commands.ui)
_add_group(db_app, "db")
_register(db_app, "upgrade", ops_commands.db_upgrade)
_register(app, "bench", ops_commands.bench)
_register(app, "tune", tune_commands.tune)
_register(app, "doctor", ops_commands.doctor)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
