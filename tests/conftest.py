"""Shared fixtures: an isolated HEIMDALL_HOME, a context, and a small trained model."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from heimdall.pipelines import Context, TrainRequest, export, generate, open_context, train
from heimdall.settings import Settings

SHARED_TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


@pytest.fixture(autouse=True)
def _trust_the_test_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's TestClient sends `Host: testserver`; trust it beside the loopback names.

    Servers started as subprocesses (uvicorn on 127.0.0.1) get a clean environment and keep
    the default list; tests of the host check pass `trusted_hosts` explicitly.
    """
    monkeypatch.setenv("HEIMDALL_TRUSTED_HOSTS", "localhost,127.0.0.1,::1,testserver")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HEIMDALL_HOME for one test (also what the CLI will read)."""
    path = tmp_path / "heimdall-home"
    monkeypatch.setenv("HEIMDALL_HOME", str(path))
    # MLflow writes MLFLOW_TRACKING_URI into the environment when a run starts.
    for name in ("HEIMDALL_DATABASE_URL", "HEIMDALL_ARTIFACTS_DIR", "HEIMDALL_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def ctx(home: Path) -> Context:
    return open_context(Settings(home=home))


@pytest.fixture(scope="session")
def reference_values() -> dict:
    path = SHARED_TESTDATA / "reference_values.json"
    if not path.is_file():
        pytest.fail(f"reference values not found at {path} (shared/ must sit beside the repo)")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class TrainedModel:
    home: Path
    dataset: str
    checkpoint: Path
    last_checkpoint: Path
    bundle: Path
    mlflow_run_id: str
    job_id: str
    epochs_run: int
    max_abs_diff: float
    evaluation: dict


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A small dataset, a short training run and its exported bundle (built once per session)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    context = open_context(Settings(home=home))
    generate(context, "small", 3000, seed=5)
    result = train(context, TrainRequest(dataset="small", epochs=3, batch_size=128, hidden_dim=32, num_layers=1))
    exported = export(context, Path(result.best_checkpoint))
    return TrainedModel(
        home=home,
        dataset="small",
        checkpoint=Path(result.best_checkpoint),
        last_checkpoint=Path(result.checkpoint),
        bundle=Path(exported.bundle),
        mlflow_run_id=str(result.mlflow_run_id),
        job_id=result.job_id,
        epochs_run=result.epochs_run,
        max_abs_diff=exported.max_abs_diff,
        evaluation=exported.evaluation,
    )


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C as a command's process has it (KeyboardInterrupt), for the test's duration: an
    earlier test in this process may have left it ignored (Lightning ignores it after an
    interrupted fit)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
