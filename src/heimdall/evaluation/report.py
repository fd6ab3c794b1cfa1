"""The evaluation report: `report.md`, PNG figures, `predictions.geojson` and `map.html`.

Figures: error CDFs (model, baselines, CRLB), ellipse calibration, a map of receivers,
truths, predictions and ellipses, median error over the area and by receivers heard, and
the training curves. Headless matplotlib (Agg).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.evaluation.evaluate import Evaluation
from heimdall.evaluation.interactive_map import write_map_html
from heimdall.evaluation.metrics import ellipse_polygon_enu, mahalanobis_sq
from heimdall.geo import ReferencePoint, local_to_ground

__all__ = ["ReportContext", "write_report", "FIGURES"]

FIGURES = (
    "error_cdf.png",
    "calibration.png",
    "map.png",
    "error_by_position.png",
    "error_by_receivers.png",
    "training_curves.png",
)
_MAP_SAMPLES = 12
_LABELS = {"model": "model", "weighted_centroid": "RSS-weighted centroid", "mle_grid": "grid ML", "knn": "kNN fingerprint", "oracle_ml": "oracle ML (knows the terrain)"}


@dataclass(frozen=True)
class ReportContext:
    """What the figures need besides the evaluation itself."""

    reference: ReferencePoint
    receiver_lat_deg: np.ndarray
    receiver_lon_deg: np.ndarray
    receiver_ids: list[str]
    sample_ids: list[str]
    training_history: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss, val_median_error_m
    title: str


def _km(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) / 1000.0


def _error_cdf(ax: Any, evaluation: Evaluation) -> None:
    for name, errors in evaluation.errors_m.items():
        finite = np.sort(errors[np.isfinite(errors)])
        ax.plot(_km(finite), np.arange(1, len(finite) + 1) / len(finite), label=_LABELS.get(name, name), lw=2 if name == "model" else 1.3)
    if evaluation.crlb_m is not None:
        bound = np.sort(evaluation.crlb_m[np.isfinite(evaluation.crlb_m)])
        ax.plot(_km(bound), np.arange(1, len(bound) + 1) / len(bound), "k--", label="CRLB (per-sample bound)")
    ax.set_xlabel("error (km)")
    ax.set_ylabel("fraction of samples with error <= x")
    ax.set_title("Error CDF")
    ax.grid(alpha=0.3)
    ax.legend()


def _calibration(ax: Any, evaluation: Evaluation) -> None:
    k = np.linspace(0.5, 3.0, 26)
    d2 = mahalanobis_sq(evaluation.truth_m - evaluation.position_m, evaluation.covariance_m2)
    observed = [(d2 <= kk * kk).mean() for kk in k]
    ax.plot(k, 1.0 - np.exp(-k * k / 2.0), "k--", label="calibrated 2-D Gaussian")
    ax.plot(k, observed, "o-", label="model")
    ax.set_xlabel("ellipse size k (sigma)")
    ax.set_ylabel("fraction of truths inside the k-sigma ellipse")
    ax.set_title("Uncertainty calibration")
    ax.grid(alpha=0.3)
    ax.legend()


def _to_lat_lon(points_m: np.ndarray, reference: ReferencePoint) -> tuple[np.ndarray, np.ndarray]:
    return local_to_ground(points_m[..., 0], points_m[..., 1], reference)


def _map(ax: Any, evaluation: Evaluation, context: ReportContext) -> None:
    rng = np.random.default_rng(0)
    n = len(evaluation.truth_m)
    chosen = rng.choice(n, size=min(_MAP_SAMPLES, n), replace=False)
    ax.scatter(context.receiver_lon_deg, context.receiver_lat_deg, marker="^", s=90, c="black", label="receivers", zorder=5)
    for i, index in enumerate(chosen):
        for k_sigma, style in ((1.0, "-"), (2.0, ":")):
            ring = ellipse_polygon_enu(evaluation.position_m[index], evaluation.covariance_m2[index], k_sigma=k_sigma)
            lat, lon = _to_lat_lon(ring, context.reference)
            ax.plot(lon, lat, style, color=f"C{i % 10}", lw=1)
        t_lat, t_lon = _to_lat_lon(evaluation.truth_m[index], context.reference)
        p_lat, p_lon = _to_lat_lon(evaluation.position_m[index], context.reference)
        ax.plot([t_lon, p_lon], [t_lat, p_lat], color=f"C{i % 10}", lw=0.8)
        ax.scatter([t_lon], [t_lat], marker="x", color=f"C{i % 10}", s=40)
        ax.scatter([p_lon], [p_lat], marker="o", color=f"C{i % 10}", s=20)
    ax.scatter([], [], marker="x", c="gray", label="truth")
    ax.scatter([], [], marker="o", c="gray", label="prediction")
    ax.plot([], [], "-", c="gray", label="1-sigma ellipse")
    ax.plot([], [], ":", c="gray", label="2-sigma ellipse")
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_title(f"{len(chosen)} test cases")
    ax.set_aspect(1.0 / np.cos(np.radians(context.reference.lat_deg)))
    ax.legend(loc="best", fontsize=8)


def _error_by_position(fig: Any, ax: Any, evaluation: Evaluation, context: ReportContext) -> None:
    truth = evaluation.truth_m
    errors = evaluation.errors_m["model"]
    bins = 12
    e_edges = np.linspace(truth[:, 0].min(), truth[:, 0].max() + 1e-6, bins + 1)
    n_edges = np.linspace(truth[:, 1].min(), truth[:, 1].max() + 1e-6, bins + 1)
    col = np.clip(np.digitize(truth[:, 0], e_edges) - 1, 0, bins - 1)
    row = np.clip(np.digitize(truth[:, 1], n_edges) - 1, 0, bins - 1)
    grid = np.full((bins, bins), np.nan)
    for r in range(bins):
        for c in range(bins):
            cell = errors[(row == r) & (col == c)]
            if cell.size >= 3:
                grid[r, c] = np.median(cell)
    image = ax.imshow(_km(grid), origin="lower", extent=(*_km(e_edges[[0, -1]]), *_km(n_edges[[0, -1]])), cmap="viridis", aspect="equal")
    rx_e, rx_n, _ = _receivers_local(context)
    ax.scatter(_km(rx_e), _km(rx_n), marker="^", c="red", s=60, label="receivers")
    fig.colorbar(image, ax=ax, label="median error (km)")
    ax.set_xlabel("east (km)")
    ax.set_ylabel("north (km)")
    ax.set_title("Median model error by transmitter position (cells with >= 3 samples)")
    ax.legend(loc="upper right", fontsize=8)


def _receivers_local(context: ReportContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from heimdall.geo import ground_to_local

    east, north = ground_to_local(context.receiver_lat_deg, context.receiver_lon_deg, context.reference)
    return east, north, np.zeros_like(east)


def _error_by_receivers(ax: Any, evaluation: Evaluation) -> None:
    counts = np.unique(evaluation.n_heard)
    for offset, (name, errors) in enumerate(evaluation.errors_m.items()):
        medians = [np.nanmedian(errors[evaluation.n_heard == c]) for c in counts]
        ax.bar(counts + (offset - 1) * 0.27, _km(np.array(medians)), width=0.27, label=_LABELS.get(name, name))
    ax.set_xlabel("receivers that heard the transmitter")
    ax.set_ylabel("median error (km)")
    ax.set_title("Median error by number of receivers heard")
    ax.set_xticks(counts)
    ax.legend()


def _training_curves(fig: Any, ax: Any, history: list[dict[str, float]]) -> None:
    if not history:
        ax.text(0.5, 0.5, "no training history recorded for this model", ha="center", va="center")
        ax.set_axis_off()
        return
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h.get("train_loss") for h in history], label="train loss (NLL)")
    ax.plot(epochs, [h.get("val_loss") for h in history], label="validation loss (NLL)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Gaussian NLL (normalised units)")
    twin = ax.twinx()
    twin.plot(epochs, [_km(np.array([h.get("val_median_error_m") or np.nan]))[0] for h in history], "g:", label="val median error")
    twin.set_ylabel("validation median error (km)")
    ax.set_title("Training curves")
    lines = ax.get_legend_handles_labels()
    twin_lines = twin.get_legend_handles_labels()
    ax.legend(lines[0] + twin_lines[0], lines[1] + twin_lines[1])


def _geojson(evaluation: Evaluation, context: ReportContext) -> dict[str, Any]:
    features = []
    p_lat, p_lon = _to_lat_lon(evaluation.position_m, context.reference)
    t_lat, t_lon = _to_lat_lon(evaluation.truth_m, context.reference)
    for i, sample_id in enumerate(context.sample_ids):
        properties = {
            "sample_id": sample_id,
            "truth_lat": round(float(t_lat[i]), 7),
            "truth_lon": round(float(t_lon[i]), 7),
            "error_m": round(float(evaluation.errors_m["model"][i]), 1),
            "n_receivers_heard": int(evaluation.n_heard[i]),
        }
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(float(p_lon[i]), 7), round(float(p_lat[i]), 7)]}, "properties": dict(properties, kind="position")})
        ring = ellipse_polygon_enu(evaluation.position_m[i], evaluation.covariance_m2[i], 1.0)
        r_lat, r_lon = _to_lat_lon(ring, context.reference)
        coordinates = [[round(float(x), 7), round(float(y), 7)] for x, y in zip(r_lon, r_lat, strict=True)]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [coordinates]}, "properties": dict(properties, kind="ellipse_1sigma")})
    return {"type": "FeatureCollection", "features": features}


def _markdown(evaluation: Evaluation, context: ReportContext, interactive_map: bool = False) -> str:
    s = evaluation.summary
    rows = [("model", s)] + list(s.get("baselines", {}).items())
    lines = [
        f"# Evaluation: {context.title}",
        "",
        f"Model `{s.get('model')}` on dataset `{s.get('dataset')}`, split `{s.get('split')}`, {s['n']} samples.",
        "Errors are great-circle distances between predicted and true transmitter positions.",
        "",
        "| method | median | p90 | RMSE | 1-sigma coverage | 2-sigma coverage |",
        "|---|---|---|---|---|---|",
    ]
    for name, summary in rows:
        c1 = f"{summary['coverage_1sigma']:.3f}" if "coverage_1sigma" in summary else "-"
        c2 = f"{summary['coverage_2sigma']:.3f}" if "coverage_2sigma" in summary else "-"
        lines.append(f"| {_LABELS.get(name, name)} | {summary['median_error_m']:,.0f} m | {summary['p90_error_m']:,.0f} m | {summary['rmse_m']:,.0f} m | {c1} | {c2} |")
    if "crlb_rmse_m" in s:
        lines.append(f"\nCRLB (unknown TX power, Gaussian RSS noise of {s['physics']['sigma_db']:.2f} dB): median {s['crlb_median_m']:,.0f} m, RMS {s['crlb_rmse_m']:,.0f} m.")
    lines += ["", "A calibrated 2-D Gaussian holds 0.393 of truths in its 1-sigma ellipse and 0.865 in its 2-sigma ellipse.", ""]
    captions = {
        "error_cdf.png": "Error CDF of the model, the baselines and the per-sample CRLB.",
        "calibration.png": "Share of truths inside the k-sigma ellipse against the nominal share.",
        "map.png": "Receivers, truths, predictions and ellipses for a random set of test cases.",
        "error_by_position.png": "Median model error by transmitter position.",
        "error_by_receivers.png": "Median error by number of receivers that heard.",
        "training_curves.png": "Training and validation loss and validation median error per epoch.",
    }
    for figure in FIGURES:
        lines += [f"## {captions[figure]}", "", f"![{figure}]({figure})", ""]
    lines.append("Per-sample predictions with 1-sigma ellipses and truth: `predictions.geojson`.")
    if interactive_map:
        lines.append("An interactive map of the same (receivers, truths, predictions, ellipses): `map.html`.")
    return "\n".join(lines) + "\n"


def write_report(directory: Path, evaluation: Evaluation, context: ReportContext) -> Path:
    """Write report.md, the figures, predictions.geojson and evaluation.json into `directory`.

    Written into a staging directory and moved into place file by file, so an interrupted
    run never leaves a report.md pointing at missing figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=directory))
    try:
        plots = {
            "error_cdf.png": lambda fig, ax: _error_cdf(ax, evaluation),
            "calibration.png": lambda fig, ax: _calibration(ax, evaluation),
            "map.png": lambda fig, ax: _map(ax, evaluation, context),
            "error_by_position.png": lambda fig, ax: _error_by_position(fig, ax, evaluation, context),
            "error_by_receivers.png": lambda fig, ax: _error_by_receivers(ax, evaluation),
            "training_curves.png": lambda fig, ax: _training_curves(fig, ax, context.training_history),
        }
        for name, draw in plots.items():
            fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
            draw(fig, ax)
            fig.tight_layout()
            fig.savefig(staging / name)
            plt.close(fig)
        predictions = _geojson(evaluation, context)
        (staging / "predictions.geojson").write_text(json.dumps(predictions))
        receivers = list(zip(context.receiver_ids, context.receiver_lat_deg.tolist(), context.receiver_lon_deg.tolist(), strict=True))
        extra = ["map.html"] if write_map_html(staging / "map.html", predictions, receivers) else []
        (staging / "evaluation.json").write_text(json.dumps(evaluation.summary, indent=2))
        (staging / "report.md").write_text(_markdown(evaluation, context, interactive_map=bool(extra)))
        # report.md last: it is the file that says the report is complete.
        for name in [*FIGURES, "predictions.geojson", *extra, "evaluation.json", "report.md"]:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / "report.md"
