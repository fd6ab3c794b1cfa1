"""Terminal output: 80 columns without cutting the values users copy, units, one human
format per command (JSON only with --json), `serve` saying where it listens, `--quiet`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.cli.common import HEAVY_TAIL_RATIO, fit_table_notes, fmt_axes, fmt_m
from heimdall.cli.progress import progress_bars
from heimdall.pipelines.demo import model_warnings

REPO = Path(__file__).resolve().parents[2]
CLI = "from heimdall.cli import app; app()"
runner = CliRunner()


def _fits_80_columns(text: str, values: list[str]) -> None:
    """Every line fits 80 columns, except a value printed whole on its own line."""
    lines = text.splitlines()
    for value in values:
        assert f"  {value}" in lines, (value, text)
    for line in lines:
        assert len(line) <= 80 or line.strip() in values, line


@pytest.mark.slow
def test_train_and_export_print_values_whole_on_their_own_lines(home: Path) -> None:
    # Its own home: exporting registers a version, which the shared `trained` home must not get.
    env = {"HEIMDALL_HOME": str(home), "COLUMNS": "80"}
    assert runner.invoke(app, ["generate", "--name", "out", "--samples", "1200", "-q"], env=env).exit_code == 0
    trained = runner.invoke(app, ["train", "--dataset", "out", "--epochs", "1", "--hidden-dim", "16", "-q"], env=env)
    assert trained.exit_code == 0, trained.output
    best = re.search(r"^best checkpoint.*:\n  (/\S+)$", trained.stdout, re.M)[1]
    last = re.search(r"^last checkpoint.*:\n  (/\S+)$", trained.stdout, re.M)[1]
    assert Path(best).is_file() and Path(last).is_file()
    _fits_80_columns(trained.stdout, [best, last])
    result = runner.invoke(app, ["train", "--export-only", "--checkpoint", best, "-q"], env=env)
    assert result.exit_code == 0, result.output
    assert not result.stdout.lstrip().startswith("{")  # a sentence, not a raw dict
    bundle = re.search(r"^  (/\S+)$", result.stdout, re.M)[1]
    reference = re.search(r"^  (models:/\S+)$", result.stdout, re.M)[1]
    assert Path(bundle).is_dir() and reference.startswith("models:/heimdall-localizer/")
    assert re.search(r"max difference \d\.\d\de[-+]\d\d \(positions in m", result.stdout)
    _fits_80_columns(result.stdout, [bundle, reference])
    # The held-out split the export measured, the model beside the baselines, as metrics.json has it.
    held_out = json.loads((Path(bundle) / "metrics.json").read_text())["evaluation"]
    assert f"held-out test split, {held_out['n']:,} samples" in result.stdout
    model_row = re.search(r"│ model\s+│\s+(\S+ k?m) │", result.stdout)[1]
    assert model_row == fmt_m(held_out["median_error_m"])
    for name in held_out["baselines"]:
        assert re.search(rf"│ {name}\s+│", result.stdout), name


@pytest.mark.slow
def test_a_radio_map_fit_says_what_its_cross_fitting_measured(home: Path) -> None:
    from heimdall.training.checkpoints import read_checkpoint

    env = {"HEIMDALL_HOME": str(home), "COLUMNS": "80"}
    assert runner.invoke(app, ["generate", "--name", "s", "--samples", "400", "-q"], env=env).exit_code == 0
    shown = runner.invoke(app, ["train", "--dataset", "s", "--estimator", "radio-map", "-q"], env=env)
    assert shown.exit_code == 0, shown.output
    # Fitted in one step: no epochs to count, nothing to resume.
    assert "epoch" not in shown.stdout and "resume" not in shown.stdout
    checkpoint = re.search(r"^checkpoint.*:\n  (/\S+)$", shown.stdout, re.M)[1]
    _fits_80_columns(shown.stdout, [checkpoint])
    meta = read_checkpoint(Path(checkpoint))["heimdall"]
    cv, k = meta["cross_validation"], meta["hyperparameters"]["ellipse95_sigmas"]
    assert f"95% ({k:.2f}σ)" in shown.stdout
    number = r"\s+│\s+([\d.]+)"
    rows = {m[1]: m.groups()[1:] for m in re.finditer(r"│\s+(random|spatial|time)\s+│\s+([\d.]+ k?m)" + number * 4,
                                                      shown.stdout)}
    assert set(rows) == {"random", "spatial"}  # a simulation has no timestamps: no time blocks
    for scheme, (median, *coverage, tail) in rows.items():
        assert median == fmt_m(cv[f"cv_{scheme}_median_error_m"])
        assert coverage == [f"{cv[f'cv_{scheme}_coverage_{c}']:.3f}" for c in ("1sigma", "2sigma", "95")]
        assert float(coverage[0]) < float(coverage[1]) <= float(coverage[2])
        assert tail == f"{cv[f'cv_{scheme}_tail_ratio']:.1f}" and float(tail) > 1.0
    assert "tail: radius holding 86.5% of truths over the one holding 39.3%" in " ".join(shown.stdout.split())


def test_the_fit_notes_explain_heavy_tails_only_where_the_cross_fitting_found_them() -> None:
    near_gaussian = {"cv_random_tail_ratio": 2.1, "cv_spatial_tail_ratio": 2.3}
    notes = fit_table_notes(near_gaussian)
    assert notes[0].startswith("1σ/2σ/95%") and notes[1].startswith("tail:") and len(notes) == 2
    heavy = dict(near_gaussian, cv_time_tail_ratio=4.06)
    assert 4.06 > HEAVY_TAIL_RATIO
    assert fit_table_notes(heavy)[2].startswith("tail up to 4.1: some answers miss by far more than their ellipse says")
    assert len(fit_table_notes({})) == 2  # a fit from before the tail ratio: nothing to explain


def test_ellipse_axes_share_one_unit() -> None:
    assert fmt_axes(28.4, 17.2) == "28 x 17 m"
    assert fmt_axes(9_999.0, 120.0) == "9,999 x 120 m"
    # From 10 km on, as fmt_m: both axes in km, so "27.9 x 2.3 km" never reads as 27.9 km by 2.3 m.
    assert fmt_axes(27_916.0, 2_261.5) == "27.9 x 2.3 km" and fmt_m(27_916.0) == "27.9 km"


def test_localize_table_gives_units_whole_numbers_and_warnings_beneath(trained, tmp_path: Path) -> None:
    import pandas as pd

    env = {"HEIMDALL_HOME": str(trained.home)}
    csv = tmp_path / "m.csv"
    assert runner.invoke(app, ["datasets", "export", trained.dataset, "--split", "test", "-o", str(csv)],
                         env=env).exit_code == 0
    rows = pd.read_csv(csv)
    rows = rows[rows["sample_id"].isin(rows["sample_id"].unique()[:5])].copy()
    # One heard reading of the first sample under a misspelt receiver id.
    typo_row = rows.index[rows["rss_dbm"].notna()][0]
    rows.loc[typo_row, "receiver_id"] = "rx-misspelt"
    rows.to_csv(csv, index=False)
    command = ["localize", "--model", str(trained.bundle), "--measurements", str(csv)]
    answers = runner.invoke(app, [*command, "--json"], env=env)
    assert answers.exit_code == 0, answers.output
    predictions = json.loads(answers.stdout.splitlines()[-1])["predictions"]
    wide = runner.invoke(app, command, env=env | {"COLUMNS": "100"})
    narrow = runner.invoke(app, command, env=env | {"COLUMNS": "80"})
    for shown in (wide, narrow):
        assert shown.exit_code == 0, shown.output
        assert "bearing of the major axis, clockwise from north" in shown.stdout
        assert "…" not in shown.stdout  # a narrow terminal wraps cells, it never cuts a number
        for p in predictions:
            assert f"│ {p['lat']:.5f}" in shown.stdout and f"│ {p['lon']:.5f}" in shown.stdout
    _fits_80_columns(narrow.stdout, [])
    # Wide enough, each answer is one row: semi-axes in one unit (km on this 100 km network).
    for header in ("lat (deg)", "lon (deg)", "1σ", "95%", "axis (deg)", "heard"):
        assert header in wide.stdout
    for p in predictions:
        axes = fmt_axes(p["sigma_major_m"], p["sigma_minor_m"])
        row = rf"│{re.escape(str(p['sample_id']))}\s+│ {p['lat']:.5f}\s+│ {p['lon']:.5f}\s+│ {re.escape(axes)}\s+│"
        assert re.search(row, wide.stdout), (row, wide.stdout)
    flagged = [p for p in predictions if p["warnings"]]
    assert [p["sample_id"] for p in flagged] == [str(rows.loc[typo_row, "sample_id"])]
    assert f"sample {flagged[0]['sample_id']}: receivers_unknown_to_model" in wide.stdout


def test_datasets_show_is_human_unless_json(trained) -> None:
    env = {"HEIMDALL_HOME": str(trained.home)}
    human = runner.invoke(app, ["datasets", "show", trained.dataset], env=env)
    assert human.exit_code == 0 and not human.stdout.lstrip().startswith("{")
    assert "samples" in human.stdout and "MHz" in human.stdout and "deg" in human.stdout


def test_a_stage_that_starts_again_gets_its_own_bar(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bars() as progress:
        progress("generate", 100, 100, "first")
        time.sleep(1.2)
        progress("generate", 10, 100, "second")
        progress("generate", 100, 100, "second")
    err = capsys.readouterr().err
    bars = [line for line in err.splitlines() if line.strip().startswith(("generate", "⠋", "✓")) or "generate" in line]
    assert len(bars) == 2, err
    # The second bar counts its own time, not the first one's second.
    assert "0:00:00" in bars[1], err


def test_demo_warns_when_a_baseline_beats_the_model() -> None:
    evaluation = {"median_error_m": 39_200.0, "baselines": {"weighted_centroid": {"median_error_m": 30_000.0},
                                                             "max_rss": {"median_error_m": 45_000.0}}}
    (warning,) = model_warnings(evaluation)
    assert "39.2 km" in warning and "weighted_centroid" in warning and "30.0 km" in warning
    assert model_warnings({"median_error_m": 10_000.0, "baselines": evaluation["baselines"]}) == ()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_prints_its_url_and_docs(home: Path, tmp_path: Path) -> None:
    """The URL and the docs URL come first, and the server then answers there; a keep-alive
    connection idle longer than client pools keep theirs (5 s) still answers; Ctrl-C stops it."""
    import http.client
    import urllib.request

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(home), PYTHONPATH=str(REPO / "src"))
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--port", str(port)], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            first = process.stdout.readline() + process.stdout.readline()
            # Ctrl-C on a server that is up, as a user would press it.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                for pause_s in (0.0, 6.0):
                    time.sleep(pause_s)
                    connection.request("GET", "/health")
                    response = connection.getresponse()
                    response.read()
                    assert response.status == 200
            finally:
                connection.close()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                pytest.fail(f"serve did not stop within 60 s of Ctrl-C; its log ends: {log.read_text()[-2000:]}")
    assert f"http://127.0.0.1:{port}" in first and f"  http://127.0.0.1:{port}/docs\n" in first


@pytest.mark.slow
def test_quiet_silences_library_warnings_and_bars(trained, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO / "src"))
    run = lambda *args: subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=600)
    assert run("generate", "--name", "q", "--samples", "1200", "-q").returncode == 0
    # A few batches per epoch: Lightning warns about its logging interval unless silenced.
    loud = run("train", "--dataset", "q", "--epochs", "1", "--batch-size", "256", "--hidden-dim", "16")
    assert loud.returncode == 0 and "log_every_n_steps" in loud.stderr
    quiet = run("train", "--dataset", "q", "--epochs", "1", "--batch-size", "256", "--hidden-dim", "16", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_evaluate_shows_the_error_by_distance_to_training_in_80_columns() -> None:
    import io

    from rich.console import Console

    from heimdall.cli.common import distance_table

    groups = [
        {"from_m": 0.0, "to_m": 8.4, "n": 270, "median_error_m": 46.2, "coverage_1sigma": 0.74, "coverage_2sigma": 0.94},
        {"from_m": 8.4, "to_m": 21.0, "n": 270, "median_error_m": 74.0, "coverage_1sigma": 0.6, "coverage_2sigma": 0.85},
        {"from_m": 21.0, "to_m": None, "n": 271, "median_error_m": 12_500.0, "coverage_1sigma": 0.4,
         "coverage_2sigma": 0.7},
    ]
    console = Console(file=io.StringIO(), width=80)
    console.print(distance_table({"by_distance_to_training": groups}))
    text = console.file.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()) and "error by distance to the training data" in text
    assert "0 m - 8 m" in text and "21 m - ..." in text and "12.5 km" in text and "0.740" in text
    assert distance_table({"median_error_m": 10.0}) is None  # synthetic data: no table
