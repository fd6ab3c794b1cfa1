"""One request type per job owns its settings: the CLI, the API bodies and the seeds' facade
are views of it, and these tests fail when one of them drifts (a field missing, one extra,
another default or help text)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError

from heimdall.api import TrainingPipeline
from heimdall.cli import app
from heimdall.errors import InputError
from heimdall.requests import (
    EvaluateRequest,
    ExportRequest,
    GenerateRequest,
    TrainRequest,
    body_fields,
    fields_on,
    option_name,
    setting,
)
from heimdall.service.schemas import EvaluateIn, GenerateIn, TrainIn

#: Options of a command that fill no request field (output format, progress, mode switches).
CLI_ONLY = {
    "train": {"export_only", "as_json", "quiet"},
    "generate": {"workers", "audio_dir", "as_json", "quiet"},
    "export": {"as_json", "quiet"},
    "evaluate": {"report", "as_json", "quiet"},
}


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _cli_name(field: dataclasses.Field[Any]) -> str:
    return field.metadata.get("cli_name") or field.name


def _options(command: str) -> dict[str, Any]:
    return {p.name: p for p in _command(command).params if p.name not in CLI_ONLY[command]}


@pytest.mark.parametrize(
    ("command", "request_type"),
    [("train", TrainRequest), ("generate", GenerateRequest), ("export", ExportRequest), ("evaluate", EvaluateRequest)],
)
def test_cli_options_are_the_request_fields(command: str, request_type: type) -> None:
    options = _options(command)
    fields = fields_on(request_type, "cli")
    by_flag = {flag: name for name, p in options.items() for flag in p.opts}
    assert sorted(by_flag.get(option_name(f), _cli_name(f)) for f in fields) == sorted(options)
    for f in fields:
        param = options[by_flag.get(option_name(f), _cli_name(f))]
        if f.default is not dataclasses.MISSING and param.default is not None:
            # A file option (network, scenario) has no default of its own to compare.
            assert param.default == f.default, (command, f.name, param.default, f.default)
    if request_type is TrainRequest:
        # Generated from the request: same help for every option.
        for f in fields:
            assert options[by_flag[option_name(f)]].help == f.metadata["help"], f.name


def test_api_training_body_is_the_request_s_api_fields() -> None:
    api = fields_on(TrainRequest, "api")
    assert set(TrainIn.model_fields) == {f.name for f in api}
    for f in api:
        model_field = TrainIn.model_fields[f.name]
        if f.name != "dataset":  # required in a body
            assert model_field.default == f.default, f.name
        assert model_field.description == f.metadata["help"]
    assert set(EvaluateIn.model_fields) == {f.name for f in fields_on(EvaluateRequest, "api")}
    # The generation body spells some fields otherwise (MHz, transmitter shortcuts, a name
    # shown as typed), each declared on the request; everything else is the request's.
    named = {n for f in fields_on(GenerateRequest, "api") for n in _api_names(f)}
    assert named == set(GenerateIn.model_fields)


def _api_names(field: dataclasses.Field[Any]) -> tuple[str, ...]:
    name = field.metadata.get("api_name") or field.name
    return name if isinstance(name, tuple) else (name,)


def test_facade_takes_exactly_the_request_s_facade_fields(tmp_path: Path) -> None:
    facade = {f.name for f in fields_on(TrainRequest, "facade")}
    assert TrainingPipeline.OPTIONS == facade
    for f in fields_on(TrainRequest, "facade"):
        assert TrainingPipeline(**{f.name: f.default}).options == {f.name: f.default}
    with pytest.raises(InputError, match="export"):
        TrainingPipeline(export=False)


def test_a_new_field_appears_in_the_api_body_and_the_facade() -> None:
    """What makes the views follow: the API body and the facade are generated from the type."""

    @dataclasses.dataclass(frozen=True)
    class Wider(TrainRequest):
        label_smoothing: float = setting(0.0, help="New.", ge=0.0, lt=1.0)

    assert body_fields(Wider)["label_smoothing"][1].default == 0.0
    assert "label_smoothing" in {f.name for f in fields_on(Wider, "facade")}
    assert "label_smoothing" in {f.name for f in fields_on(Wider, "cli")}  # so the CLI test above would fail


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("batch_size", 0), ("learning_rate", 1.0), ("weight_decay", -0.1), ("dropout", 1.0),
     ("validation_split", 0.0), ("hidden_dim", 4), ("num_layers", 17), ("num_threads", 0), ("seed", -1),
     ("precision", "8-true"), ("accelerator", "tpu"), ("spectrogram_encoder", "huge")],
)
def test_one_check_refuses_a_value_on_every_surface(field: str, value: Any) -> None:
    """The same bound refuses a value in the CLI's request (an InputError naming the flag)
    and in the API body (a 422)."""
    flag = option_name(next(f for f in dataclasses.fields(TrainRequest) if f.name == field))
    with pytest.raises(InputError, match=flag):
        TrainRequest(dataset="d", **{field: value}).validate()
    with pytest.raises(ValidationError):
        TrainIn(dataset="d", **{field: value})


def test_requests_are_stored_and_read_back_as_is() -> None:
    train = TrainRequest(dataset="d", epochs=3, checkpoint=Path("/x/last.ckpt"), given=frozenset({"epochs"}))
    stored = json.loads(json.dumps(train.to_json()))
    assert "given" not in stored and stored["checkpoint"] == "/x/last.ckpt"
    assert TrainRequest.from_json(stored) == dataclasses.replace(train, given=None)
    assert TrainRequest.from_job_params({"spec": stored, "executor": "embedded"}).epochs == 3
    body = GenerateIn(name="Flow Set", num_samples=10, frequency_mhz=433.0, tx_power_dbm=[10, 20],
                      network={"receivers": [{"receiver_id": "a", "lat_deg": 45.0, "lon_deg": 9.0}]})
    generate = body.to_request()
    assert GenerateRequest.from_json(json.loads(json.dumps(generate.to_json()))) == generate
    scenario, network = generate.build()
    assert generate.name == "flow-set" and generate.resume
    assert network.frequency_hz == 433e6 and network.ids == ("a",)
    assert (scenario.tx_power_min_dbm, scenario.tx_power_max_dbm) == (10, 20)
    with pytest.raises(InputError, match="unknown TrainRequest field"):
        TrainRequest.from_json({"dataset": "d", "n_mels": 128})
    with pytest.raises(InputError, match="either --checkpoint"):
        ExportRequest().validate()
    with pytest.raises(InputError, match="--split must be"):
        EvaluateRequest(model="m", dataset="d", split="every").validate()  # type: ignore[arg-type]


def test_the_model_card_settings_come_from_the_stored_request() -> None:
    stored = {"spec": TrainRequest(dataset="d", epochs=7, learning_rate=1e-3).to_json()}
    card = TrainRequest.from_job_params(stored).card_settings()
    assert card["epochs"] == 7 and card["learning_rate"] == 1e-3 and "hidden_dim" not in card
    # Rows written before requests were stored whole kept the fields at the top level.
    assert TrainRequest.from_job_params({"epochs": 5, "result": {}}).card_settings()["epochs"] == 5
