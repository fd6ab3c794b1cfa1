"""Everyday use of the CLI: progress bars, --quiet, hints on errors, help and completion."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from heimdall.cli import app

runner = CliRunner()


def _commands(command, path):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, [*path, name])
    else:
        yield " ".join(path), command


def test_every_command_option_and_argument_has_help() -> None:
    found = dict(_commands(typer.main.get_command(app), ["heimdall"]))
    assert {"heimdall generate", "heimdall train", "heimdall datasets show", "heimdall models promote"} <= set(found)
    for path, command in found.items():
        assert command.help, f"{path} has no help"
        for param in command.params:
            assert getattr(param, "help", None), f"{path}: {param.name} has no help"


def test_generate_shows_a_progress_bar_unless_quiet(home: Path) -> None:
    shown = runner.invoke(app, ["generate", "--name", "bar", "--samples", "3000"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "generate" in shown.stderr and "3000/3000" in shown.stderr and "eta" in shown.stderr
    quiet = runner.invoke(app, ["generate", "--name", "quiet", "--samples", "3000", "--quiet"], catch_exceptions=False)
    assert quiet.exit_code == 0 and quiet.stderr.strip() == ""
    assert "dataset quiet: 3000 samples" in quiet.stdout


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["generate", "--name", "x", "--samples", "0"], "`heimdall generate --help`"),
        (["datasets", "show", "missing"], "`heimdall datasets list`"),
        (["train", "--dataset", "x", "--epochs", "0"], "`heimdall train --help`"),
        # Fails inside its progress display: the bar must leave no line behind.
        (["evaluate", "--model", "nowhere", "--dataset", "x"], "`heimdall datasets list`"),
    ],
)
def test_errors_end_with_a_hint_naming_the_command(home: Path, args: list[str], hint: str) -> None:
    result = runner.invoke(app, args, catch_exceptions=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and result.stderr.startswith("error: "), repr(result.stderr)
    assert f"(hint: {hint}" in lines[0]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o default -F _heimdall_completion heimdall"), ("zsh", "compdef"), ("fish", "complete --command heimdall")])
def test_shell_completion_script(monkeypatch: pytest.MonkeyPatch, shell: str, marker: str) -> None:
    # Name the shell instead of detecting it from the process tree (which differs in CI).
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(app, ["--show-completion", shell], prog_name="heimdall")
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert marker in result.stdout
