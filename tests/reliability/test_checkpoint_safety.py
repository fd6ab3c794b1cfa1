"""A crafted checkpoint whose pickle calls `os.system` must not run: every command that
reads a `.ckpt` refuses it with one line (checkpoints load weights-only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.errors import InputError
from heimdall.training.checkpoints import load_checkpoint

CLI = "from heimdall.cli import app; app()"


class _RunsACommand:
    """Pickles as a call to os.system(command): what a malicious checkpoint carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (self.command,))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.ckpt"
    # Shaped like a Heimdall checkpoint so only the pickle's payload is wrong.
    torch.save({"heimdall": {"model_config": {}, "dataset": "x"}, "state_dict": {}, "epoch": 0,
                "payload": _RunsACommand(f"touch {marker}")}, path)
    return path, marker


def test_loading_refuses_the_pickle_before_it_runs(crafted) -> None:
    path, marker = crafted
    with pytest.raises(InputError, match=r"refused checkpoint .*asks for posix\.system.*nothing in it was run"):
        load_checkpoint(path)
    assert not marker.exists()


def test_every_command_that_reads_a_checkpoint_refuses_it(crafted, home: Path) -> None:
    path, marker = crafted
    measurements = path.with_name("m.csv")
    measurements.write_text("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n1,a,45.0,7.0,-90\n1,b,45.1,7.2,-95\n"
                            "1,c,45.2,7.1,-99\n")
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--name", "x", "--samples", "1000", "-q"]).exit_code == 0
    for args in (
        ["train", "--checkpoint", str(path), "--resume-training"],
        ["train", "--dataset", "x", "--init-from", str(path)],
        ["train", "--export-only", "--checkpoint", str(path)],
        ["localize", "--model", str(path), "--measurements", str(measurements)],
        ["evaluate", "--model", str(path), "--dataset", "x"],
    ):
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, (args, result.output)
        assert lines[0].startswith("error: refused checkpoint") and "posix.system" in lines[0], lines
    assert not marker.exists()


@pytest.mark.slow
def test_export_in_a_real_process_does_not_run_it(crafted, tmp_path: Path) -> None:
    path, marker = crafted
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(tmp_path / "home"), PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    result = subprocess.run([sys.executable, "-c", CLI, "export", "--checkpoint", str(path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and not marker.exists()
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "refused checkpoint" in result.stderr and "posix.system" in result.stderr
