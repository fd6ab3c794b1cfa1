"""Serving jobs: list and promote registered models, localise one transmission in-process.

`LocalizerCache` keeps exported models loaded (ONNX sessions, never checkpoints) so a
request costs one forward pass, not a bundle load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


from heimdall.data.measurements import MeasurementTable
from heimdall.errors import ConfigError, HeimdallError, InputError, NotFoundError
from heimdall.export.geojson import prediction_records, predictions_geojson
from heimdall.export.localizer import Localizer, ModelFileError
from heimdall.export.versions import SEMVER_TAG
from heimdall.jobs import repository as jobs
from heimdall.pipelines.context import Context
from heimdall.settings import Settings
from heimdall.storage.tables import ModelRecord
from heimdall.tracking import Tracker, parse_model_reference

__all__ = [
    "DEFAULT_ALIAS",
    "MeasurementRow",
    "LocalizerCache",
    "list_models",
    "model_show",
    "promote_model",
    "measurement_table",
    "localize_one",
]

log = logging.getLogger(__name__)

#: The alias the API serves when a request names no model.
DEFAULT_ALIAS = "production"
#: How long an alias -> version lookup is trusted (a promotion elsewhere shows up after this).
ALIAS_TTL_S = 10.0


@dataclass(frozen=True)
class _Registry:
    """What the registry says of one model name: aliases and semantic versions by version,
    and the newest version (the one `@latest` names)."""

    aliases: dict[int, list[str]]
    semantic: dict[int, str]
    latest: int


def _registry(ctx: Context, name: str) -> _Registry:
    return _Registry(
        ctx.tracker.version_aliases(name),
        ctx.tracker.version_tags(name, SEMVER_TAG),
        ctx.tracker.latest_version(name),
    )


def _model_view(record: ModelRecord, registry: _Registry) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "semantic_version": registry.semantic.get(record.version),
        "reference": f"models:/{record.name}/{record.version}",
        "aliases": registry.aliases.get(record.version, []),
        # `latest` is no registry alias but always the newest version; it moves by itself.
        "latest": record.version == registry.latest,
        "dataset": record.dataset_name,
        "job_id": record.job_id,
        "mlflow_run_id": record.mlflow_run_id,
        "parent_model": record.parent_model,
        "metrics": record.metrics or {},
        "created_at": record.created_at,
    }


def list_models(ctx: Context) -> list[dict[str, Any]]:
    """Every exported model version (the `models` table), newest first, with its aliases."""
    records = jobs.model_records(ctx.db)
    registries = {name: _registry(ctx, name) for name in {r.name for r in records}}
    return [_model_view(r, registries[r.name]) for r in records]


def _record(ctx: Context, name: str, version: int) -> ModelRecord:
    record = jobs.model_record(ctx.db, name, version)
    if record is None:
        raise NotFoundError(f"model {name} v{version} not found")
    return record


def model_show(ctx: Context, name: str, version: int) -> dict[str, Any]:
    """One exported model version."""
    return _model_view(_record(ctx, name, version), _registry(ctx, name))


def promote_model(ctx: Context, name: str, version: int, alias: str = DEFAULT_ALIAS) -> dict[str, Any]:
    """Point registry alias `alias` (e.g. production, staging) of `name` at `version`."""
    if alias.lower() == "latest":
        raise InputError("'latest' is reserved: it always names the newest version; pick another alias")
    _record(ctx, name, version)
    ctx.tracker.set_alias(name, version, alias)
    return {"name": name, "version": version, "alias": alias, "reference": f"models:/{name}@{alias}"}


@dataclass(frozen=True)
class MeasurementRow:
    """What one receiver reported of one transmission (`rss_dbm` None = listened, heard nothing)."""

    receiver_id: str
    rx_lat: float
    rx_lon: float
    rx_alt_m: float | None = None
    rss_dbm: float | None = None
    snr_db: float | None = None


def measurement_table(rows: Sequence[MeasurementRow], source: str = "request") -> MeasurementTable:
    """One transmission's rows as a `MeasurementTable`, checked by the one measurement validator."""
    return MeasurementTable.from_rows(rows, source)


def localize_one(localizer: Localizer, table: MeasurementTable, model: str) -> dict[str, Any]:
    """Position, 1-sigma ellipse and GeoJSON of the one transmission in `table`."""
    sample_ids, predictions = localizer.localize_table(table)
    record = prediction_records(sample_ids, predictions)[0]
    record.pop("sample_id")
    geojson = predictions_geojson(sample_ids, predictions, localizer.reference_point, model)
    return {**record, "model": model, "geojson": geojson}


class LocalizerCache:
    """Loaded models by (name, version), least recently used dropped first; thread-safe.

    Aliases (`@production`) are looked up in the registry at most every `ALIAS_TTL_S`
    seconds, so a promotion takes effect without a restart. Every model is loaded as
    `settings.serving_variant` ("float" or "int8").

    Under load a switch never stalls requests: an alias whose lookup has expired keeps its
    last answer while one thread looks it up again; when an alias (or the default) moves to
    a version not loaded yet, the version served so far keeps answering while one
    background thread loads the new one, which takes over once it is ready. `preload` loads
    a version before a promotion points at it. A model that fails to load is a
    `ConfigError` (the API's 503): the server's model, not the client's request, is broken.
    """

    def __init__(self, settings: Settings, max_models: int = 4, alias_ttl_s: float = ALIAS_TTL_S) -> None:
        self.settings = settings
        self.variant = settings.serving_variant
        self.max_models = max_models
        self.alias_ttl_s = alias_ttl_s
        self._tracker: Tracker | None = None
        self._models: OrderedDict[tuple[str, int], Localizer] = OrderedDict()
        self._aliases: dict[str, tuple[float, tuple[str, int]]] = {}
        self._refreshing: set[str] = set()
        self._serving: dict[str, tuple[str, int]] = {}
        self._loading: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.settings)
        return self._tracker

    def default_reference(self) -> str:
        return f"models:/{self.settings.registered_model_name}@{DEFAULT_ALIAS}"

    def resolve(self, reference: str | None) -> tuple[str, int]:
        """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> (name, version).

        No reference: the `production` alias of the configured model, or its newest
        version while nothing has been promoted. An expired lookup is repeated by one
        thread; the others keep the last answer meanwhile.
        """
        key = reference or ""
        now = time.monotonic()
        with self._lock:
            cached = self._aliases.get(key)
            if cached is not None:
                if now - cached[0] < self.alias_ttl_s or key in self._refreshing:
                    return cached[1]
                self._refreshing.add(key)
        try:
            resolved = self._lookup(reference)
        finally:
            with self._lock:
                self._refreshing.discard(key)
        with self._lock:
            self._aliases[key] = (now, resolved)
        return resolved

    def _lookup(self, reference: str | None) -> tuple[str, int]:
        if reference is None:
            try:
                return self._lookup(self.default_reference())
            except NotFoundError:
                return self._lookup(f"models:/{self.settings.registered_model_name}/latest")
        name, _alias, version = parse_model_reference(reference)
        if version is not None and version != "latest":
            return name, int(version)
        try:
            resolved_name, resolved_version, _source = self.tracker.resolve(reference)
        except HeimdallError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow's client raises many transport types
            raise ConfigError(
                f"model registry unreachable at HEIMDALL_MLFLOW_TRACKING_URI ({type(exc).__name__})"
            ) from exc
        return resolved_name, resolved_version

    def get(self, reference: str | None) -> tuple[Localizer, str]:
        """The loaded model for `reference` and its exact reference (`models:/NAME/VERSION`,
        with `+int8` when serving the quantised variant)."""
        key = self.resolve(reference)
        ref_key = reference or ""
        with self._lock:
            localizer = self._models.get(key)
            if localizer is not None:
                self._models.move_to_end(key)
                self._serving[ref_key] = key
                return localizer, localizer.name
            previous = self._serving.get(ref_key)
            standing_in = self._models.get(previous) if previous is not None else None
            if standing_in is not None:
                start_loading = key not in self._loading
                self._loading.add(key)
        if standing_in is not None:
            # The reference moved to a version not loaded yet: the one served so far answers
            # until the new one is ready, so no request waits for a download.
            if start_loading:
                threading.Thread(target=self._load_in_background, args=(key,), daemon=True).start()
            return standing_in, standing_in.name
        localizer = self._ensure_loaded(key)
        with self._lock:
            self._serving[ref_key] = key
        return localizer, localizer.name

    def preload(self, name: str, version: int) -> Localizer:
        """Load version `version` of `name` now (before an alias points at it)."""
        return self._ensure_loaded((name, version))

    def _ensure_loaded(self, key: tuple[str, int]) -> Localizer:
        with self._load_lock:
            with self._lock:
                localizer = self._models.get(key)
            if localizer is None:
                localizer = self._load(f"models:/{key[0]}/{key[1]}")
            with self._lock:
                self._models[key] = localizer
                self._models.move_to_end(key)
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
        return localizer

    def _load_in_background(self, key: tuple[str, int]) -> None:
        try:
            self._ensure_loaded(key)
            log.info("loaded models:/%s/%d; it now answers", *key)
        except Exception as exc:  # noqa: BLE001 - logged; the standing model keeps answering
            log.error("cannot load models:/%s/%d, still serving the previous version: %s", key[0], key[1], exc)
            with self._lock:
                # Look the alias up again only after the TTL, not on every request.
                for ref_key, (_t, resolved) in list(self._aliases.items()):
                    if resolved == key:
                        self._aliases[ref_key] = (time.monotonic(), self._serving.get(ref_key, key))
        finally:
            with self._lock:
                self._loading.discard(key)

    def _load(self, exact: str) -> Localizer:
        try:
            return Localizer.from_registry(exact, self.settings, variant=self.variant)
        except NotFoundError:
            raise
        except ModelFileError as exc:
            raise ConfigError(f"model {exact} cannot be loaded: {exc}") from exc
        except InputError as exc:
            if self.variant == "float":
                raise
            # The server's configuration asks for a graph this model lacks: not the client's fault.
            raise ConfigError(f"HEIMDALL_SERVING_VARIANT={self.variant}: {exc}") from exc
        except HeimdallError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow's download raises many transport types
            raise ConfigError(f"model {exact} cannot be fetched from the registry ({type(exc).__name__})") from exc

    def forget_aliases(self) -> None:
        """Drop cached alias lookups (after a promotion in this process)."""
        with self._lock:
            self._aliases.clear()
