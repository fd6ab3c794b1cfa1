"""Figures and JSON of a scenario fit: residual RMSE per receiver, residual vs distance,
the residuals' variogram with its fitted exponential model. Headless matplotlib (Agg)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.evaluation.digital_twin import ScenarioFit

__all__ = ["FIT_FIGURES", "write_fit_report"]

FIT_FIGURES = ("residual_by_receiver.png", "residual_vs_distance.png", "variogram.png")


def write_fit_report(fit: ScenarioFit, directory: Path) -> list[Path]:
    """Write `fit.json` and the three figures into `directory` (created); return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = fit.report
    written = [directory / "fit.json"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")

    receivers = [r for r in report["receivers"] if r["residual_rmse_db"] is not None]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(receivers)), [r["residual_rmse_db"] for r in receivers])
    ax.set_xticks(range(len(receivers)), [r["receiver_id"] for r in receivers], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("residual RMSE (dB)")
    ax.set_title(f"fit residual per receiver (all: {report['residual_rmse_db']:.2f} dB)")
    fig.tight_layout()
    written.append(directory / FIT_FIGURES[0])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    heard = fit.links.heard
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(fit.links.distance_m[heard], fit.fit.residual_db, s=2, alpha=0.3)
    bins = report["residual_by_distance"]
    centres = [np.sqrt(b["distance_min_m"] * b["distance_max_m"]) for b in bins]
    ax.plot(centres, [b["mean_db"] for b in bins], "r-o", ms=3, label="bin mean")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("distance (m)")
    ax.set_ylabel("residual (dB)")
    ax.legend()
    fig.tight_layout()
    written.append(directory / FIT_FIGURES[1])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    vario = report["variogram"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(vario["lag_m"], vario["gamma_db2"], "o", label="empirical")
    h = np.linspace(0.0, max(vario["lag_m"]), 200)
    model = vario["nugget_db2"] + vario["sill_db2"] * (1.0 - np.exp(-h / vario["correlation_length_m"]))
    ax.plot(h, model, "-", label=f"nugget {vario['nugget_db2']:.1f} + sill {vario['sill_db2']:.1f} dB², L {vario['correlation_length_m']:.0f} m")
    ax.set_xlabel("transmitter separation (m)")
    ax.set_ylabel("semivariance (dB²)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(directory / FIT_FIGURES[2])
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written
