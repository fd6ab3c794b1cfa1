"""Request and response bodies of the API (pydantic): validation happens here, once."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, create_model, field_validator, model_validator

from heimdall.data.measurements import RSS_RANGE_DBM, RX_ALT_RANGE_M, SNR_RANGE_DB, MeasurementTable
from heimdall.errors import InputError
from heimdall.names import NAME_PATTERN, to_slug
from heimdall.requests import EvaluateRequest, GenerateRequest, TrainRequest, body_fields

__all__ = [
    "NAME_PATTERN",
    "Name",
    "ModelRef",
    "ReceiverIn",
    "NetworkIn",
    "GenerateIn",
    "TrainIn",
    "JobAccepted",
    "ProgressOut",
    "JobOut",
    "JobList",
    "PromoteIn",
    "EvaluateIn",
    "MeasurementIn",
    "LocalizeIn",
    "LocalizeOut",
]

#: Names of datasets and models in URLs and bodies: no dots or slashes, so never a path
#: (the one rule of `heimdall.names`, shared with the CLI).
MODEL_REF_PATTERN = r"^models:/[a-z0-9][a-z0-9_-]{0,63}(@[a-z][a-z0-9_-]{0,31}|/([0-9]{1,9}|latest))$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
INIT_FROM_PATTERN = rf"^({_UUID}|models:/[a-z0-9][a-z0-9_-]{{0,63}}/[0-9]{{1,9}})$"
# Printable text without control characters (ids end up in logs and GeoJSON).
_TEXT = r"^[^\x00-\x1f\x7f]+$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ModelRef = Annotated[str, StringConstraints(pattern=MODEL_REF_PATTERN)]
Alias = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN)]
ReceiverId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=_TEXT)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, description="WGS84 longitude, degrees")]
PowerDbm = Annotated[float, Field(ge=RSS_RANGE_DBM[0], le=RSS_RANGE_DBM[1])]


class _Body(BaseModel):
    """Unknown keys are errors (a misspelt key must not fall back to a default); no NaN/inf."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReceiverIn(_Body):
    receiver_id: ReceiverId
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_TEXT)] | None = None
    lat_deg: Latitude
    lon_deg: Longitude
    alt_m: Annotated[float, Field(ge=-500.0, le=10_000.0)] = 0.0
    antenna_gain_dbi: Annotated[float, Field(ge=-30.0, le=60.0)] = 0.0
    noise_figure_db: Annotated[float, Field(ge=0.0, le=40.0)] = 6.0


class NetworkIn(_Body):
    name: Name = "custom"
    receivers: Annotated[list[ReceiverIn], Field(min_length=1, max_length=256)]
    bandwidth_hz: Annotated[float, Field(gt=0.0, le=1e9)] | None = None


class _GenerateBody(_Body):
    """`POST /v1/training/synthetic/generate`: `GenerateRequest`'s API fields, and the
    body's own spellings of the others (MHz, transmitter shortcuts for the scenario).

    `name` may be a display name ("Test Dataset 1k"): it is stored as its slug
    ("test-dataset-1k"), the name the dataset's URLs use.
    """

    frequency_mhz: Annotated[float, Field(gt=0.0, le=100_000.0)] | None = None
    tx_power_dbm: PowerDbm | Annotated[list[PowerDbm], Field(min_length=2, max_length=2)] | None = Field(
        None, description="Transmit power in dBm, fixed or a [min, max] range drawn uniformly"
    )
    min_snr_db: Annotated[float, Field(ge=-50.0, le=100.0)] | None = None
    min_receivers: Annotated[int, Field(ge=1, le=256)] | None = None

    @field_validator("name", check_fields=False)
    @classmethod
    def _slug(cls, value: str) -> str:
        try:
            return to_slug(value, "dataset")
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tx_power_dbm")
    @classmethod
    def _ordered_range(cls, value: Any) -> Any:
        if isinstance(value, list) and value[0] > value[1]:
            raise ValueError("tx_power_dbm range must be [min, max] with min <= max")
        return value

    def to_request(self) -> GenerateRequest:
        """The generation this body asks for: the transmitter shortcuts become scenario
        fields, MHz becomes Hz, and the inline network travels in the request (a queued
        job resumes what an interrupted run of it staged)."""
        scenario: dict[str, Any] = {}
        if self.tx_power_dbm is not None:
            low, high = self.tx_power_dbm if isinstance(self.tx_power_dbm, list) else (self.tx_power_dbm,) * 2
            scenario.update(tx_power_min_dbm=low, tx_power_max_dbm=high)
        if self.min_snr_db is not None:
            scenario["min_snr_db"] = self.min_snr_db
        if self.min_receivers is not None:
            scenario["min_receivers"] = self.min_receivers
        network = None
        if self.network is not None:
            network = self.network.model_dump(exclude_none=True)
            for receiver in network["receivers"]:
                receiver.setdefault("name", receiver["receiver_id"])
        return GenerateRequest(
            name=self.name,
            num_samples=self.num_samples,
            seed=self.seed,
            description=self.description,
            kind=self.kind,
            split_mode=self.split_mode,
            scenario=scenario,
            network=network,
            frequency_hz=self.frequency_mhz * 1e6 if self.frequency_mhz is not None else None,
            resume=True,
        )


#: Generated from `GenerateRequest`; a queued job simulates feature datasets only, and its
#: size is bounded (HEIMDALL_MAX_JOB_SAMPLES bounds it further).
GenerateIn = create_model(
    "GenerateIn",
    __base__=_GenerateBody,
    **body_fields(
        GenerateRequest,
        types={
            "name": Annotated[str, StringConstraints(min_length=1, max_length=128)],
            "num_samples": Annotated[int, Field(le=5_000_000)],
            "description": Annotated[str, StringConstraints(max_length=2000)] | None,
            "kind": Literal["features"],
            "network": NetworkIn | None,
        },
    ),
)


class _TrainBody(_Body):
    """`POST /v1/training/jobs` (and the seeds' `POST /train`): the API fields of
    `heimdall.requests.TrainRequest`, its defaults, bounds and allowed values."""

    @field_validator("devices", check_fields=False)
    @classmethod
    def _one_device(cls, value: int) -> int:
        if value != 1:
            raise ValueError(
                f"devices={value}: a queued training job trains in one process on one device; "
                "omit devices (or pass 1), or run `heimdall train --devices N` for multi-device DDP"
            )
        return value

    def to_request(self) -> TrainRequest:
        """The training request this body asks for, as a job row stores it."""
        return TrainRequest(**self.model_dump())


InitFrom = Annotated[str, StringConstraints(pattern=INIT_FROM_PATTERN)]
#: Generated from `TrainRequest`: a field added there appears here (tests/test_requests.py).
TrainIn = create_model(
    "TrainIn",
    __base__=_TrainBody,
    **body_fields(TrainRequest, types={"dataset": Name, "init_from": InitFrom | None}, required=frozenset({"dataset"})),
)


class JobAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str
    events_url: str


class ProgressOut(BaseModel):
    current: int
    total: int
    fraction: float | None
    message: str | None


class ModelRefOut(BaseModel):
    name: str
    version: int
    reference: str


class JobOut(BaseModel):
    job_id: str
    kind: str
    status: str
    dataset: str | None
    params: dict[str, Any]
    progress: ProgressOut
    metrics: dict[str, Any] | None
    result: dict[str, Any] | None
    model: ModelRefOut | None
    export_job_id: str | None
    stages: dict[str, Any] | None = Field(
        None, description="Training jobs: each stage (train, export) with its status and progress"
    )
    error: str | None
    pause_requested: bool
    cancel_requested: bool
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    status_url: str


class JobList(BaseModel):
    jobs: list[JobOut]


class PromoteIn(_Body):
    alias: Alias = "production"


class _EvaluateBody(_Body):
    def to_request(self, model: str) -> EvaluateRequest:
        """The evaluation of registry model `model` this body asks for."""
        return EvaluateRequest(model=model, **self.model_dump())


#: Generated from `EvaluateRequest` (the model is named by the URL).
EvaluateIn = create_model("EvaluateIn", __base__=_EvaluateBody, **body_fields(EvaluateRequest, types={"dataset": Name}))


class MeasurementIn(_Body):
    """What one receiver reported; `rss_dbm` null = listened and heard nothing."""

    receiver_id: ReceiverId
    rx_lat: Latitude
    rx_lon: Longitude
    rx_alt_m: Annotated[float, Field(ge=RX_ALT_RANGE_M[0], le=RX_ALT_RANGE_M[1])] | None = None
    rss_dbm: PowerDbm | None = None
    snr_db: Annotated[float, Field(ge=SNR_RANGE_DB[0], le=SNR_RANGE_DB[1])] | None = None


def _seconds(moment: datetime | None) -> float | None:
    """Seconds since 1970-01-01 as the importers count them (aware times in UTC, naive ones as written)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return (moment - datetime(1970, 1, 1)).total_seconds()


class LocalizeIn(_Body):
    """`POST /v1/localize`: one transmission as heard by a set of receivers."""

    model: ModelRef | None = Field(
        None,
        description="Registry reference; default models:/heimdall-localizer@production, "
        "else the newest version while nothing is promoted",
    )
    measurements: Annotated[list[MeasurementIn], Field(min_length=1, max_length=1024)]
    timestamp: datetime | None = Field(
        None,
        description="When it was heard (ISO 8601; with a UTC offset read as UTC, without one as the "
        "training data's times were written). A radio map widens the ellipse of a transmission far in "
        "time from the ones it was trained on",
    )

    _table: MeasurementTable | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_transmission(self) -> LocalizeIn:
        # The measurement rules of files and requests alike (a 422 naming the problem).
        try:
            self._table = MeasurementTable.from_rows(self.measurements, "request", _seconds(self.timestamp))
        except InputError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def table(self) -> MeasurementTable:
        """The validated transmission as a `MeasurementTable`."""
        if self._table is None:  # built by model_construct, which skips validation
            self._table = MeasurementTable.from_rows(self.measurements, "request", _seconds(self.timestamp))
        return self._table


class LocalizeOut(BaseModel):
    lat: float
    lon: float
    sigma_major_m: float
    sigma_minor_m: float
    orientation_deg: float = Field(description="Major axis, degrees clockwise from north")
    ellipse95_major_m: float = Field(
        description="Major semi-axis of the ellipse sized to hold 95% of truths (measured on held-out data)"
    )
    ellipse95_minor_m: float = Field(description="Minor semi-axis of the 95% ellipse (same orientation)")
    n_receivers_heard: int
    out_of_area: bool = Field(
        False, description="The receivers or the answer lie outside the area the model was trained on"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="receivers_outside_training_area, position_outside_training_area, one_receiver_heard "
        "(the ellipse is widened for each); receivers_unknown_to_model (a heard receiver id the model "
        "was not fitted with: a new receiver or a misspelt id); receiver_moved_since_training (a fixed "
        "receiver listening more than 25 m from where the model was trained with it)",
    )
    model: str
    geojson: dict[str, Any]

