"""The demo: generate -> train -> export (evaluate, register) -> localise, on embedded defaults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from heimdall.errors import InputError
from heimdall.pipelines.context import Context
from heimdall.pipelines.datasets import dataset_export, generate
from heimdall.pipelines.model_export import export
from heimdall.pipelines.models import evaluate, localize
from heimdall.pipelines.training import TrainRequest, train
from heimdall.progress import ProgressFn

__all__ = ["DemoResult", "demo", "oracle_ratio"]

#: Samples of the fresh dataset (other seed) that checks the model generalises.
FRESH_SAMPLES = 4000


@dataclass(frozen=True)
class DemoResult:
    dataset: str
    model: str
    mlflow_run_id: str | None
    evaluation: dict[str, Any]
    fresh_evaluation: dict[str, Any]
    localized: dict[str, Any]
    report_dir: str
    mlflow_store: str
    seconds: float
    #: Why the trained model should not be trusted (e.g. worse than a baseline); empty if none.
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `demo --json` object."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "mlflow_run_id": self.mlflow_run_id,
            "evaluation": self.evaluation,
            "fresh_seed_evaluation": self.fresh_evaluation,
            "report_dir": self.report_dir,
            "mlflow_store": self.mlflow_store,
            "seconds": round(self.seconds, 1),
            "warnings": list(self.warnings),
            "model_to_oracle_median_ratio": oracle_ratio(self.evaluation),
        }


def model_warnings(evaluation: dict[str, Any]) -> tuple[str, ...]:
    """One line per baseline whose median error beats the model's (metres compared)."""
    model_m = evaluation.get("median_error_m")
    if not isinstance(model_m, (int, float)):
        return ()
    return tuple(
        f"the model's median error ({model_m / 1000:,.1f} km) is worse than the {name} baseline's "
        f"({summary['median_error_m'] / 1000:,.1f} km); train on more samples or for more epochs"
        for name, summary in (evaluation.get("baselines") or {}).items()
        # The oracle knows the simulated terrain: it is the limit, not a rival.
        if name != "oracle_ml" and isinstance(summary.get("median_error_m"), (int, float)) and summary["median_error_m"] < model_m
    )


def oracle_ratio(evaluation: dict[str, Any]) -> float | None:
    """The model's median error over the oracle's (1.0: as good as knowing the terrain)."""
    oracle = evaluation.get("baselines", {}).get("oracle_ml")
    if not oracle or not oracle.get("median_error_m"):
        return None
    return round(float(evaluation["median_error_m"]) / float(oracle["median_error_m"]), 3)


def demo(
    ctx: Context,
    samples: int = 20_000,
    epochs: int = 40,
    out: Path | None = None,
    seed: int = 0,
    step: Callable[[str], None] = lambda _message: None,
    progress: ProgressFn | None = None,
) -> DemoResult:
    """Run the whole job on the default Italian network.

    `step` receives one line per stage; `progress` the generation and training progress.
    """
    if samples < 1000:
        raise InputError(f"--samples must be at least 1000 for a meaningful demo, got {samples}")
    start = time.perf_counter()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"demo-{stamp}"
    report_dir = Path(out) if out else ctx.settings.reports_dir / name
    step(f"generating {samples} samples -> dataset {name}")
    generated = generate(ctx, name, samples, seed=seed, progress=progress)
    splits = ", ".join(f"{k} {v:,}" for k, v in generated.splits.items())
    step(f"  {generated.samples_per_s:,.0f} samples/s, acceptance {generated.acceptance_rate:.1%}; {splits}")
    step(f"training for up to {epochs} epochs")
    trained = train(ctx, TrainRequest(dataset=name, epochs=epochs, seed=seed), progress=progress)
    step(f"  {trained.epochs_run} epochs; best checkpoint:")
    step(f"    {trained.best_checkpoint}")
    step("exporting to ONNX, calibrating, evaluating on the test split, registering")
    exported = export(ctx, Path(trained.best_checkpoint))
    step(f"  ONNX parity: max difference {exported.max_abs_diff:.2e} (positions in m); registered as:")
    step(f"    {exported.registered}")
    fresh_name = f"{name}-fresh"
    step(f"checking generalisation on a fresh dataset (seed {seed + 1}, {FRESH_SAMPLES} samples)")
    generate(ctx, fresh_name, FRESH_SAMPLES, seed=seed + 1, progress=progress)
    fresh = evaluate(ctx, exported.bundle, fresh_name, split="all")
    step("localising a few test samples from the measurement format")
    measurements = report_dir / "test-measurements.csv"
    dataset_export(ctx, name, "test", measurements)
    localized = localize(ctx, exported.bundle, measurements)
    step("writing the evaluation report")
    evaluate(ctx, exported.bundle, name, split="test", report_dir=report_dir)
    (report_dir / "fresh-seed-evaluation.json").write_text(json.dumps(fresh, indent=2))
    (report_dir / "localize.json").write_text(json.dumps(localized, indent=2))
    return DemoResult(
        dataset=name,
        model=exported.bundle,
        mlflow_run_id=trained.mlflow_run_id,
        evaluation=exported.evaluation,
        fresh_evaluation=fresh,
        localized=localized,
        report_dir=str(report_dir),
        mlflow_store=ctx.settings.resolved_mlflow_tracking_uri,
        seconds=time.perf_counter() - start,
        warnings=model_warnings(exported.evaluation),
    )
