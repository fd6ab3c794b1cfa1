"""Training flags: precision, devices and strategy are validated; bf16-mixed trains and exports float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError
from heimdall.export.localizer import Localizer
from heimdall.pipelines import TrainRequest, export, generate, train
from heimdall.training.trainer import check_hardware


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"precision": "8-true"}, "--precision must be"),
        ({"strategy": "fsdp"}, "--strategy must be"),
        ({"devices": 0}, "--devices and --num-nodes"),
        ({"num_nodes": 0}, "--devices and --num-nodes"),
        ({"num_workers": -1}, "--num-workers"),
        ({"num_threads": 0}, "--threads"),
    ],
)
def test_request_rejects_bad_flags(fields: dict, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        TrainRequest(dataset="d", **fields).validate()


def test_hardware_check_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("heimdall.training.trainer._cuda_available", lambda: False)
    with pytest.raises(InputError, match="16-mixed needs a GPU"):
        check_hardware("cpu", "16-mixed", 1)
    with pytest.raises(InputError, match="16-mixed needs a GPU"):
        check_hardware("auto", "16-mixed", 1)
    with pytest.raises(InputError, match="no CUDA device"):
        check_hardware("gpu", "32-true", 1)
    check_hardware("cpu", "bf16-mixed", 2)  # CPU bf16 autocast and CPU DDP are fine


def test_cli_16_mixed_on_cpu_is_one_error_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("heimdall.training.trainer._cuda_available", lambda: False)
    result = CliRunner().invoke(app, ["train", "--dataset", "d", "--precision", "16-mixed"], catch_exceptions=False)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: --precision 16-mixed needs a GPU; use bf16-mixed or 32-true on CPU")


@pytest.mark.slow
def test_bf16_mixed_trains_checkpoints_and_exports_float32(ctx) -> None:
    generate(ctx, "bf", 1500, seed=4)
    threads_before = torch.get_num_threads()
    result = train(ctx, TrainRequest(dataset="bf", epochs=1, batch_size=128, hidden_dim=32, num_layers=1, precision="bf16-mixed", num_threads=1))
    assert result.status == "completed" and result.epochs_run == 1
    assert torch.get_num_threads() == threads_before  # --threads applies to the run only
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    # Mixed precision computes in bf16 but keeps float32 master weights.
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())
    exported = export(ctx, Path(result.best_checkpoint))
    graph = onnx.load(exported.onnx).graph
    float_ios = [io for io in [*graph.input, *graph.output] if io.name not in ("rx_id", "heard", "present")]
    assert float_ios and all(io.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for io in float_ios)
    # The float32 graph reproduces the PyTorch network (metres, over 250 km of network).
    assert exported.max_abs_diff < 0.5
    test = DatasetReader(ctx.store, "bf").load("test")
    predictions = Localizer.from_bundle(exported.bundle).predict(test)
    errors_m = np.linalg.norm(predictions.position_m - test.tx_position_m, axis=1)
    assert np.all(np.isfinite(errors_m)) and np.median(errors_m) < 200_000.0


def test_queued_job_refuses_ddp(ctx) -> None:
    from heimdall.jobs.specs import job_request

    with pytest.raises(InputError, match="one process"):
        job_request(ctx, TrainRequest(dataset="d", devices=2))
    request = job_request(ctx, TrainRequest(dataset="d", precision="bf16-mixed", num_threads=1))
    assert request.precision == "bf16-mixed" and request.num_threads == 1 and request.devices == 1


def test_api_training_body_reaches_the_training_request(ctx) -> None:
    """Every training field the API accepts arrives in the `TrainRequest` a worker runs, and
    the API refuses what training would refuse (an unknown encoder, dropout >= 1)."""
    from pydantic import ValidationError

    from heimdall.jobs.specs import job_request
    from heimdall.service.schemas import TrainIn

    body = TrainIn(dataset="d", weight_decay=0.02, dropout=0.1, spectrogram_encoder="nano", hidden_dim=64, num_layers=1)
    request = job_request(ctx, body.to_request())
    assert (request.weight_decay, request.dropout, request.spectrogram_encoder) == (0.02, 0.1, "nano")
    assert (request.hidden_dim, request.num_layers, request.checkpoint) == (64, 1, None)
    for bad in ({"spectrogram_encoder": "huge"}, {"dropout": 1.0}, {"weight_decay": -0.1}):
        with pytest.raises(ValidationError):
            TrainIn(dataset="d", **bad)
