"""Rollout of a new model version in `POST /v1/localize`: canary share and shadow model.

- Canary: `settings.canary_fraction` of the requests that name no model are answered by
  `settings.canary_model` instead of the production model. The choice is a hash of the
  request's content, so it is deterministic (the same request always meets the same
  model) and, over many different requests, a Bernoulli draw with that probability.
- Shadow: `settings.shadow_model` localises the same transmission after the answer is
  computed; its position, the distance between the two positions and its sigma are logged
  as one structured line (logger `heimdall.rollout`, INFO) and returned to the caller for
  metrics. It never changes the response and cannot fail the request.

Both apply only to requests that name no model: a request naming one gets exactly that one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from heimdall.data.measurements import MeasurementTable
from heimdall.errors import ConfigError
from heimdall.geo import haversine_m
from heimdall.serving.models import LocalizerCache, localize_one
from heimdall.settings import Settings
from heimdall.tracking import parse_model_reference

__all__ = ["Role", "Answer", "ShadowOutcome", "Rollout", "request_share"]

log = logging.getLogger("heimdall.rollout")

Role = Literal["production", "canary", "explicit"]


def request_share(key: str) -> float:
    """A number in [0, 1) fixed by `key` and spread uniformly over keys (SHA-256 based)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Answer:
    """The response body and which model gave it."""

    body: dict[str, Any]
    role: Role


@dataclass(frozen=True)
class ShadowOutcome:
    """What the shadow model said of a request the served model answered."""

    served_model: str
    shadow_model: str
    distance_m: float  # great-circle distance between the two positions
    shadow_sigma_major_m: float


class Rollout:
    """Chooses the model of each request and runs the shadow; built once per app."""

    def __init__(self, cache: LocalizerCache, settings: Settings) -> None:
        for field in ("shadow_model", "canary_model"):
            reference = getattr(settings, field)
            if reference is not None:
                try:
                    parse_model_reference(reference)
                except ConfigError as exc:
                    raise ConfigError(f"HEIMDALL_{field.upper()}: {exc}") from exc
        if settings.canary_fraction > 0 and settings.canary_model is None:
            raise ConfigError("HEIMDALL_CANARY_FRACTION > 0 needs HEIMDALL_CANARY_MODEL")
        self.cache = cache
        self.shadow_model = settings.shadow_model
        self.canary_model = settings.canary_model
        self.canary_fraction = settings.canary_fraction

    def choose(self, requested: str | None, request_key: str) -> tuple[str | None, Role]:
        """The reference to serve (None: the default model) and its role."""
        if requested is not None:
            return requested, "explicit"
        if self.canary_model is not None and request_share(request_key) < self.canary_fraction:
            return self.canary_model, "canary"
        return None, "production"

    def localize(self, requested: str | None, request_key: str, table: MeasurementTable) -> Answer:
        """Answer one transmission with the model the rollout picks for it."""
        reference, role = self.choose(requested, request_key)
        localizer, exact = self.cache.get(reference)
        return Answer(localize_one(localizer, table, exact), role)

    def wants_shadow(self, answer: Answer) -> bool:
        return self.shadow_model is not None and answer.role != "explicit"

    def shadow(self, table: MeasurementTable, answer: Answer) -> ShadowOutcome | None:
        """Run the shadow model on `table`; log and return its disagreement (None on failure).

        Any error is logged, never raised: the shadow must not be able to fail a request.
        """
        if self.shadow_model is None:
            return None
        try:
            localizer, exact = self.cache.get(self.shadow_model)
            _ids, predictions = localizer.localize_table(table)
        except Exception as exc:  # noqa: BLE001 - a shadow failure is logged, never raised
            log.warning("shadow model %s failed: %s: %s", self.shadow_model, type(exc).__name__, exc)
            return None
        lat, lon = float(predictions.lat_deg[0]), float(predictions.lon_deg[0])
        outcome = ShadowOutcome(
            served_model=answer.body["model"],
            shadow_model=exact,
            distance_m=float(haversine_m(answer.body["lat"], answer.body["lon"], lat, lon)),
            shadow_sigma_major_m=float(predictions.sigma_major_m[0]),
        )
        log.info(
            json.dumps(
                {
                    "event": "shadow",
                    "served_model": outcome.served_model,
                    "served_lat": answer.body["lat"],
                    "served_lon": answer.body["lon"],
                    "shadow_model": outcome.shadow_model,
                    "shadow_lat": round(lat, 7),
                    "shadow_lon": round(lon, 7),
                    "shadow_sigma_major_m": round(outcome.shadow_sigma_major_m, 2),
                    "distance_m": round(outcome.distance_m, 2),
                }
            )
        )
        return outcome
