"""The evaluation report's PNG figures (headless matplotlib, drawn into a given Figure).

Error CDFs (the methods cut at their p99, the CRLB on its own log-scale panel), ellipse
calibration, a map of receivers, truths, predictions and ellipses in kilometres (equal
axes, receivers named), median error over the area and by receivers heard (with sample
counts), and the training curves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.evaluation.evaluate import Evaluation
from heimdall.evaluation.interactive_map import CASE_GROUPS, select_cases
from heimdall.evaluation.metrics import ellipse_polygon_enu, mahalanobis_sq
from heimdall.geo import ReferencePoint, ground_to_local

__all__ = ["FIGURES", "LABELS", "ReportContext", "figure_drawers"]

FIGURES = (
    "error_cdf.png",
    "calibration.png",
    "map.png",
    "error_by_position.png",
    "error_by_receivers.png",
    "training_curves.png",
)
LABELS = {
    "model": "model", "weighted_centroid": "RSS-weighted centroid", "mle_grid": "grid ML", "knn": "kNN fingerprint",
    "ml_offsets": "ML, per-receiver offsets", "oracle_ml": "oracle ML (knows the terrain)",
}
#: Cases per group (worst, median, best) on the static map.
_MAP_CASES_PER_GROUP = 4
_LABEL_OFFSETS = ((6, 5, "left"), (6, -12, "left"), (-6, 5, "right"), (-6, -12, "right"))


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


def _cdf(values_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.sort(values_m[np.isfinite(values_m)])
    return _km(finite), np.arange(1, len(finite) + 1) / max(len(finite), 1)


def _error_cdf(fig: Any, evaluation: Evaluation) -> None:
    """Left: the methods, x cut at the largest p99 among them; right: the CRLB, log x."""
    methods, bound = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    p99_m = [np.percentile(e[np.isfinite(e)], 99) for e in evaluation.errors_m.values() if np.isfinite(e).any()]
    for name, errors in evaluation.errors_m.items():
        x, y = _cdf(errors)
        methods.plot(x, y, label=LABELS.get(name, name), lw=2 if name == "model" else 1.3)
    if p99_m:
        methods.set_xlim(0, _km(np.array(max(p99_m))))
    methods.set_xlabel("error (km), cut at the largest p99")
    methods.set_ylabel("fraction of samples with error <= x")
    methods.set_title("Error CDF")
    methods.grid(alpha=0.3)
    methods.legend(loc="lower right")
    if evaluation.crlb_m is None:
        bound.text(0.5, 0.5, "no CRLB (measured data)", ha="center", va="center")
        bound.set_axis_off()
        return
    x, y = _cdf(evaluation.crlb_m)
    bound.plot(x, y, "k--", label="CRLB (per-sample bound)")
    x, y = _cdf(evaluation.errors_m["model"])
    bound.plot(x, y, lw=2, label="model")
    bound.set_xscale("log")
    bound.set_xlabel("km (log scale)")
    bound.set_title("Per-sample CRLB and model error")
    bound.grid(alpha=0.3, which="both")
    bound.legend(loc="lower right")


def _calibration(fig: Any, evaluation: Evaluation) -> None:
    ax = fig.subplots()
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


def _receivers_km(ax: Any, context: ReportContext, colour: str = "black") -> None:
    """Receivers as triangles with their names, in east/north km about the reference."""
    import matplotlib.patheffects as effects

    east_m, north_m = ground_to_local(context.receiver_lat_deg, context.receiver_lon_deg, context.reference)
    ax.scatter(_km(east_m), _km(north_m), marker="^", s=80, c=colour, label="receivers", zorder=5)
    halo = [effects.withStroke(linewidth=3, foreground="white")]
    for i, (name, e, n) in enumerate(zip(context.receiver_ids, _km(east_m), _km(north_m), strict=True)):
        # Neighbouring stations a few km apart: alternate the label's side so names do not overlap.
        dx, dy, align = _LABEL_OFFSETS[i % len(_LABEL_OFFSETS)]
        ax.annotate(str(name), (e, n), xytext=(dx, dy), textcoords="offset points", ha=align, fontsize=8, zorder=6, path_effects=halo)


def _map(fig: Any, evaluation: Evaluation, context: ReportContext) -> None:
    ax = fig.subplots()
    groups = select_cases(evaluation.errors_m["model"], _MAP_CASES_PER_GROUP)
    for group, colour in CASE_GROUPS.items():
        for index in groups[group]:
            ring = _km(ellipse_polygon_enu(evaluation.position_m[index], evaluation.covariance_m2[index], k_sigma=1.0))
            ax.plot(ring[:, 0], ring[:, 1], "-", color=colour, lw=0.9, alpha=0.8)
            truth, position = _km(evaluation.truth_m[index]), _km(evaluation.position_m[index])
            ax.plot([truth[0], position[0]], [truth[1], position[1]], color=colour, lw=0.8)
            ax.scatter([truth[0]], [truth[1]], marker="x", color=colour, s=40)
            ax.scatter([position[0]], [position[1]], marker="o", color=colour, s=20)
    _receivers_km(ax, context)
    for group, colour in CASE_GROUPS.items():
        ax.plot([], [], "s", c=colour, label=f"{group} {len(groups[group])} by error")
    ax.scatter([], [], marker="x", c="gray", label="truth")
    ax.scatter([], [], marker="o", c="gray", label="prediction")
    ax.plot([], [], "-", c="gray", label="1-sigma ellipse")
    ax.set_xlabel("east (km)")
    ax.set_ylabel("north (km)")
    shown = sum(len(g) for g in groups.values())
    ax.set_title(f"{shown} of {len(evaluation.truth_m)} test cases (map.html shows all)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def _error_by_position(fig: Any, evaluation: Evaluation, context: ReportContext) -> None:
    ax = fig.subplots()
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
    _receivers_km(ax, context, colour="red")
    fig.colorbar(image, ax=ax, label="median error (km)")
    ax.set_xlabel("east (km)")
    ax.set_ylabel("north (km)")
    ax.set_title("Median model error by transmitter position (cells with >= 3 samples)")
    ax.legend(loc="upper right", fontsize=8)


def _error_by_receivers(fig: Any, evaluation: Evaluation) -> None:
    ax = fig.subplots()
    counts = np.unique(evaluation.n_heard)
    width = 0.8 / max(len(evaluation.errors_m), 1)
    tops = np.zeros(len(counts))
    for offset, (name, errors) in enumerate(evaluation.errors_m.items()):
        medians = _km(np.array([np.nanmedian(errors[evaluation.n_heard == c]) for c in counts]))
        shift = (offset - (len(evaluation.errors_m) - 1) / 2) * width
        ax.bar(counts + shift, medians, width=width, label=LABELS.get(name, name))
        tops = np.fmax(tops, medians)
    for c, top in zip(counts, tops, strict=True):
        n = int((evaluation.n_heard == c).sum())
        ax.annotate(f"n={n}", (c, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
    ax.margins(y=0.12)
    ax.set_xlabel("receivers that heard the transmitter (n = test samples)")
    ax.set_ylabel("median error (km)")
    ax.set_title("Median error by number of receivers heard")
    ax.set_xticks(counts)
    ax.legend()


def _training_curves(fig: Any, history: list[dict[str, float]]) -> None:
    ax = fig.subplots()
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


def figure_drawers(evaluation: Evaluation, context: ReportContext) -> dict[str, tuple[tuple[float, float], Callable[[Any], None]]]:
    """File name -> (figure size in inches, function drawing into an empty Figure)."""
    return {
        "error_cdf.png": ((12, 5), lambda fig: _error_cdf(fig, evaluation)),
        "calibration.png": ((8, 6), lambda fig: _calibration(fig, evaluation)),
        "map.png": ((10, 7), lambda fig: _map(fig, evaluation, context)),
        "error_by_position.png": ((8, 6), lambda fig: _error_by_position(fig, evaluation, context)),
        "error_by_receivers.png": ((8, 6), lambda fig: _error_by_receivers(fig, evaluation)),
        "training_curves.png": ((8, 6), lambda fig: _training_curves(fig, context.training_history)),
    }
