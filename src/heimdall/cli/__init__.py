"""The `heimdall` command line: parse, call one pipeline, render.

Every command exits non-zero with one `error: ...` line on bad input; `--json` prints one
JSON object on the last line of stdout. The commands live in one module per area; this
module only assembles them.
"""

from __future__ import annotations

import typer

from heimdall.cli import data_commands, model_commands, ops_commands

app = typer.Typer(
    name="heimdall",
    help="Locate a radio transmitter from what a network of receivers heard of it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="List, inspect and export datasets.", no_args_is_help=True)
network_app = typer.Typer(help="Receiver networks.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)

app.command()(ops_commands.demo)
app.command()(data_commands.generate)
app.command("import-measurements")(data_commands.import_measurements)
app.add_typer(network_app, name="network")
network_app.command("from-measurements")(data_commands.network_from_measurements)
app.add_typer(datasets_app, name="datasets")
datasets_app.command("list")(data_commands.datasets_list)
datasets_app.command("show")(data_commands.datasets_show)
datasets_app.command("export")(data_commands.datasets_export)
app.command()(model_commands.train)
app.command()(model_commands.export)
app.command()(model_commands.evaluate)
app.command()(model_commands.localize)
app.add_typer(models_app, name="models")
models_app.command("list")(model_commands.models_list)
models_app.command("promote")(model_commands.models_promote)
models_app.command("compare")(model_commands.models_compare)
app.command()(ops_commands.serve)
app.command()(ops_commands.worker)
app.add_typer(db_app, name="db")
db_app.command("upgrade")(ops_commands.db_upgrade)
app.command()(ops_commands.bench)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
