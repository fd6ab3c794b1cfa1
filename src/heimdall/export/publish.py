"""Turn a trained network into a published, registered model bundle."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError
from heimdall.export.bundle import model_card, write_bundle_files
from heimdall.export.onnx_export import INPUT_NAMES, OUTPUT_NAMES, export_onnx, onnx_parity_check
from heimdall.models.localization_net import LocalizationNet
from heimdall.storage.artifacts import ArtifactStore
from heimdall.storage.staging import owned_dir, owner_token

__all__ = [
    "BundleDraft", "stage_bundle", "finish_bundle", "bundle_prefix", "parity_inputs", "PARITY_TOLERANCE",
    "PARITY_SIGMA_FRACTION",
]

#: Largest accepted ONNX/PyTorch difference (metres for positions, relative for covariance).
PARITY_TOLERANCE = 0.5
#: ... or, for a position, this fraction of the sample's own sigma. A radio map's answer is the
#: geometric median of its posterior; where the posterior is flat between a few places (a
#: transmission heard by one or two receivers), float32 rounding that differs between
#: PyTorch and onnxruntime moves it by metres: 4.3 m at a 116 m sigma on a simulated
#: city network, inside what the answer claims. A wrong graph moves answers by sigmas.
PARITY_SIGMA_FRACTION = 0.05


def bundle_prefix(name: str, version: int) -> str:
    """Artifact-store prefix of a bundle."""
    return f"models/{name}/v{version}"


@dataclass(frozen=True)
class BundleDraft:
    """A bundle staged in a temporary directory, not yet published."""

    directory: Path
    max_abs_diff: float


def parity_inputs(samples: SampleArrays, limit: int = 512) -> dict[str, np.ndarray]:
    """Model inputs of up to `limit` real samples, as the runtime feeds them."""
    part = samples.select(np.arange(min(len(samples), limit)))
    extra = {"spectrogram": part.spectrogram.astype(np.float32)} if part.spectrogram is not None else {}
    return extra | {
        "rx_position_m": part.rx_position_m.astype(np.float32),
        "rx_id": part.rx_id.astype(np.int64),
        "rss_dbm": np.where(part.heard, part.rss_dbm, 0.0).astype(np.float32),
        "heard": part.heard.astype(bool),
        "present": part.present.astype(bool),
    }


def stage_bundle(net: LocalizationNet, parity_samples: SampleArrays, staging_root: Path) -> BundleDraft:
    """Export ONNX into a fresh staging directory and check parity on real samples."""
    directory = owned_dir(staging_root, "bundle")
    try:
        onnx_path = export_onnx(net, directory / "model.onnx")
        # A radio map scores a whole grid per sample: a few dozen samples prove parity.
        inputs = parity_inputs(parity_samples, limit=getattr(net, "parity_samples", 512))
        check = onnx_parity_check(net, onnx_path, inputs)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    worst = check.worst(PARITY_TOLERANCE, PARITY_SIGMA_FRACTION)
    if worst is not None:
        shutil.rmtree(directory, ignore_errors=True)
        raise DataError(
            f"ONNX output differs from PyTorch by {check.position_diff_m[worst]:.3g} m in position and "
            f"{check.covariance_diff[worst]:.3g} in covariance (relative) at a sample of sigma "
            f"{check.sigma_m[worst]:.3g} m (allowed: {PARITY_TOLERANCE} m or {PARITY_SIGMA_FRACTION:.0%} of sigma; "
            f"{PARITY_TOLERANCE} relative)"
        )
    return BundleDraft(directory=directory, max_abs_diff=check.max_abs_diff)


def finish_bundle(
    draft: BundleDraft,
    store: ArtifactStore,
    name: str,
    version: int,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> str:
    """Write config, metrics and model card, publish under `models/NAME/vVERSION`; return its URI."""
    config = dict(
        config,
        name=name,
        version=version,
        created_at=datetime.now(timezone.utc).isoformat(),
        # Who published it: a version that never got registered is removed only once its
        # publisher is gone (pipelines.publishing), never while that export still runs.
        published_by=owner_token(),
        onnx={"inputs": list(config.get("inputs", INPUT_NAMES)), "outputs": list(config.get("outputs", OUTPUT_NAMES))},
    )
    try:
        write_bundle_files(draft.directory, config, metrics, model_card(config, metrics))
        prefix = bundle_prefix(name, version)
        store.publish_dir(prefix, draft.directory, "config.yaml")
    finally:
        shutil.rmtree(draft.directory, ignore_errors=True)
    return prefix
