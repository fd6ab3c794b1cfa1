"""Ctrl-C (SIGINT to the command's process group, as a terminal sends it) in `train`,
`generate`, `export` and `tune`: one line "interrupted; resume with: ...", exit 130, no
traceback; for `train` the printed command continues the run."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from heimdall.pausepoints import marker_name
from heimdall.pipelines import TrainRequest, generate, open_context, train
from heimdall.settings import Settings

pytestmark = pytest.mark.slow
CLI = "from heimdall.cli import app; app()"


def _interrupt_when(home: Path, tools, args: list[str], ready: Callable[[], bool], env: dict | None = None) -> str:
    """Start `heimdall ARGS` in its own process group, send SIGINT once `ready()`; return stderr."""
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, *args], cwd=tools.REPO, env=tools.clean_env(home) | (env or {}),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"{args} ended before the interrupt: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{args} never got ready"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Detected KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: interrupted; resume with: heimdall "), err
    return lines[-1].removeprefix("error: interrupted; resume with: ")


@pytest.fixture
def dataset_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ctx = open_context(Settings(home=home))
    generate(ctx, "ci", 2000, seed=6)
    ctx.close()
    return home


def _checkpoints(home: Path) -> list[Path]:
    return sorted((home / "checkpoints").glob("*/last.ckpt"))


def test_ctrl_c_in_train_prints_the_resume_command_that_works(dataset_home: Path, tools) -> None:
    home = dataset_home
    args = ["train", "--dataset", "ci", "--epochs", "40", "--batch-size", "32", "--hidden-dim", "16", "--num-layers", "1"]
    resume = _interrupt_when(home, tools, args, lambda: bool(_checkpoints(home)))
    last = _checkpoints(home)[0]
    assert resume == f"heimdall train --checkpoint {last} --resume-training"
    # The printed command (with fewer epochs, to finish soon) continues the same run.
    from heimdall.training.checkpoints import read_checkpoint

    done = read_checkpoint(last)["epoch"] + 1
    continued = subprocess.run(
        [sys.executable, "-c", CLI, *shlex.split(resume)[1:], "--epochs", str(done + 1), "--json"],
        cwd=tools.REPO, env=tools.clean_env(home), capture_output=True, text=True, timeout=300,
    )
    assert continued.returncode == 0, continued.stderr
    assert '"epochs_run": 1' in continued.stdout


def test_ctrl_c_in_generate_names_the_resume_flag(tmp_path: Path, tools) -> None:
    home = tmp_path / "home"
    args = ["generate", "--name", "big", "--samples", "200000", "--seed", "2", "-q"]
    progress = home / "staging" / "big" / "progress.json"
    resume = _interrupt_when(home, tools, args, progress.is_file)
    assert resume == "heimdall " + shlex.join([*args, "--resume"])


def test_ctrl_c_in_export_and_tune(dataset_home: Path, tools) -> None:
    home = dataset_home
    ctx = open_context(Settings(home=home))
    trained = train(ctx, TrainRequest(dataset="ci", epochs=1, batch_size=128, hidden_dim=16, num_layers=1))
    ctx.close()
    marker = home / marker_name("export:staged")
    args = ["export", "--checkpoint", trained.checkpoint]
    resume = _interrupt_when(home, tools, args, marker.is_file, env={"HEIMDALL_PAUSE_AT": "export:staged"})
    assert resume == "heimdall " + shlex.join(args)
    assert not (home / "artifacts" / "models").exists() or not any((home / "artifacts" / "models").rglob("config.yaml"))

    before = set(_checkpoints(home))
    args = ["tune", "--dataset", "ci", "--trials", "3", "--epochs", "30", "--hidden-dims", "16", "--layers", "1", "--no-export"]
    resume = _interrupt_when(home, tools, args, lambda: bool(set(_checkpoints(home)) - before))
    assert resume == "heimdall " + shlex.join(args)
