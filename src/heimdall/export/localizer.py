"""`Localizer`: the one runtime API, over onnxruntime and a model bundle."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.data.measurements import MeasurementTable
from heimdall.errors import InputError
from heimdall.evaluation.metrics import covariance_to_ellipse
from heimdall.export.bundle import read_bundle_config
from heimdall.export.onnx_export import OUTPUT_NAMES
from heimdall.export.quantize import variant_file
from heimdall.geo import ReferencePoint, local_to_ground

__all__ = ["Localizer", "Predictions"]

_CHUNK = 4096


@dataclass(frozen=True)
class Predictions:
    """Model outputs for N samples."""

    position_m: np.ndarray  # [N, 2] east/north about the bundle's reference
    covariance_m2: np.ndarray  # [N, 2, 2]
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    sigma_major_m: np.ndarray
    sigma_minor_m: np.ndarray
    orientation_deg: np.ndarray  # major axis, clockwise from north
    n_receivers_heard: np.ndarray


class Localizer:
    """Runs an exported bundle; inputs in the sample layout or the measurement format.

    `variant` picks the graph: "float" (`model.onnx`) or "int8" (the quantised copy an
    export with `--quantize int8` adds); a non-float variant is named in `name`.
    """

    def __init__(self, bundle_dir: Path, reference: str | None = None, variant: str = "float") -> None:
        import onnxruntime as ort

        self.bundle_dir = Path(bundle_dir)
        self.config: dict[str, Any] = read_bundle_config(self.bundle_dir)
        onnx_file = variant_file(self.config, variant)
        self.variant = variant
        self.reference_point = ReferencePoint(**self.config["reference_point"])
        self.station_ids: list[str] = list(self.config["station_ids"])
        name = reference or f"{self.config['name']}/v{self.config['version']}"
        self.name = name if variant == "float" else f"{name}+{variant}"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # One thread: a localisation is a few small matrix products, where thread start-up
        # costs more than it saves (measured 2.5 ms -> 1.3 ms per request), and a server runs
        # many requests side by side anyway.
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.bundle_dir / onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    @classmethod
    def from_bundle(cls, path: Path | str, variant: str = "float") -> Localizer:
        """Load a bundle directory."""
        return cls(Path(path), variant=variant)

    @classmethod
    def from_registry(cls, reference: str, settings: Any = None, variant: str = "float") -> Localizer:
        """Load `models:/NAME@alias` or `models:/NAME/VERSION` from the MLflow registry."""
        from heimdall.settings import Settings
        from heimdall.tracking import Tracker

        settings = settings or Settings()
        tracker = Tracker(settings)
        name, version, source = tracker.resolve(reference)
        target = settings.model_cache_dir / name / f"v{version}"
        if not (target / "config.yaml").is_file():
            # Download beside the cache entry, then rename: a reader never sees half a bundle.
            staging = target.parent / f".v{version}-{uuid.uuid4().hex[:8]}"
            try:
                downloaded = tracker.download(source, staging)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(downloaded, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return cls(target, reference=reference, variant=variant)

    def predict(self, samples: SampleArrays) -> Predictions:
        """Positions and ellipses of every sample."""
        if len(samples) == 0:
            raise InputError("no samples to localise")
        if not np.any(samples.heard, axis=1).all():
            raise InputError("every sample needs at least one receiver that heard the transmitter")
        feeds_all = {
            "rx_position_m": samples.rx_position_m.astype(np.float32),
            "rx_id": samples.rx_id.astype(np.int64),
            "rss_dbm": np.where(samples.heard, samples.rss_dbm, 0.0).astype(np.float32),
            "heard": samples.heard.astype(bool),
            "present": samples.present.astype(bool),
        }
        if "spectrogram" in self.input_names:
            if samples.spectrogram is None:
                raise InputError("this model needs spectrograms: localise from IQ recordings (--recordings)")
            feeds_all["spectrogram"] = samples.spectrogram.astype(np.float32)
        positions, covariances = [], []
        for start in range(0, len(samples), _CHUNK):
            feeds = {k: np.ascontiguousarray(v[start : start + _CHUNK]) for k, v in feeds_all.items()}
            position, covariance = self.session.run(list(OUTPUT_NAMES), {k: feeds[k] for k in self.input_names})
            positions.append(position)
            covariances.append(covariance)
        position_m = np.concatenate(positions).astype(np.float64)
        covariance_m2 = np.concatenate(covariances).astype(np.float64)
        lat, lon = local_to_ground(position_m[:, 0], position_m[:, 1], self.reference_point)
        major, minor, orientation = covariance_to_ellipse(covariance_m2)
        return Predictions(
            position_m=position_m,
            covariance_m2=covariance_m2,
            lat_deg=np.asarray(lat),
            lon_deg=np.asarray(lon),
            sigma_major_m=major,
            sigma_minor_m=minor,
            orientation_deg=orientation,
            n_receivers_heard=samples.heard.sum(axis=1),
        )

    def localize_table(self, table: MeasurementTable) -> tuple[list[str], Predictions]:
        """Localise every sample of a measurement table; returns sample ids and predictions."""
        samples, sample_ids = table.to_samples(self.reference_point, self.station_ids)
        return sample_ids, self.predict(samples)
