"""The report's figures are readable: CDF cut at p99 with the CRLB apart, counts on bars,
receivers named and equal kilometre axes on the map (drawn from a synthetic evaluation)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from heimdall.evaluation.evaluate import Evaluation
from heimdall.evaluation.figures import FIGURES, ReportContext, figure_drawers
from heimdall.geo import ReferencePoint


def _evaluation(n: int = 400) -> tuple[Evaluation, ReportContext]:
    rng = np.random.default_rng(3)
    truth = rng.uniform(-100e3, 100e3, size=(n, 2))
    position = truth + rng.normal(0, 15e3, size=(n, 2))
    errors = np.linalg.norm(position - truth, axis=1)
    covariance = np.tile(np.diag([15e3**2, 10e3**2]), (n, 1, 1))
    # The CRLB has a long tail (hundreds of km), as on the default network's edges.
    crlb = rng.lognormal(np.log(50e3), 1.2, size=n)
    evaluation = Evaluation(
        summary={"n": n},
        truth_m=truth,
        position_m=position,
        covariance_m2=covariance,
        errors_m={"model": errors, "weighted_centroid": errors * 1.6, "mle_grid": errors * 1.3},
        crlb_m=crlb,
        n_heard=rng.integers(3, 8, size=n),
    )
    context = ReportContext(
        reference=ReferencePoint(45.0, 9.0),
        receiver_lat_deg=np.array([44.5, 45.5, 45.0]),
        receiver_lon_deg=np.array([8.2, 9.1, 10.0]),
        receiver_ids=["Torino", "Milano", "Brescia"],
        sample_ids=[f"s{i}" for i in range(n)],
        training_history=[{"epoch": 0, "train_loss": 1.0, "val_loss": 1.1, "val_median_error_m": 20e3}],
        title="synthetic",
    )
    return evaluation, context


def _draw(name: str) -> tuple[plt.Figure, Evaluation]:
    evaluation, context = _evaluation()
    size_in, draw = figure_drawers(evaluation, context)[name]
    fig = plt.figure(figsize=size_in)
    draw(fig)
    return fig, evaluation


def test_every_figure_has_a_drawer() -> None:
    evaluation, context = _evaluation()
    assert tuple(figure_drawers(evaluation, context)) == FIGURES


def test_error_cdf_is_cut_at_p99_and_the_crlb_is_drawn_apart() -> None:
    fig, evaluation = _draw("error_cdf.png")
    methods, bound = fig.axes
    largest_p99_km = max(np.percentile(e, 99) for e in evaluation.errors_m.values()) / 1000
    assert methods.get_xlim()[1] == pytest.approx(largest_p99_km)
    assert np.nanmax(evaluation.crlb_m) / 1000 > 2 * largest_p99_km, "the CRLB tail is longer than the cut"
    assert not [line for line in methods.get_lines() if "CRLB" in str(line.get_label())]
    assert bound.get_xscale() == "log"
    assert any("CRLB" in str(line.get_label()) for line in bound.get_lines())
    plt.close(fig)


def test_bars_carry_sample_counts_and_do_not_overlap() -> None:
    evaluation, context = _evaluation()
    # Four methods (kNN on measured data): every bar still has its own slot.
    evaluation.errors_m["knn"] = evaluation.errors_m["model"] * 1.1
    size_in, draw = figure_drawers(evaluation, context)["error_by_receivers.png"]
    fig = plt.figure(figsize=size_in)
    draw(fig)
    (ax,) = fig.axes
    texts = {t.get_text() for t in ax.texts}
    for count in np.unique(evaluation.n_heard):
        assert f"n={int((evaluation.n_heard == count).sum())}" in texts
    bars = sorted((p.get_x(), p.get_width()) for p in ax.patches)
    assert len(bars) == 4 * len(np.unique(evaluation.n_heard))
    for (x0, w0), (x1, _) in zip(bars, bars[1:], strict=False):
        assert x1 >= x0 + w0 - 1e-9, "bars overlap"
    plt.close(fig)


def test_map_names_receivers_with_equal_km_axes() -> None:
    fig, _ = _draw("map.png")
    ax = fig.axes[0]
    assert {"Torino", "Milano", "Brescia"} <= {t.get_text() for t in ax.texts}
    assert ax.get_aspect() == 1.0 and "km" in ax.get_xlabel() and "km" in ax.get_ylabel()
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("worst") for label in labels) and any(label.startswith("best") for label in labels)
    plt.close(fig)


def test_position_map_names_receivers() -> None:
    fig, _ = _draw("error_by_position.png")
    assert {"Torino", "Milano", "Brescia"} <= {t.get_text() for t in fig.axes[0].texts}
    plt.close(fig)


def test_figures_render_to_png(tmp_path: Path) -> None:
    evaluation, context = _evaluation()
    for name, (size_in, draw) in figure_drawers(evaluation, context).items():
        fig = plt.figure(figsize=size_in, dpi=60)
        draw(fig)
        fig.tight_layout()
        fig.savefig(tmp_path / name)
        plt.close(fig)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
