"""`Localizer`: the one runtime API, over onnxruntime and a model bundle."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays
from heimdall.data.measurements import MeasurementTable
from heimdall.data.sessions import session_index, shift_readings
from heimdall.errors import HeimdallError, InputError
from heimdall.evaluation.calibration import GAUSSIAN_ELLIPSE95_SIGMAS, seconds_to_nearest, time_widening_factor
from heimdall.evaluation.metrics import covariance_to_ellipse
from heimdall.export.area import TrainingArea
from heimdall.export.bundle import read_bundle_config
from heimdall.export.moved_receivers import WARN_RECEIVER_MOVED, TrainingPositions
from heimdall.export.one_receiver import OneReceiverPlaces
from heimdall.export.onnx_export import OUTPUT_NAMES
from heimdall.export.quantize import variant_file
from heimdall.geo import ReferencePoint, local_to_ground
from heimdall.models.drift import corrected_rss
from heimdall.models.tracks import TrackModel, smooth_tracks

__all__ = ["Localizer", "ModelFileError", "Predictions", "WARN_UNKNOWN_RECEIVERS"]

log = logging.getLogger(__name__)

#: A receiver that heard the transmission is not one the model was fitted with (a new
#: receiver, or a misspelt id): it counts through the generic receiver only (a radio map:
#: the path-loss law with the average offset and the largest variance; no fingerprints).
WARN_UNKNOWN_RECEIVERS = "receivers_unknown_to_model"

_CHUNK = 4096
#: Output of graphs that report each reading's residual (dB) at their answer (radio maps).
RESIDUAL_OUTPUT = "station_residual_db"
#: A radio map's log-score of every grid point, the measurements of a smoother on scores.
SCORE_OUTPUT = "grid_log_score"


class ModelFileError(InputError):
    """A bundle's ONNX graph cannot be loaded (empty, truncated, not ONNX at all)."""

    hint = "export the model again, or delete the damaged copy so it is fetched again"


@dataclass(frozen=True)
class Predictions:
    """Model outputs for N samples.

    `covariance_m2` and the ellipse are widened where the input lies outside what the model
    was trained on (`heimdall.export.area`); `warnings` names why per sample and
    `out_of_area` says whether the receivers or the answer are outside the training area.
    The 95% ellipse has the 1-sigma ellipse's orientation and its semi-axes times the
    bundle's `ellipse95_sigmas` (the k-sigma ellipse that held 95% of held-out truths).
    """

    position_m: np.ndarray  # [N, 2] east/north about the bundle's reference
    covariance_m2: np.ndarray  # [N, 2, 2]
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    sigma_major_m: np.ndarray
    sigma_minor_m: np.ndarray
    orientation_deg: np.ndarray  # major axis, clockwise from north
    n_receivers_heard: np.ndarray
    warnings: tuple[tuple[str, ...], ...] = ()
    out_of_area: np.ndarray | None = None
    ellipse95_sigmas: float = GAUSSIAN_ELLIPSE95_SIGMAS

    @property
    def ellipse95_major_m(self) -> np.ndarray:
        """Major semi-axis (m) of the ellipse that held 95% of held-out truths."""
        return self.sigma_major_m * self.ellipse95_sigmas

    @property
    def ellipse95_minor_m(self) -> np.ndarray:
        """Minor semi-axis (m) of the 95% ellipse."""
        return self.sigma_minor_m * self.ellipse95_sigmas


class Localizer:
    """Runs an exported bundle; inputs in the sample layout or the measurement format.

    `variant` picks the graph: "float" (`model.onnx`) or "int8" (the quantised copy an
    export with `--quantize int8` adds); a non-float variant is named in `name`.
    """

    def __init__(
        self, bundle_dir: Path, reference: str | None = None, variant: str = "float", config: dict[str, Any] | None = None
    ) -> None:
        """`config`: the bundle's configuration while an export still assembles it in memory
        (its directory holds the graphs only); otherwise read from the directory's config.yaml."""
        import onnxruntime as ort

        self.bundle_dir = Path(bundle_dir)
        self.config: dict[str, Any] = dict(config) if config is not None else read_bundle_config(self.bundle_dir)
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
        model_path = self.bundle_dir / onnx_file
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind types
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ModelFileError(f"{model_path}: not a loadable ONNX model ({reason})") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        #: Samples per onnxruntime call (a radio map asks for small batches in its config).
        self.max_batch = int(self.config.get("max_batch", _CHUNK))
        hyper = self.config.get("hyperparameters") or {}
        #: (a, g0 s) of `time_widening_factor` and the training timestamps (s) it measures from.
        self.time_widening = (float(hyper.get("time_widening", 0.0)), float(hyper.get("time_scale_s", 0.0)))
        self.training_times_s = np.asarray(self.config.get("training_times_s") or [], dtype=np.float64)
        #: Receiver offsets per training session (`training.session_offsets`): starts (s), [K, S] dB.
        self.session_starts_s = np.asarray(hyper.get("session_starts_s") or [], dtype=np.float64)
        self.session_offsets_db = np.asarray(hyper.get("session_offsets_db") or [], dtype=np.float64)
        #: The smoother of timestamped answers along tracks (`models.tracks`); None: one by one.
        self.track = TrackModel.from_dict(hyper.get("track"))
        #: k of the 95% ellipse in sigmas, measured at training or export; bundles from
        #: before it was measured get a calibrated Gaussian's.
        measured = hyper.get("ellipse95_sigmas") or self.config.get("ellipse95_sigmas")
        self.ellipse95_sigmas = float(measured) if measured else GAUSSIAN_ELLIPSE95_SIGMAS
        #: Where a one-receiver transmission may have been (`export.one_receiver`); None: older bundles.
        self.one_receiver_places = OneReceiverPlaces.from_config(self.config)
        try:
            self.area = TrainingArea.from_config(self.config, self.reference_point)
            self.training_positions = TrainingPositions.from_config(self.config, self.reference_point, self.station_ids)
        except HeimdallError as exc:
            raise InputError(f"{self.bundle_dir / 'config.yaml'}: invalid network ({exc})") from exc

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
        if (target / "config.yaml").is_file():
            try:
                return cls(target, reference=reference, variant=variant)
            except ModelFileError:
                # A damaged cached copy (a disk filled up, a file cut short): fetch it again.
                shutil.rmtree(target, ignore_errors=True)
        # Download beside the cache entry, then rename: a reader never sees half a bundle.
        staging = target.parent / f".v{version}-{uuid.uuid4().hex[:8]}"
        try:
            downloaded = tracker.download(source, staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(downloaded, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(target, reference=reference, variant=variant)

    def predict(
        self, samples: SampleArrays, check_area: bool = True, drift_correction: bool = True, tracks: bool = True,
    ) -> Predictions:
        """Positions and ellipses of every sample.

        With `check_area` (the default: what users see) inputs outside the training area
        and single-receiver samples are flagged and their ellipses widened
        (`TrainingArea.check`), and samples heard by a receiver the model does not know are
        flagged (`WARN_UNKNOWN_RECEIVERS`), as are samples a known fixed receiver listened to
        from elsewhere than in training (`WARN_RECEIVER_MOVED`); evaluation turns it off to
        score the model's own output.
        With `drift_correction` (the default) a radio map runs twice, the second time with
        each receiver's offset drift re-estimated from the batch taken out
        (`models.drift.station_corrections`); without it, once, on the readings as given.
        Samples with a timestamp (`timestamp_s`) get a radio map's widening with the time
        since its nearest training transmission (`time_widening_factor`), evaluation included,
        and, where its fit kept one, its smoothing along tracks (`models.tracks.smooth_tracks`):
        the batch's timestamped answers are then localised jointly, not one by one (`tracks=False`:
        one by one, as for a batch mixing several moving transmitters).
        """
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
        if samples.timestamp_s is not None and self.session_offsets_db.size and self.training_times_s.size:
            # A transmission sent within a training session reads with that session's offsets.
            session = session_index(samples.timestamp_s, self.session_starts_s, self.training_times_s)
            feeds_all["rss_dbm"] = np.where(
                samples.heard, shift_readings(samples, session, self.session_offsets_db).rss_dbm, 0.0
            ).astype(np.float32)
        smoothing = tracks and samples.timestamp_s is not None and self.track is not None
        scores = smoothing and self.track.score_temperature > 0 and SCORE_OUTPUT in self.output_names
        # The smoother reads the scores of the last pass only: a first pass that will be run
        # again leaves them out (N x grid points of float32).
        second_pass = drift_correction and RESIDUAL_OUTPUT in self.output_names
        position_m, covariance_m2, residual_db, log_score = self._run(feeds_all, scores and not second_pass)
        if residual_db is not None and drift_correction:
            # Second pass with drifted receivers corrected (`models.drift`).
            feeds_all["rss_dbm"] = corrected_rss(samples.rx_id, samples.heard, feeds_all["rss_dbm"], residual_db,
                                                 len(self.station_ids)).astype(np.float32)
            position_m, covariance_m2, _, log_score = self._run(feeds_all, scores)
        single_widening = None
        if samples.timestamp_s is not None and self.training_times_s.size:
            # Transmissions later than the campaign (or between its walks) get the widening
            # its cross-fitting measured for them; ones without a timestamp keep the graph's.
            gap_s = seconds_to_nearest(samples.timestamp_s, self.training_times_s)
            single_widening = time_widening_factor(gap_s, *self.time_widening)
            covariance_m2 = covariance_m2 * single_widening[:, None, None]
        grid = None if self.track is None else self.track.score_grid
        if log_score is not None and (grid is None or log_score.shape[1] != grid.rows * grid.cols):
            # A bundle whose stored grid is not its graph's: smooth the answers' Gaussians instead.
            log.warning("the model's grid scores do not match its stored grid: smoothing its answers instead")
            log_score = None
        if smoothing:
            # Transmissions seconds apart come from a transmitter that moved little in between:
            # each answer is smoothed with its neighbours in time (`models.tracks`).
            widening = None
            if self.track.time_widening > 0 and self.training_times_s.size:
                widening = time_widening_factor(gap_s, self.track.time_widening, self.track.time_scale_s)
            position_m, covariance_m2, _ = smooth_tracks(position_m, covariance_m2, samples.timestamp_s, self.track,
                                                         widening, log_score, single_widening)
        warnings: tuple[tuple[str, ...], ...] = ((),) * len(samples)
        out_of_area = np.zeros(len(samples), dtype=bool)
        if check_area and self.area is not None:
            places = None if self.one_receiver_places is None else self.one_receiver_places.spread_m2(samples, position_m)
            checked = self.area.check(position_m, covariance_m2, samples.rx_position_m.astype(np.float64), samples.heard,
                                      places)
            warnings, out_of_area, covariance_m2 = checked.warnings, checked.out_of_area, checked.covariance_m2
        if check_area:
            unknown = np.any(samples.heard & (samples.rx_id == UNKNOWN_STATION), axis=1)
            warnings = tuple(w + (WARN_UNKNOWN_RECEIVERS,) if unknown[i] else w for i, w in enumerate(warnings))
            warnings = self._flag_moved_receivers(samples, warnings)
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
            warnings=warnings,
            out_of_area=out_of_area,
            ellipse95_sigmas=self.ellipse95_sigmas,
        )

    def _flag_moved_receivers(
        self, samples: SampleArrays, warnings: tuple[tuple[str, ...], ...]
    ) -> tuple[tuple[str, ...], ...]:
        """`warnings` with `WARN_RECEIVER_MOVED` added to each sample a fixed receiver listened
        to from elsewhere than in training; the receivers and distances are logged once."""
        if self.training_positions is None:
            return warnings
        moved, farthest = self.training_positions.moved(samples)
        if not farthest:
            return warnings
        shown = ", ".join(f"{station} {distance_m:,.0f} m" for station, distance_m in sorted(farthest.items())[:5])
        more = f" and {len(farthest) - 5} more" if len(farthest) > 5 else ""
        log.warning(
            "%d receiver(s) listening away from where the model was trained with them (%s%s): the model "
            "knows them at their old places; train it again with them at the new ones",
            len(farthest), shown, more,
        )
        return tuple(w + (WARN_RECEIVER_MOVED,) if moved[i] else w for i, w in enumerate(warnings))

    def _run(
        self, feeds_all: dict[str, np.ndarray], scores: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The graph over all samples in batches of `max_batch`: position, covariance, residuals
        (None where the graph has none) and, with `scores`, the grid's log-scores (float32)."""
        names = list(OUTPUT_NAMES) + ([RESIDUAL_OUTPUT] if RESIDUAL_OUTPUT in self.output_names else [])
        names += [SCORE_OUTPUT] if scores else []
        outputs: list[list[np.ndarray]] = [[] for _ in names]
        n = len(feeds_all["rss_dbm"])
        for start in range(0, n, self.max_batch):
            feeds = {k: np.ascontiguousarray(feeds_all[k][start : start + self.max_batch]) for k in self.input_names}
            for store, value in zip(outputs, self.session.run(names, feeds), strict=True):
                store.append(value)
        joined = dict(zip(names, (np.concatenate(parts) for parts in outputs), strict=True))
        residual = joined.get(RESIDUAL_OUTPUT)
        return (joined["position_m"].astype(np.float64), joined["covariance_m2"].astype(np.float64),
                None if residual is None else residual.astype(np.float64), joined.get(SCORE_OUTPUT))

    def localize_table(
        self, table: MeasurementTable, drift_correction: bool = True, tracks: bool = True,
    ) -> tuple[list[str], Predictions]:
        """Localise every sample of a measurement table; returns sample ids and predictions."""
        samples, sample_ids = table.to_samples(self.reference_point, self.station_ids)
        unknown = sorted(set(map(str, table.receiver_id)) - set(self.station_ids))
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            log.warning("%d receiver id(s) not in the model, counted as an unknown receiver: %s", len(unknown), shown)
        return sample_ids, self.predict(samples, drift_correction=drift_correction, tracks=tracks)
