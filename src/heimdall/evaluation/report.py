"""The evaluation report: `report.md`, PNG figures, `predictions.geojson` and `map.html`.

The figures are drawn by `figures.py` (headless matplotlib, Agg); `map.html` is a
self-contained page (`interactive_map.py`) that opens without network.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.evaluation.evaluate import Evaluation
from heimdall.evaluation.figures import FIGURES, LABELS, ReportContext, figure_drawers
from heimdall.evaluation.interactive_map import write_map_html
from heimdall.evaluation.metrics import ellipse_polygon_enu
from heimdall.geo import ReferencePoint, local_to_ground

__all__ = ["ReportContext", "write_report", "FIGURES"]


def _to_lat_lon(points_m: np.ndarray, reference: ReferencePoint) -> tuple[np.ndarray, np.ndarray]:
    return local_to_ground(points_m[..., 0], points_m[..., 1], reference)


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


def _markdown(evaluation: Evaluation, context: ReportContext) -> str:
    s = evaluation.summary
    rows = [("model", s)] + list(s.get("baselines", {}).items())
    lines = [
        f"# Evaluation: {context.title}",
        "",
        f"Model `{s.get('model')}` on dataset `{s.get('dataset')}`, split `{s.get('split')}`, {s['n']} samples.",
        "Errors are great-circle distances between predicted and true transmitter positions.",
        *(["", "**In-sample:** the deployed model was fitted on this split too, so these are not held-out "
           "figures; the bundle's metrics.json has the held-out ones, measured before the refit."]
          if s.get("in_sample") else []),
        "",
        "| method | median | p90 | RMSE | 1-sigma coverage | 2-sigma coverage | 95% ellipse coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, summary in rows:
        c1, c2, c95 = (f"{summary[k]:.3f}" if k in summary else "-"
                       for k in ("coverage_1sigma", "coverage_2sigma", "coverage_95"))
        lines.append(f"| {LABELS.get(name, name)} | {summary['median_error_m']:,.0f} m "
                     f"| {summary['p90_error_m']:,.0f} m | {summary['rmse_m']:,.0f} m | {c1} | {c2} | {c95} |")
    if "crlb_rmse_m" in s:
        lines.append(f"\nCRLB (unknown TX power, Gaussian RSS noise of {s['physics']['sigma_db']:.2f} dB): median {s['crlb_median_m']:,.0f} m, RMS {s['crlb_rmse_m']:,.0f} m.")
    lines += ["", "A calibrated 2-D Gaussian holds 0.393 of truths in its 1-sigma ellipse and 0.865 in its "
              "2-sigma ellipse; the 95% ellipse is sized to hold 0.95 on held-out data.", ""]
    if s.get("by_distance_to_training"):
        lines += [
            "By distance from the true transmitter to the nearest training one (terciles): on measured data the "
            "error follows it, and the ellipses are wider than needed near measured places and too narrow away "
            "from them.",
            "",
            "| distance to training | samples | median error | 1-sigma coverage | 2-sigma coverage "
            "| 95% ellipse coverage |",
            "|---|---|---|---|---|---|",
        ]
        for group in s["by_distance_to_training"]:
            upper = f"{group['to_m']:,.0f} m" if group["to_m"] is not None else "..."
            c95 = f"{group['coverage_95']:.3f}" if "coverage_95" in group else "-"
            lines.append(f"| {group['from_m']:,.0f} m - {upper} | {group['n']} | {group['median_error_m']:,.0f} m | "
                         f"{group['coverage_1sigma']:.3f} | {group['coverage_2sigma']:.3f} | {c95} |")
        lines.append("")
    captions = {
        "error_cdf.png": "Error CDF of the model and the baselines (cut at p99)"
        + ("; the per-sample CRLB beside it (log scale)." if "crlb_rmse_m" in s else "."),
        "calibration.png": "Share of truths inside the k-sigma ellipse against the nominal share.",
        "map.png": "Receivers, truths, predictions and ellipses for the worst, median and best test cases (km).",
        "error_by_position.png": "Median model error by transmitter position.",
        "error_by_receivers.png": "Median error by number of receivers that heard (n: test samples).",
        "training_curves.png": "Training and validation loss and validation median error per epoch.",
    }
    for figure in FIGURES:
        lines += [f"## {captions[figure]}", "", f"![{figure}]({figure})", ""]
    lines.append("Per-sample predictions with 1-sigma ellipses and truth: `predictions.geojson`.")
    lines.append(
        "An interactive map (opens offline): receivers, and truths, predictions and ellipses of the worst, median "
        "and best cases, every case behind a switch: `map.html`."
    )
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
        for name, (size_in, draw) in figure_drawers(evaluation, context).items():
            fig = plt.figure(figsize=size_in, dpi=100)
            draw(fig)
            fig.tight_layout()
            fig.savefig(staging / name)
            plt.close(fig)
        predictions = _geojson(evaluation, context)
        (staging / "predictions.geojson").write_text(json.dumps(predictions))
        receivers = list(zip(context.receiver_ids, context.receiver_lat_deg.tolist(), context.receiver_lon_deg.tolist(), strict=True))
        write_map_html(staging / "map.html", predictions, receivers, title=f"Evaluation map: {context.title}")
        (staging / "evaluation.json").write_text(json.dumps(evaluation.summary, indent=2))
        (staging / "report.md").write_text(_markdown(evaluation, context))
        # report.md last: it is the file that says the report is complete.
        for name in [*FIGURES, "predictions.geojson", "map.html", "evaluation.json", "report.md"]:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / "report.md"
