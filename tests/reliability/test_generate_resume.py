"""`generate --resume`: an interrupted generation finishes with the bytes of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data import synthetic
from heimdall.data.synthetic import SimulationPlan
from heimdall.data.shards import PROGRESS_FILE, DatasetReader
from heimdall.errors import ConflictError, InputError
from heimdall.pipelines import Context, generate, open_context
from heimdall.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CLI = "from heimdall.cli import app; app()"


class Interrupted(KeyboardInterrupt):
    """What a Ctrl-C (or a dying worker) looks like to the generation loop."""


def _interrupt_after(samples: int):
    def progress(done: int, total: int) -> None:
        if done >= samples:
            raise Interrupted
    return progress


def _shard_bytes(ctx: Context, name: str) -> dict[str, bytes]:
    reader = DatasetReader(ctx.store, name)
    return {info.file: (reader.directory / info.file).read_bytes() for info in reader.manifest.shards}


def _assert_same_dataset(a: Context, b: Context, name: str, num_samples: int) -> None:
    shards_a, shards_b = _shard_bytes(a, name), _shard_bytes(b, name)
    assert list(shards_a) == list(shards_b)
    for file, content in shards_a.items():
        assert content == shards_b[file], file
    ids = DatasetReader(a.store, name).load().sample_id
    np.testing.assert_array_equal(ids, np.arange(num_samples))
    manifest_a = DatasetReader(a.store, name).manifest
    manifest_b = DatasetReader(b.store, name).manifest
    assert manifest_a.model_dump(exclude={"created_at"}) == manifest_b.model_dump(exclude={"created_at"})


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    # One block (1,024 samples) per shard, so a few thousand samples make several shards.
    monkeypatch.setattr(synthetic, "SHARD_BLOCKS", 1)


def test_interrupted_generation_resumes_to_identical_bytes(ctx: Context, tmp_path: Path, small_shards: None) -> None:
    with pytest.raises(Interrupted):
        synthetic.generate_dataset(
            ctx.store, ctx.staging_dir, "resumed", SimulationPlan(_default_network(), _scenario(), 4500, seed=11),
            progress=_interrupt_after(2100),
        )
    staged = json.loads((ctx.staging_dir / "resumed" / PROGRESS_FILE).read_text())
    assert len(staged["shards"]) == 3  # of 5; progress is reported after each block's shard
    assert not ctx.store.exists("datasets/resumed/manifest.json")

    done: list[int] = []
    generate(ctx, "resumed", 4500, seed=11, resume=True)
    reference = open_context(Settings(home=tmp_path / "reference"))
    synthetic.generate_dataset(
        reference.store, reference.staging_dir, "resumed", SimulationPlan(_default_network(), _scenario(), 4500, seed=11),
        progress=lambda d, t: done.append(d),
    )
    assert done[-1] == 4500
    _assert_same_dataset(ctx, reference, "resumed", 4500)
    assert not (ctx.staging_dir / "resumed").exists()


def test_staged_run_needs_resume_and_the_same_plan(ctx: Context, small_shards: None) -> None:
    with pytest.raises(Interrupted):
        synthetic.generate_dataset(
            ctx.store, ctx.staging_dir, "half", SimulationPlan(_default_network(), _scenario(), 3000, seed=2),
            progress=_interrupt_after(1100),
        )
    with pytest.raises(ConflictError, match="--resume"):
        generate(ctx, "half", 3000, seed=2)
    with pytest.raises(InputError, match="seed"):
        generate(ctx, "half", 3000, seed=3, resume=True)
    with pytest.raises(InputError, match="samples"):
        generate(ctx, "half", 4000, seed=2, resume=True)
    # The refusals kept the staged shard; the right command still finishes the dataset.
    assert generate(ctx, "half", 3000, seed=2, resume=True).samples == 3000


def test_cli_without_resume_prints_one_error_line(home: Path, small_shards: None) -> None:
    ctx = open_context(Settings(home=home))
    with pytest.raises(Interrupted):
        synthetic.generate_dataset(
            ctx.store, ctx.staging_dir, "cli", SimulationPlan(_default_network(), _scenario(), 2500, seed=0),
            progress=_interrupt_after(1100),
        )
    result = CliRunner().invoke(app, ["generate", "--name", "cli", "--samples", "2500"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "--resume" in lines[0]
    result = CliRunner().invoke(app, ["generate", "--name", "cli", "--samples", "2500", "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["samples"] == 2500


def test_resume_without_a_staged_run_starts_fresh(ctx: Context) -> None:
    assert generate(ctx, "fresh", 1500, seed=4, resume=True).samples == 1500


def test_failed_plan_leaves_no_staging(ctx: Context) -> None:
    from heimdall.errors import DataError
    from heimdall.sim.scenario import ScenarioConfig

    hopeless = ScenarioConfig(tx_power_min_dbm=-80, tx_power_max_dbm=-70, max_draw_factor=2)
    with pytest.raises(DataError):
        generate(ctx, "hopeless", 1000, scenario=hopeless)
    assert not (ctx.staging_dir / "hopeless").exists()


def _default_network():
    from heimdall.network import default_network

    return default_network()


def _scenario():
    from heimdall.sim.scenario import ScenarioConfig

    return ScenarioConfig()


@pytest.mark.slow
def test_kill_9_mid_generation_then_resume(tmp_path: Path, tools) -> None:
    """A `heimdall generate` killed with SIGKILL after its first shard, rerun with --resume."""
    home = tmp_path / "killed"
    command = [sys.executable, "-c", CLI, "generate", "--name", "big", "--samples", "60000", "--seed", "7"]
    process = subprocess.Popen(command, env=tools.clean_env(home), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = home / "staging" / "big" / PROGRESS_FILE
    deadline = time.monotonic() + 240
    while not progress.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "generation finished before it could be killed"
    staged = json.loads(progress.read_text())["shards"]
    assert 1 <= len(staged) < 4

    resumed = subprocess.run([*command, "--resume", "--json"], env=tools.clean_env(home), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.splitlines()[-1])["samples"] == 60000

    reference = open_context(Settings(home=tmp_path / "reference"))
    generate(reference, "big", 60000, seed=7)
    _assert_same_dataset(open_context(Settings(home=home)), reference, "big", 60000)


@pytest.mark.slow
def test_iq_generation_resumes_to_identical_bytes_and_statistics(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heimdall.data import iq

    monkeypatch.setattr(iq, "_SHARD_BLOCKS", 1)
    plan = SimulationPlan(_default_network(), _scenario(), 1100, seed=4)
    with pytest.raises(Interrupted):
        iq.generate_iq_dataset(ctx.store, ctx.staging_dir, "iqr", plan, progress=_interrupt_after(1024))
    assert len(json.loads((ctx.staging_dir / "iqr" / PROGRESS_FILE).read_text())["shards"]) == 1
    iq.generate_iq_dataset(ctx.store, ctx.staging_dir, "iqr", plan, resume=True)
    reference = open_context(Settings(home=tmp_path / "reference"))
    iq.generate_iq_dataset(reference.store, reference.staging_dir, "iqr", plan)
    _assert_same_dataset(ctx, reference, "iqr", 1100)  # the manifests' IQ statistics included
    kept = [np.load(DatasetReader(c.store, "iqr").directory / "iq.npy") for c in (ctx, reference)]
    assert kept[0].tobytes() == kept[1].tobytes()


def _spawned_workers(pid: int) -> list[int]:
    """Pids of the multiprocessing workers `pid` has spawned (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("then_s", [0.0, 5.0])
def test_ctrl_c_with_workers_prints_one_line_and_no_traceback(tmp_path: Path, tools, then_s: float) -> None:
    """Ctrl-C reaches the command and its worker processes (one process group, as from a
    terminal): as soon as the workers exist (still importing) or once they compute, only
    the command's own error line may appear."""
    home = tmp_path / "interrupted"
    command = [sys.executable, "-c", CLI, "generate", "--name", "iq", "--samples", "4096", "--kind", "iq",
               "--workers", "2", "--seed", "3", "-q"]
    process = subprocess.Popen(
        command, env=tools.clean_env(home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(_spawned_workers(process.pid)) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    time.sleep(then_s)
    assert process.poll() is None, process.communicate()[1]
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted; resume with: heimdall generate --name iq"), err
    assert err.strip().splitlines()[-1].endswith(" --resume"), err
