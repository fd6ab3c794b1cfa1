"""The seeds' Python API: TrainingPipeline(...).run(...) and export_and_register_model(...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.api import TrainingPipeline, export_and_register_model
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError
from heimdall.export.localizer import Localizer
from heimdall.pipelines import generate
from heimdall.settings import Settings


def test_unknown_options_and_non_integer_versions_are_refused(home: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_mels"):
        TrainingPipeline(n_mels=128)
    with pytest.raises(InputError, match="1.0.0-"):
        export_and_register_model(tmp_path / "x.ckpt", "m", "1.0.0-", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    # The seeds' data_dir: refused with what to use instead, not a bare TypeError.
    with pytest.raises(InputError, match=r"data_dir=.*not supported.*heimdall generate --name NAME.*run\(dataset=NAME\)"):
        TrainingPipeline(devices=1, settings=Settings(home=home)).run(data_dir="/tmp/heimdall_training_data")
    with pytest.raises(InputError, match="invalid model name"):
        export_and_register_model(tmp_path / "x.ckpt", "../m", "1.0.0")
    with pytest.raises(InputError, match="export_only needs checkpoint"):
        TrainingPipeline(settings=Settings(home=home)).run(export_only=True)
    with pytest.raises(InputError, match="--epochs"):
        TrainingPipeline(epochs=0, settings=Settings(home=home)).run(dataset="d")


@pytest.mark.slow
def test_training_pipeline_returns_checkpoint_onnx_run_and_metrics(ctx, home: Path, tmp_path: Path) -> None:
    generate(ctx, "seed-api", 1500, seed=7)
    settings = Settings(home=home)
    result = TrainingPipeline(epochs=2, batch_size=128, hidden_dim=16, num_layers=1, settings=settings).run(dataset="seed-api")

    # The seeds read the result like a dict.
    assert result["checkpoint_path"] == result.checkpoint_path and Path(result.checkpoint_path).is_file()
    assert Path(result["onnx_path"]).is_file()
    run = ctx.tracker.client.get_run(result["mlflow_run_id"])
    assert run.data.params["dataset"] == "seed-api" and run.data.params["model_hidden_dim"] == "16"
    metrics = result["final_metrics"]
    assert np.isfinite(metrics["val_loss"]) and metrics["val_median_error_m"] > 0
    # The ONNX file is the model that was evaluated: re-running it reproduces the test median.
    reader = DatasetReader(ctx.store, "seed-api")
    test = reader.load("test")
    localizer = Localizer.from_bundle(Path(result.bundle_path))
    errors_m = np.linalg.norm(localizer.predict(test).position_m - test.tx_position_m, axis=1)
    # The report measures on the ellipsoid, this in the local plane: equal within 1 %.
    assert np.median(errors_m) == pytest.approx(metrics["test_median_error_m"], rel=1e-2)
    assert result.model == "models:/heimdall-localizer/1"

    onnx_copy = tmp_path / "out" / "seed-model-3.onnx"
    exported = export_and_register_model(result.checkpoint_path, "seed-model", "3", onnx_copy, settings=settings)
    assert exported.semantic_version == "v3.0.0" and exported.registered == "models:/seed-model/1"
    assert Path(exported.onnx) == onnx_copy.resolve()
    assert onnx_copy.read_bytes() == (Path(exported.bundle) / "model.onnx").read_bytes()
    assert not list(onnx_copy.parent.glob(".*partial"))
    registered = Localizer.from_registry("models:/seed-model/1", settings)
    assert registered.config["name"] == "seed-model" and registered.config["semantic_version"] == "v3.0.0"
    with pytest.raises(InputError, match="already exists"):
        export_and_register_model(result.checkpoint_path, "seed-model", 3, settings=settings)
    # The seed's own call: a SemVer pre-release, and a display name turned into its slug.
    seeded = export_and_register_model(
        result.checkpoint_path, "Localization Net Test", "1.0.0-test", tmp_path / "localization-net-test-1.0.0-test.onnx",
        settings=settings,
    )
    assert seeded.semantic_version == "v1.0.0-test" and seeded.registered == "models:/localization-net-test/1"
    build = export_and_register_model(result.checkpoint_path, "localization-net-test", "1.0.0+build.1", settings=settings)
    assert build.semantic_version == "v1.0.0+build.1" and build.registered == "models:/localization-net-test/2"

    exported_only = TrainingPipeline(settings=settings).run(export_only=True, checkpoint=result.checkpoint_path)
    assert exported_only.mlflow_run_id == result.mlflow_run_id and exported_only.model == "models:/heimdall-localizer/2"
