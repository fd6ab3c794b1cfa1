"""The model bundle: `v{version}/model.onnx`, `config.yaml`, `metrics.json`, `README.md`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from heimdall.errors import InputError, NotFoundError

__all__ = ["BUNDLE_FILES", "write_bundle_files", "read_bundle_config", "parse_config", "model_card"]

BUNDLE_FILES = ("model.onnx", "config.yaml", "metrics.json", "README.md")
MANIFEST = "config.yaml"
#: libyaml where PyYAML was built with it: a radio map's config holds its one-receiver places
#: (`export.one_receiver`), which the pure-Python parser reads about six times slower.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: The model card's coverage columns: 1- and 2-sigma ellipses, then the 95% ellipse.
_COVERAGE_KEYS = ("coverage_1sigma", "coverage_2sigma", "coverage_95")


def write_bundle_files(directory: Path, config: dict[str, Any], metrics: dict[str, Any], card: str) -> None:
    """Write the non-ONNX files of a bundle into `directory` (which holds model.onnx)."""
    if not (directory / "model.onnx").is_file():
        raise InputError(f"{directory} has no model.onnx")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (directory / "README.md").write_text(card)
    (directory / MANIFEST).write_text(yaml.dump(config, Dumper=_DUMPER, sort_keys=False))


def parse_config(text: str) -> Any:
    """A config.yaml's text as Python objects (safe YAML: no tags that build objects)."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, the C one where there is one


def read_bundle_config(directory: Path) -> dict[str, Any]:
    """The bundle's config.yaml; a directory that is not a complete bundle is an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFoundError(f"model bundle {directory} not found")
    missing = [f for f in BUNDLE_FILES if not (directory / f).is_file()]
    if missing:
        raise InputError(f"{directory} is not a complete model bundle (missing {', '.join(missing)})")
    try:
        config = parse_config((directory / MANIFEST).read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{directory / MANIFEST}: malformed YAML") from exc
    if not isinstance(config, dict) or "reference_point" not in config or "station_ids" not in config:
        raise InputError(f"{directory / MANIFEST} lacks reference_point or station_ids")
    return config


#: The radio map settings the card names (the rest of its hyperparameters are tables or flags).
_RADIO_MAP_SETTINGS = ("length_scale_m", "fingerprint_bandwidth_db", "fingerprint_background", "fingerprint_weight",
                       "temperature", "fingerprint_point_mass", "path_loss_exponent", "silence_weight")
_GEOMETRY_LIMIT = [
    "- Accuracy is bounded by the network's geometry: outside the area the receivers surround,",
    "  errors and ellipses grow quickly.",
]
_SIMULATED_LIMITS = [
    "- Trained on simulated data of this network; real receivers, terrain and antennas differ.",
    *_GEOMETRY_LIMIT,
    "- Coverage figures hold for data drawn like the training data; recalibrate on real data.",
]
_MEASURED_LIMITS = [
    "- Fitted on one campaign's measurements: places it never measured and transmissions long after",
    "  it (receivers drift, streets change) are harder than places between measured ones (compare",
    "  the cross-fitted spatial blocks with the random folds).",
    *_GEOMETRY_LIMIT,
    "- One Gaussian ellipse fits heavy-tailed errors badly: the cross-fitted coverage above says how",
    "  the 1- and 2-sigma ellipses held on each kind of fold (a calibrated Gaussian's: 0.393 / 0.865);",
    "  the tail ratio (the radius holding 86.5% of truths over the one holding 39.3%) says why: well",
    "  above 2, no one width holds both shares.",
    "  The 95% ellipse was sized to hold 95% in every scheme; use it where a region must contain",
    "  the transmitter.",
    "- Receivers drift: localise transmissions in batches, so the runtime can re-estimate each",
    "  receiver's offset from them.",
]


def _fmt_m(value: Any) -> str:
    return f"{value:,.0f} m" if isinstance(value, (int, float)) else "n/a"


def _training_lines(config: dict[str, Any]) -> list[str]:
    training = config.get("training") or {}
    model = config.get("model") or {}
    lines = ["## Training"]
    shown = {k: v for k, v in training.items() if v is not None}
    if shown:
        lines.append("- settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if model:
        lines.append("- model: " + ", ".join(f"{k} {v}" for k, v in model.items() if not isinstance(v, (list, dict))))
    hyper = config.get("hyperparameters") or {}
    if model.get("model_kind") == "radio_map":
        lines += _radio_map_lines(hyper, config.get("cross_validation") or {})
    if "covariance_scale" in config:
        where = "by cross-fitting" if model.get("model_kind") == "radio_map" else "on the validation split"
        lines.append(f"- covariance calibrated {where}: scale {float(config['covariance_scale']):.3f}")
    k95 = hyper.get("ellipse95_sigmas") or config.get("ellipse95_sigmas")
    if k95:
        lines.append(f"- 95% ellipse: the {float(k95):.2f}-sigma ellipse, the one that held 95% of held-out truths "
                     "(a calibrated Gaussian's is 2.45)")
    if float(hyper.get("time_widening", 0.0)) > 0 and config.get("training_times_s"):
        lines.append(
            f"- ellipses of transmissions with a timestamp widen with the time since the nearest training one: "
            f"variance x (1 + {float(hyper['time_widening']):g} (1 - exp(-gap / {float(hyper['time_scale_s']):g} s)))"
        )
    track = hyper.get("track") or {}
    if track:
        lines.append(
            f"- timestamped transmissions localised in one batch are smoothed along their track (a transmitter "
            f"moving at up to about {float(track['speed_mps']):g} m/s between them), as cross-fitting found it "
            "pays on this campaign; without timestamps each is localised alone"
            + ("; the smoother weighs every place by the map's own likelihood of each transmission's readings "
               "there, so a transmission the map cannot tell between two places keeps both until its neighbours "
               "in time decide" if float(track.get("score_temperature", 0.0)) > 0 else "")
            + (f"; their ellipses widen where the answers one by one stray from the track more than their own "
               f"ellipses allow (averaged over {float(track['disagreement_window_s']):g} s)"
               if float(track.get("disagreement_window_s", 0.0)) > 0 else "")
        )
    table = hyper.get("session_offsets_db") or []
    if table:
        rms_db = float(np.sqrt(np.mean(np.square(table))))
        lines.append(
            f"- receiver offsets per training session: {len(table)} sessions, {rms_db:.1f} dB rms, taken out of "
            "the readings of transmissions sent within one (timestamp within 6 h of a training transmission)"
        )
    if config.get("fitted_on"):
        lines.append(f"- deployed graph fitted on the {', '.join(config['fitted_on'])} splits"
                     + (f" ({config['evaluated_as']})" if config.get("evaluated_as") else ""))
    lines.append(f"- MLflow run `{config.get('mlflow_run_id')}`, job `{config.get('job_id')}`")
    return [*lines, ""]


def _radio_map_lines(hyper: dict[str, Any], cross_validation: dict[str, Any]) -> list[str]:
    """A radio map's card lines: fitted in one step, its chosen settings and what its
    cross-fitting measured (out-of-fold, per scheme)."""
    chosen = ", ".join(f"{k} {v:.4g}" for k, v in hyper.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k in _RADIO_MAP_SETTINGS)
    lines = [f"- radio map, fitted in one step (no epochs); settings chosen by cross-fitting: {chosen}"]
    for scheme, label in (("random", "random folds"), ("spatial", "spatial blocks"), ("time", "forward time blocks")):
        if f"cv_{scheme}_coverage_1sigma" not in cross_validation:
            continue
        median = cross_validation.get(f"cv_{scheme}_median_error_m")
        coverage = " / ".join(f"{cross_validation.get(f'cv_{scheme}_coverage_{c}', float('nan')):.3f}"
                              for c in ("1sigma", "2sigma", "95"))
        tail = cross_validation.get(f"cv_{scheme}_tail_ratio")
        lines.append(f"- cross-fitted, {label}: " + (f"median {_fmt_m(median)}, " if median is not None else "")
                     + f"1-sigma / 2-sigma / 95% coverage {coverage}"
                     + (f"; tail ratio {tail:.1f} (a Gaussian's: 2)" if tail is not None else ""))
        if f"cv_{scheme}_smoothed_within_1sigma" in cross_validation:
            lines.append(f"- cross-fitted, {label}, smoothed along tracks: median "
                         f"{_fmt_m(cross_validation[f'cv_{scheme}_smoothed_median_m'])}, 1-sigma / 2-sigma coverage "
                         f"{cross_validation[f'cv_{scheme}_smoothed_within_1sigma']:.3f} / "
                         f"{cross_validation[f'cv_{scheme}_smoothed_within_2sigma']:.3f}")
    return lines


def model_card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A short model card: what it was trained on, how it scores, where it stops working."""
    evaluation = metrics.get("evaluation", {})
    baselines = evaluation.get("baselines", {})
    split = evaluation.get("split", "test")
    # Without a test split, export measures the validation split, which training saw.
    seen = "never used for training or calibration" if split == "test" else "no test split, so one training saw"
    lines = [
        f"# {config['name']} v{config['version']}",
        "",
        "Transmitter localisation from received signal strength at a fixed receiver network.",
        "",
        "## Data",
        f"- dataset: `{config.get('dataset')}` ({config.get('dataset_kind')}), network "
        f"`{config['network']['name']}` ({len(config['station_ids'])} receivers, "
        f"{config['network']['frequency_hz'] / 1e6:.3f} MHz)",
        (
            "- real measurements of known transmitters (no simulation)"
            if config.get("dataset_kind") == "measured"
            else f"- simulation: {json.dumps(config.get('scenario'))}"
        ),
        "",
        *_training_lines(config),
        "## Metrics",
        f"Measured at export on the `{split}` split ({evaluation.get('n', 'n/a')} samples, {seen}); "
        "errors are great-circle distances, coverage the share of truths inside the ellipse.",
        "",
        "| method | median | p90 | 1-sigma coverage | 2-sigma coverage | 95% ellipse coverage |",
        "|---|---|---|---|---|---|",
        f"| model | {_fmt_m(evaluation.get('median_error_m'))} | {_fmt_m(evaluation.get('p90_error_m'))} | "
        + " | ".join(f"{evaluation.get(k, float('nan')):.3f}" for k in _COVERAGE_KEYS) + " |",
    ]
    for name, summary in baselines.items():
        lines.append(f"| {name} | {_fmt_m(summary.get('median_error_m'))} | {_fmt_m(summary.get('p90_error_m'))} "
                     "| - | - | - |")
    if "crlb_rmse_m" in evaluation:
        lines.append(f"\nCramer-Rao bound (RMS over the split): {_fmt_m(evaluation['crlb_rmse_m'])}.")
    lines += ["", "## Limits", *(_MEASURED_LIMITS if config.get("dataset_kind") == "measured" else _SIMULATED_LIMITS)]
    return "\n".join(lines) + "\n"
