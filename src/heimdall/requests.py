"""What each job asks for: one request type per job, the single owner of its settings.

`TrainRequest`, `GenerateRequest`, `ExportRequest` and `EvaluateRequest` declare every
field once, with its default, its allowed values (a `Literal`) or bounds, its help text and
the surfaces that expose it (`cli`, `api`, `facade`). The CLI options, the API bodies
(`service/schemas.py` builds them with `body_fields`) and the seeds' facade (`api.py`) are
views of these types; `tests/test_requests.py` fails when one of them drifts.

Requests are frozen dataclasses, JSON-ready through `to_json` / `from_json`: a queued job
stores its request as is in the job row and the worker reads it back as is.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from heimdall.errors import InputError
from heimdall.network import ReceiverNetwork, default_network

__all__ = [
    "SURFACES",
    "Accelerator",
    "Precision",
    "Strategy",
    "Estimator",
    "SpectrogramEncoder",
    "Split",
    "TrainRequest",
    "GenerateRequest",
    "ExportRequest",
    "EvaluateRequest",
    "fields_on",
    "option_name",
    "body_fields",
    "check_bounds",
]

#: Where a request's fields may appear: command-line options, API bodies, the seeds' facade.
SURFACES = frozenset({"cli", "api", "facade"})

Accelerator = Literal["cpu", "gpu", "auto"]
#: 32-true, or mixed precision: bf16-mixed (CPU or GPU), 16-mixed (GPU only).
Precision = Literal["32-true", "bf16-mixed", "16-mixed"]
#: Lightning strategy; "auto" is DDP when devices x nodes > 1 (gloo on CPU, NCCL on GPU).
Strategy = Literal["auto", "ddp", "ddp_spawn"]
#: "net" (LocalizationNet), "radio-map" (RadioMapNet) or "auto": the radio map for
#: measured datasets and simulations of a scenario fitted to measurements (it wins there,
#: docs/REAL_DATA.md), the network otherwise.
Estimator = Literal["auto", "net", "radio-map"]
SpectrogramEncoder = Literal["nano", "tiny", "small", "base", "large"]
Split = Literal["train", "val", "test", "all"]
DatasetKind = Literal["features", "iq"]
SplitModeName = Literal["random", "grid"]

_R = TypeVar("_R")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - the word typer and click use
    surfaces: frozenset[str] = SURFACES,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    flag: str | None = None,
    card: bool = False,
    **extra: Any,
) -> Any:
    """A request field: its default, help, bounds, the surfaces exposing it and, with
    `flag`, the CLI option that fills it when its name differs (`--threads`). `card`:
    shown on the model card. `extra`: `cli_name` / `api_name`, the parameter(s) that
    fill the field on that surface when named otherwise (a file, a unit, shortcuts)."""
    metadata = {"help": help, "surfaces": surfaces, "ge": ge, "gt": gt, "le": le, "lt": lt, "flag": flag, "card": card,
                **extra}
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def fields_on(cls: type, surface: str) -> list[dataclasses.Field[Any]]:
    """The fields of request type `cls` that `surface` (cli, api, facade) exposes."""
    return [f for f in dataclasses.fields(cls) if surface in f.metadata.get("surfaces", ())]


def option_name(f: dataclasses.Field[Any]) -> str:
    """The CLI flag of a field (`--batch-size`, or its declared `flag`)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _bounds_text(meta: Any, value: Any) -> str:
    """The bound `value` breaks, in words ("at least 1", "in (0, 1)", "positive")."""
    low = f"[{meta['ge']:g}" if meta["ge"] is not None else (f"({meta['gt']:g}" if meta["gt"] is not None else None)
    high = f"{meta['le']:g}]" if meta["le"] is not None else (f"{meta['lt']:g})" if meta["lt"] is not None else None)
    if low is not None and high is not None and (meta["le"] or meta["lt"]) <= 1:
        return f"in {low}, {high}"  # a fraction: both ends say what it is
    too_low = (meta["ge"] is not None and value < meta["ge"]) or (meta["gt"] is not None and value <= meta["gt"])
    if too_low:
        if meta["ge"] is not None:
            return f"at least {meta['ge']:g}"
        return "positive" if meta["gt"] == 0 else f"above {meta['gt']:g}"
    return f"at most {meta['le']:g}" if meta["le"] is not None else f"below {meta['lt']:g}"


def _allowed(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal` annotation (or `Literal | None`), else None."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return None


def check_bounds(request: Any) -> None:
    """InputError naming the flag of the first field of `request` off its bounds or values."""
    hints = typing.get_type_hints(type(request))
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if value is None:
            continue
        allowed = _allowed(hints[f.name])
        if allowed is not None and value not in allowed:
            choices = f"{', '.join(map(str, allowed[:-1]))} or {allowed[-1]}" if len(allowed) > 1 else str(allowed[0])
            raise InputError(f"{option_name(f)} must be {choices}, got {value!r}")
        meta = f.metadata
        if not any(meta.get(k) is not None for k in ("ge", "gt", "le", "lt")):
            continue
        ok = (
            (meta["ge"] is None or value >= meta["ge"]) and (meta["gt"] is None or value > meta["gt"])
            and (meta["le"] is None or value <= meta["le"]) and (meta["lt"] is None or value < meta["lt"])
        )
        if not ok:
            raise InputError(f"{option_name(f)} must be {_bounds_text(meta, value)}, got {value}")


def body_fields(cls: type, types: dict[str, Any] | None = None, required: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`pydantic.create_model` field definitions of `cls`'s API fields: same types, defaults,
    bounds, allowed values and descriptions. `types` replaces the type of some fields (the
    API's name patterns, narrower choices); fields in `required` lose their default. Fields
    with an `api_name` are left to the body, which spells them otherwise."""
    from pydantic import Field

    types = types or {}
    hints = typing.get_type_hints(cls, include_extras=True)
    definitions: dict[str, Any] = {}
    for f in fields_on(cls, "api"):
        meta = f.metadata
        if meta.get("api_name"):
            continue
        bounds = {k: meta[k] for k in ("ge", "gt", "le", "lt") if meta.get(k) is not None}
        kind = types.get(f.name, hints[f.name])
        if f.name in required or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            definitions[f.name] = (kind, Field(..., description=meta["help"], **bounds))
        elif f.default_factory is not dataclasses.MISSING:
            definitions[f.name] = (kind, Field(default_factory=f.default_factory, description=meta["help"], **bounds))
        else:
            definitions[f.name] = (kind, Field(f.default, description=meta["help"], **bounds))
    return definitions


def _to_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (frozenset, set, tuple)):
        return sorted(value) if isinstance(value, (frozenset, set)) else list(value)
    return value


class _Request:
    """JSON in and out, the same for every request type."""

    #: Fields that live in the process only (never stored in a job row).
    LOCAL: typing.ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """The request as JSON-ready data, as a job row stores it."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in self.LOCAL}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[_R], data: dict[str, Any]) -> _R:
        """The request `to_json` wrote; InputError for an unknown key."""
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InputError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        values = dict(data)
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            if value is not None and Path in typing.get_args(hints[name]):
                values[name] = Path(value)
        return cls(**values)


@dataclass(frozen=True)
class TrainRequest(_Request):
    """A training run: `heimdall train`, `POST /v1/training/jobs` and `TrainingPipeline(...)`
    (SI units). `init_from` is a checkpoint path for the CLI and the facade; an API job
    takes a training job id or `models:/NAME/VERSION` and its worker resolves it."""

    LOCAL: typing.ClassVar[frozenset[str]] = frozenset({"given", "progress_bar"})

    dataset: str | None = setting(None, help="Dataset name.", surfaces=frozenset({"cli", "api"}))
    epochs: int = setting(40, help="Maximum epochs.", ge=1, le=10_000, card=True)
    batch_size: int = setting(256, help="Samples per optimiser step.", ge=1, le=65_536, card=True)
    learning_rate: float = setting(2e-3, help="Peak AdamW learning rate.", gt=0.0, lt=1.0, card=True)
    weight_decay: float = setting(1e-4, help="AdamW weight decay.", ge=0.0, lt=1.0, card=True)
    warmup_epochs: int = setting(2, help="Epochs of linear learning-rate warm-up.", ge=0,
                                 surfaces=frozenset({"facade"}))
    validation_split: float | None = setting(None, help="Re-split train+val with this val share.", gt=0.0, lt=1.0,
                                             card=True)
    accelerator: Accelerator = setting("cpu", help="Where it trains: cpu, gpu or auto.")
    devices: int = setting(1, help="Devices (processes) per node; a queued job trains on one.", ge=1, card=True)
    num_nodes: int = setting(1, help="Machines in a DDP run.", ge=1, surfaces=frozenset({"cli", "facade"}))
    strategy: Strategy = setting("auto", help="auto, ddp or ddp_spawn (DDP: gloo on CPU, NCCL on GPU).",
                                 surfaces=frozenset({"cli", "facade"}))
    precision: Precision = setting("32-true", help="32-true, bf16-mixed or 16-mixed (16-mixed needs a GPU).", card=True)
    num_workers: int = setting(0, help="DataLoader worker processes.", ge=0, surfaces=frozenset({"cli", "facade"}))
    num_threads: int | None = setting(None, help="torch threads per process (default: one per core).", ge=1, le=256,
                                      flag="--threads")
    checkpoint: Path | None = setting(None, help="Checkpoint to resume or export.", surfaces=frozenset({"cli"}))
    resume_training: bool = setting(False, help="Continue --checkpoint's run with its settings (only --epochs may change).",
                                    surfaces=frozenset({"cli"}))
    init_from: str | None = setting(None, help="Checkpoint to fine-tune (API: a training job id or models:/NAME/VERSION).")
    seed: int = setting(0, help="Random seed.", ge=0, le=2**31 - 1, card=True)
    hidden_dim: int = setting(128, help="Width of the set model.", ge=8, le=2048)
    num_layers: int = setting(2, help="Attention blocks.", ge=1, le=16)
    dropout: float = setting(0.0, help="Dropout inside the set-attention blocks, in [0, 1).", ge=0.0, lt=1.0)
    spectrogram_encoder: SpectrogramEncoder | None = setting(
        None, help="ConvNeXt size of a spectrogram branch (iq datasets): nano, tiny, small, base or large; none: RSS only."
    )
    early_stopping_patience: int = setting(12, help="Epochs without a better val_loss before stopping.", ge=1,
                                           surfaces=frozenset({"facade"}))
    progress_bar: bool = setting(False, help="Lightning's own progress bar.", surfaces=frozenset({"facade"}))
    stream: bool | None = setting(None, help="Stream the training split shard by shard (None: when it is large).",
                                  surfaces=frozenset({"facade"}))
    estimator: Estimator = setting("auto", help="auto (radio map for measured datasets and simulations of a "
                                   "fitted scenario, the network otherwise), net or radio-map.",
                                   surfaces=frozenset({"cli", "facade"}))
    #: Export, evaluate and register the model as stages of a queued job (`heimdall train`
    #: does not export; the facade always does).
    export: bool = setting(True, help="Export, evaluate and register the model when training completes.",
                           surfaces=frozenset({"api"}))
    #: Fields the caller set on purpose (the CLI's flags given on the command line); None:
    #: those that differ from their defaults. A resumed run refuses a given field that
    #: contradicts its checkpoint and restores every other (`pipelines.resume`).
    given: frozenset[str] | None = setting(None, help="Fields set on purpose.", surfaces=frozenset())

    def validate(self) -> None:
        """One clear error per bad flag (InputError naming it)."""
        if self.devices < 1 or self.num_nodes < 1:
            raise InputError(f"--devices and --num-nodes must be at least 1, got {self.devices} and {self.num_nodes}")
        check_bounds(self)
        if self.estimator == "radio-map" and (self.init_from or self.spectrogram_encoder or self.resume_training):
            raise InputError("--estimator radio-map is fitted in one step from measurements: it takes no "
                             "--init-from, --spectrogram-encoder or --resume-training")
        if self.resume_training and self.checkpoint is None:
            raise InputError("--resume-training needs --checkpoint PATH")
        if self.dataset is None and not self.resume_training:
            raise InputError("--dataset is required (unless resuming from a checkpoint)")

    def card_settings(self) -> dict[str, Any]:
        """The settings a model card shows (fields declared `card`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("card")}

    @classmethod
    def stored_fields(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        """The request fields a training job row holds (under `spec`; rows written before
        requests were stored whole kept them at the top level)."""
        params = params or {}
        stored = params.get("spec", params)
        known = {f.name for f in dataclasses.fields(cls)} - cls.LOCAL
        return {k: v for k, v in stored.items() if k in known}

    @classmethod
    def from_job_params(cls, params: dict[str, Any] | None) -> TrainRequest:
        """The request stored in a training job row, read back as is."""
        return cls.from_json(cls.stored_fields(params))


@dataclass(frozen=True)
class GenerateRequest(_Request):
    """A dataset generation: `heimdall generate`, `POST /v1/training/synthetic/generate`.

    `network` is a receiver network in `ReceiverNetwork.to_dict`'s form (None: the default
    network); `frequency_hz` replaces its frequency. `scenario` holds `ScenarioConfig`
    fields. `resume` (the default for jobs): shards staged by an interrupted job of the
    same name and plan are kept, so re-submitting a job whose worker died finishes it with
    the same bytes.
    """

    name: str = setting(help="Dataset name (a display name becomes its slug).")
    num_samples: int = setting(help="Number of samples.", gt=0, flag="--samples", cli_name="samples")
    seed: int = setting(0, help="Random seed.", ge=0, le=2**31 - 1)
    description: str | None = setting(None, help="Free text.")
    kind: DatasetKind = setting("features", help="features or iq.")
    split_mode: SplitModeName = setting("random", help="random or grid.")
    #: The CLI reads it from a YAML/JSON file; the API body sets its transmitter fields.
    scenario: dict[str, Any] = setting({}, help="Simulation settings (ScenarioConfig fields).",
                                       api_name=("tx_power_dbm", "min_snr_db", "min_receivers"))
    #: The CLI reads it from a file; the API body carries it inline.
    network: dict[str, Any] | None = setting(None, help="Receiver network (ReceiverNetwork.to_dict form).")
    frequency_hz: float | None = setting(None, help="Carrier frequency, Hz (default: the network's).", gt=0.0,
                                         surfaces=frozenset({"api"}), api_name="frequency_mhz")
    #: Queued jobs always resume (a re-submitted job finishes what its dead worker began).
    resume: bool = setting(False, help="Keep the shards an interrupted run of the same plan staged.",
                           surfaces=frozenset({"cli"}))

    @classmethod
    def for_network(cls, network: ReceiverNetwork | None, **fields: Any) -> GenerateRequest:
        """A request for `network` (None: the default network)."""
        return cls(network=network.to_dict() if network is not None else None, **fields)

    def build(self) -> tuple[Any, ReceiverNetwork]:
        """The `ScenarioConfig` and `ReceiverNetwork` a queued job simulates (feature datasets
        only, so far); InputError if either is invalid."""
        from pydantic import ValidationError

        from heimdall.sim.scenario import ScenarioConfig

        if self.kind != "features":
            raise InputError(f"kind {self.kind!r} is not available to queued jobs yet; use 'features'")
        check_bounds(self)
        try:
            scenario = ScenarioConfig(**self.scenario)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"invalid scenario {'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}") from exc
        network = ReceiverNetwork.from_dict(self.network) if self.network is not None else default_network()
        if self.frequency_hz is not None:
            network = dataclasses.replace(network, frequency_hz=self.frequency_hz)
        return scenario, network


@dataclass(frozen=True)
class ExportRequest(_Request):
    """An export: a checkpoint (or, for a job, the best checkpoint of training job
    `source_job_id`) to an ONNX bundle, evaluated and registered. (The seeds'
    `export_and_register_model` keeps the seeds' argument names.)"""

    checkpoint: Path | None = setting(None, help="Training checkpoint (.ckpt).", surfaces=frozenset({"cli"}))
    source_job_id: str | None = setting(None, help="Training job whose best checkpoint is exported.",
                                        surfaces=frozenset())
    version: str | None = setting(None, help="SemVer, e.g. v1.2.0, 1.0.0-test or 1.0.0+build.1 (default: next minor).",
                                  surfaces=frozenset({"cli"}))
    quantize: Literal["int8"] | None = setting(None, help="Also write a quantised graph: int8.",
                                               surfaces=frozenset({"cli"}))

    def validate(self) -> None:
        """InputError unless exactly one source is named and the values are known."""
        if (self.checkpoint is None) == (self.source_job_id is None):
            raise InputError("an export needs either --checkpoint PATH or a training job")
        check_bounds(self)


@dataclass(frozen=True)
class EvaluateRequest(_Request):
    """An evaluation of a model on a dataset split."""

    #: The API names the model in its URL.
    model: str = setting(help="Bundle dir, models:/NAME@ALIAS or checkpoint.", surfaces=frozenset({"cli"}))
    dataset: str = setting(help="Dataset name.")
    split: Split = setting("test", help="test, val, train or all.")
    variant: Literal["float", "int8"] = setting("float", help="Graph of the bundle: float or int8.",
                                                 surfaces=frozenset({"cli"}))

    def validate(self) -> None:
        """InputError for an unknown split or variant."""
        check_bounds(self)
