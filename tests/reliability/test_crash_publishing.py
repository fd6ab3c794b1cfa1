"""`kill -9` at each step of export, import and generation: the next run succeeds, what was
complete is untouched, and `heimdall doctor` reports (and `--fix` removes) the leftovers.

Each command is started with `HEIMDALL_PAUSE_AT=STEP` (heimdall.pausepoints): it stops at
that exact step and writes a marker; the test then kills it with SIGKILL, as a crash would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heimdall.pausepoints import marker_name
from heimdall.pipelines import TrainRequest, generate, open_context, train
from heimdall.pipelines.publishing import doctor
from heimdall.settings import Settings

pytestmark = pytest.mark.slow
CLI = "from heimdall.cli import app; app()"
POWDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "powder-frs-april" / "april.json"


def _tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cli(home: Path, tools, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=tools.REPO, env=tools.clean_env(home),
                          capture_output=True, text=True, timeout=300)


def _kill_at(home: Path, tools, step: str, args: list[str]) -> None:
    """Run `heimdall ARGS` until it reaches `step`, then SIGKILL it."""
    marker = home / marker_name(step)
    marker.unlink(missing_ok=True)
    env = tools.clean_env(home) | {"HEIMDALL_PAUSE_AT": step}
    log = home.parent / "killed.stderr"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=tools.REPO, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 240
    while not marker.is_file():
        if process.poll() is not None:
            pytest.fail(f"{args} ended before {step}: {log.read_text()[-2000:]}")
        assert time.monotonic() < deadline, f"{args} never reached {step}"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    marker.unlink()


def _doctor(home: Path, fix: bool = False) -> dict:
    """`heimdall doctor --json` (in this process: the CLI itself is run once, below)."""
    import dataclasses

    ctx = open_context(Settings(home=home))
    try:
        report = doctor(ctx, fix=fix)
    finally:
        ctx.close()
    return dataclasses.asdict(report) | {"clean": report.clean}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A home with a dataset and a short training run's checkpoint."""
    home = tmp_path_factory.mktemp("crash") / "home"
    ctx = open_context(Settings(home=home))
    generate(ctx, "base", 1500, seed=4)
    result = train(ctx, TrainRequest(dataset="base", epochs=1, batch_size=128, hidden_dim=16, num_layers=1))
    ctx.close()
    return home, Path(result.checkpoint)


def test_export_killed_at_each_step_never_wedges_later_exports(trained_home, tools) -> None:
    home, checkpoint = trained_home
    first = _cli(home, tools, ["export", "--checkpoint", str(checkpoint), "--json"])
    assert first.returncode == 0, first.stderr
    v1 = Path(json.loads(first.stdout.splitlines()[-1])["bundle"])
    v1_digest = _tree_digest(v1)
    models = home / "artifacts" / "models" / "heimdall-localizer"

    expected_version = 2
    for step in ("export:staged", "publish:copied", "export:published", "export:registered"):
        _kill_at(home, tools, step, ["export", "--checkpoint", str(checkpoint)])
        report = _doctor(home)
        assert not report["clean"], step
        if step == "export:published":  # the finding: v2 in the store, not in the registry
            assert (models / f"v{expected_version}" / "config.yaml").is_file()
            assert report["models"][0]["unregistered"] == [expected_version]
        if step == "export:registered":
            assert report["models"][0]["unrecorded"] == [expected_version]
        if step in ("export:staged", "publish:copied"):
            assert report["stale"], step  # the killed export's bundle (and half copy)
        again = _cli(home, tools, ["export", "--checkpoint", str(checkpoint), "--json"])
        assert again.returncode == 0, f"{step}: {again.stderr}"
        result = json.loads(again.stdout.splitlines()[-1])
        # A version registered before the kill keeps its number; the rerun takes the next.
        expected_version += 1 if step == "export:registered" else 0
        assert result["registered"] == f"models:/heimdall-localizer/{expected_version}", step
        expected_version += 1
        assert _doctor(home)["clean"], step
        assert _tree_digest(v1) == v1_digest, step  # the completed version is untouched
    listed = _cli(home, tools, ["models", "list", "--json"])
    versions = sorted(row["reference"] for row in json.loads(listed.stdout.splitlines()[-1])["models"])
    assert len(versions) == expected_version - 1  # every registered version has its row
    assert not [p for p in models.iterdir() if ".partial." in p.name]
    assert not list((home / "staging").glob("bundle.*"))


def test_import_and_generation_killed_before_publishing_rerun_cleanly(trained_home, tools) -> None:
    if not POWDER.is_file():
        pytest.fail(f"POWDER data not found at {POWDER} (shared/ must sit beside the repo)")
    home, _ = trained_home
    base = home / "artifacts" / "datasets" / "base"
    base_digest = _tree_digest(base)
    cases = [
        (["import-measurements", str(POWDER), "--format", "powder-json", "--name", "imp"], "dataset:staged"),
        (["import-measurements", str(POWDER), "--format", "powder-json", "--name", "imp2"], "publish:copied"),
        (["generate", "--name", "gen", "--samples", "1200", "--seed", "1"], "dataset:staged"),
        (["generate", "--name", "gen2", "--samples", "1200", "--seed", "1"], "publish:copied"),
    ]
    for args, step in cases:
        name = args[args.index("--name") + 1]
        _kill_at(home, tools, step, args)
        assert not (home / "artifacts" / "datasets" / name / "manifest.json").exists()
        if args[0] == "import-measurements":
            stale = _doctor(home)["stale"]
            assert any(Path(p).name.startswith(f"{name}.") for p in stale), (step, stale)
        again = _cli(home, tools, [*args, "--json"])
        assert again.returncode == 0, f"{args} after {step}: {again.stderr}"
        assert (home / "artifacts" / "datasets" / name / "manifest.json").is_file()
        assert _doctor(home)["clean"], (args, step)
    assert _tree_digest(base) == base_digest
    leftovers = [p.name for p in (home / "artifacts" / "datasets").iterdir() if ".partial." in p.name]
    assert not leftovers


def test_doctor_fix_removes_what_a_killed_import_left(trained_home, tools) -> None:
    home, _ = trained_home
    _kill_at(home, tools, "dataset:staged", ["import-measurements", str(POWDER), "--format", "powder-json", "--name", "fixme"])
    report = _doctor(home)
    assert len(report["stale"]) == 1 and not report["fixed"]
    text = _cli(home, tools, ["doctor"])
    assert text.returncode == 0 and "heimdall doctor --fix" in text.stdout and f"  {report['stale'][0]}\n" in text.stdout
    as_json = _cli(home, tools, ["doctor", "--json"])
    assert json.loads(as_json.stdout.splitlines()[-1])["stale"] == report["stale"]
    fixed = json.loads(_cli(home, tools, ["doctor", "--fix", "--json"]).stdout.splitlines()[-1])
    assert fixed["fixed"] and fixed["stale"] == report["stale"] and not Path(report["stale"][0]).exists()
    assert _doctor(home)["clean"]
