"""Int8 export on a small trained model: parity report, error change, variants, compare, versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.align import align_samples
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError
from heimdall.export.localizer import Localizer
from heimdall.pipelines import Context, ExportResult, TrainRequest, evaluate, export, generate, open_context, train
from heimdall.pipelines.models import COMPARED_FIELDS, compare, evaluate_localizer
from heimdall.serving.models import list_models
from heimdall.settings import Settings

pytestmark = pytest.mark.slow

DATASET = "qset"
runner = CliRunner()


@dataclass(frozen=True)
class Exports:
    home: Path
    plain: ExportResult  # v1: float only
    quantized: ExportResult  # v2: the same checkpoint with --quantize int8


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    home = tmp_path_factory.mktemp("quantize") / "home"
    ctx = open_context(Settings(home=home))
    generate(ctx, DATASET, 3000, seed=11)
    trained = train(ctx, TrainRequest(dataset=DATASET, epochs=3, batch_size=128, hidden_dim=32, num_layers=1))
    plain = export(ctx, Path(trained.best_checkpoint))
    quantized = export(ctx, Path(trained.best_checkpoint), quantize="int8")
    ctx.close()
    return Exports(home, plain, quantized)


@pytest.fixture
def qctx(exports: Exports, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A context on the module's home, which is also what the CLI reads."""
    for name in ("HEIMDALL_DATABASE_URL", "HEIMDALL_ARTIFACTS_DIR", "HEIMDALL_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEIMDALL_HOME", str(exports.home))
    ctx = open_context(Settings())
    yield ctx
    ctx.close()


def _cli(args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_int8_bundle_carries_its_parity_report_and_loses_little_accuracy(exports: Exports) -> None:
    report = exports.quantized.quantization
    assert report is not None and exports.plain.quantization is None
    bundle = Path(exports.quantized.bundle)
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["variants"]["int8"]["file"] == "model.int8.onnx"
    assert config["variants"]["int8"]["parity"] == report
    assert json.loads((bundle / "metrics.json").read_text())["quantization"] == report
    assert report["int8_size_bytes"] == (bundle / "model.int8.onnx").stat().st_size
    assert report["int8_size_bytes"] < report["float_size_bytes"]
    # The float figures are the bundle's own test evaluation (same checkpoint as v1).
    assert report["float_median_error_m"] == pytest.approx(exports.plain.evaluation["median_error_m"], rel=1e-9)
    assert report["split"] == "test" and report["n"] == exports.plain.evaluation["n"]
    # It did quantise (outputs moved), but by much less than the model's own error, and the
    # test-split error changed by under 5 %.
    float_median = report["float_median_error_m"]
    assert 0 < report["max_abs_position_diff_m"] < float_median
    assert report["median_error_change_m"] == pytest.approx(report["int8_median_error_m"] - float_median)
    assert abs(report["median_error_change_m"]) < 0.05 * float_median
    assert abs(report["p90_error_change_m"]) < 0.05 * report["float_p90_error_m"]


def test_localizer_loads_the_int8_variant_and_refuses_missing_ones(exports: Exports, qctx: Context) -> None:
    bundle = Path(exports.quantized.bundle)
    float_model, int8_model = Localizer.from_bundle(bundle), Localizer.from_bundle(bundle, variant="int8")
    assert int8_model.name.endswith("+int8") and int8_model.variant == "int8"
    reader = DatasetReader(qctx.store, DATASET)
    test = reader.load("test")
    samples = align_samples(test, reader.manifest.reference, float_model.reference_point,
                            reader.manifest.station_ids, float_model.station_ids)
    samples = samples.select(np.arange(min(len(samples), 512)))
    difference = np.abs(int8_model.predict(samples).position_m - float_model.predict(samples).position_m).max()
    assert difference == pytest.approx(exports.quantized.quantization["max_abs_position_diff_m"], rel=1e-3)
    with pytest.raises(InputError, match="has no int8 variant"):
        Localizer.from_bundle(exports.plain.bundle, variant="int8")
    with pytest.raises(InputError, match="unknown model variant"):
        Localizer.from_bundle(bundle, variant="fp16")
    registry = Localizer.from_registry("models:/heimdall-localizer@latest", qctx.settings, variant="int8")
    assert registry.name == "models:/heimdall-localizer@latest+int8"


def test_evaluate_of_the_int8_variant_matches_the_report(exports: Exports, qctx: Context) -> None:
    summary = evaluate(qctx, "models:/heimdall-localizer/2", DATASET, variant="int8")
    assert summary["median_error_m"] == pytest.approx(exports.quantized.quantization["int8_median_error_m"], rel=1e-9)
    assert summary["model"].endswith("+int8")


def test_compare_equals_two_separate_evaluations(exports: Exports, qctx: Context) -> None:
    a, b = "models:/heimdall-localizer/1", "models:/heimdall-localizer/2"
    result = compare(qctx, a, b, DATASET, variant_b="int8")
    alone_a = evaluate(qctx, a, DATASET)
    alone_b = evaluate(qctx, b, DATASET, variant="int8")
    for side, alone in (("a", alone_a), ("b", alone_b)):
        assert result[side]["model"] == alone["model"]
        for key in COMPARED_FIELDS:
            assert result[side][key] == pytest.approx(alone[key], rel=1e-12), key
    # The paired figures, recomputed from the per-sample errors of each model.
    reader = DatasetReader(qctx.store, DATASET)
    errors_a = evaluate_localizer(Localizer.from_bundle(exports.plain.bundle), reader, "test").errors_m["model"]
    errors_b = evaluate_localizer(Localizer.from_bundle(exports.quantized.bundle, "int8"), reader, "test").errors_m["model"]
    paired = result["paired"]
    assert paired["n"] == alone_a["n"]
    assert paired["median_error_difference_m"] == pytest.approx(float(np.median(errors_a - errors_b)))
    assert paired["share_a_better"] == pytest.approx(float(np.mean(errors_a < errors_b)))
    assert 0 < paired["share_a_better"] + paired["share_b_better"] <= 1
    same = compare(qctx, a, a, DATASET)["paired"]
    assert same["median_error_difference_m"] == 0 and same["share_a_better"] == 0 == same["share_b_better"]
    code, stdout, _ = _cli(["models", "compare", a, b, "--dataset", DATASET, "--variant-b", "int8", "--json"])
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1]) == result


def test_semantic_versions_latest_and_staging(exports: Exports, qctx: Context) -> None:
    assert (exports.plain.semantic_version, exports.quantized.semantic_version) == ("v1.0.0", "v1.1.0")
    config = yaml.safe_load((Path(exports.quantized.bundle) / "config.yaml").read_text())
    assert config["semantic_version"] == "v1.1.0" and config["version"] == 2
    rows = {row["version"]: row for row in list_models(qctx)}
    assert rows[1]["semantic_version"] == "v1.0.0" and rows[2]["semantic_version"] == "v1.1.0"
    assert rows[2]["latest"] and not rows[1]["latest"]
    code, stdout, _ = _cli(["models", "promote", "heimdall-localizer", "1", "--alias", "staging", "--json"])
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["reference"] == "models:/heimdall-localizer@staging"
    assert Localizer.from_registry("models:/heimdall-localizer@staging", qctx.settings).config["semantic_version"] == "v1.0.0"
    code, _, stderr = _cli(["models", "promote", "heimdall-localizer", "1", "--alias", "latest"])
    assert code == 1 and "always names the newest version" in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--version", "v1.1.0"], "version v1.1.0 already exists"),
        (["--version", "3"], "expected v{major}.{minor}.{patch}"),
        (["--quantize", "int4"], "unknown quantisation 'int4'"),
    ],
)
def test_export_refuses_bad_versions_and_quantisations(exports: Exports, qctx: Context, args: list[str], fragment: str) -> None:
    # Checked before the checkpoint is even read.
    code, _, stderr = _cli(["export", "--checkpoint", "nowhere.ckpt", *args])
    assert code == 1 and stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1
    assert fragment in stderr
    assert len(list_models(qctx)) == 2, "nothing was registered"
