"""Bad input at the command line: one `error:` line, non-zero exit, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.cli import app

runner = CliRunner()


def _run(args: list[str]):
    return runner.invoke(app, args, catch_exceptions=False)


def _assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_malformed_network_file(home: Path, tmp_path: Path) -> None:
    network = tmp_path / "net.yaml"
    network.write_text("name: x\nreceivers: [\n")
    result = _run(["generate", "--name", "n1", "--samples", "100", "--network", str(network)])
    _assert_one_line_error(result, "net.yaml")
    assert not (home / "artifacts" / "datasets" / "n1").exists()


def test_network_with_out_of_range_receiver(home: Path, tmp_path: Path) -> None:
    network = tmp_path / "net.json"
    network.write_text(
        '{"name": "x", "receivers": [{"receiver_id": "a", "lat_deg": 95, "lon_deg": 7},'
        ' {"receiver_id": "b", "lat_deg": 45, "lon_deg": 8}]}'
    )
    _assert_one_line_error(_run(["generate", "--name", "n2", "--samples", "100", "--network", str(network)]), "latitude 95")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["generate", "--name", "x", "--samples", "0"], "--samples must be positive"),
        (["generate", "--name", "x", "--samples", "10", "--kind", "audio"], "--kind"),
        (["generate", "--name", "bad/name", "--samples", "10"], "invalid dataset name"),
        (["datasets", "show", "missing"], "not found"),
        (["train", "--dataset", "missing", "--epochs", "1"], "not found"),
        (["train", "--epochs", "1"], "--dataset is required"),
        (["train", "--dataset", "x", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--resume-training"], "--checkpoint"),
        (["export", "--checkpoint", "nope.ckpt"], "not found"),
        (["evaluate", "--model", "nowhere", "--dataset", "x"], "not found"),
        (["localize", "--model", "models:/bad ref", "--measurements", "x.csv"], "not found"),
    ],
)
def test_bad_flags_and_missing_things(home: Path, args: list[str], fragment: str) -> None:
    _assert_one_line_error(_run(args), fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("sample_id,receiver_id,rx_lat,rss_dbm\n1,a,45,-90\n", "missing required column"),
        ("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n", "no measurement rows"),
        ("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n1,torino,45.04,7.67,NaN\n", "non-finite"),
        ("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n1,torino,145.04,7.67,-90\n", "out of range"),
    ],
)
def test_bad_measurement_files(home: Path, tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(content)
    # The file is checked before any model is loaded, so no bundle is needed to see the error.
    _assert_one_line_error(_run(["localize", "--model", str(tmp_path), "--measurements", str(path)]), fragment)


def test_a_bundle_missing_files_is_rejected(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\n1,torino,45.04,7.67,-90\n")
    _assert_one_line_error(_run(["localize", "--model", str(tmp_path), "--measurements", str(path)]), "not a complete model bundle")


def test_unreachable_database_is_one_line_at_start(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    monkeypatch.setenv("HEIMDALL_DATABASE_URL", f"postgresql+psycopg://u:secret@127.0.0.1:{port}/db")
    result = _run(["datasets", "list"])
    _assert_one_line_error(result, "database")
    assert "secret" not in result.output


def test_ctrl_c_before_a_server_is_up_stops_it_without_a_resume_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server ends with Ctrl-C; there is no job to resume, so no resume command is printed."""
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("heimdall.service.server.serve", interrupted)
    result = runner.invoke(app, ["serve", "--port", "8765"])
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == "error: interrupted; stopped"
