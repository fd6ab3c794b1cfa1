"""Summaries of `benchmarks/real_data.py`'s folds: mean and spread per mode and method, the
paired difference against the best classical method, and the Markdown tables it prints.
Errors in metres, coverage as fractions, training time in seconds; the tail ratio and the
reachable 2-sigma coverage as `heimdall.evaluation.calibration` defines them."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mean_sd", "summarise", "markdown"]


def mean_sd(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation over folds (sd 0 for one value, NaN when any value is not finite)."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        # kNN leaves transmissions sharing too few receivers unplaced, so its p90 can be inf.
        return {"mean": float(array.mean()), "sd": float("nan")}
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: mean/sd over folds x seeds per method and metric, and the paired difference."""
    summary: dict[str, Any] = {}
    for mode in dict.fromkeys(f["mode"] for f in folds):
        rows = [f for f in folds if f["mode"] == mode]
        methods = list(dict.fromkeys(m for f in rows for m in f["methods"]))
        per_method = {}
        for method in methods:
            scores = [f["methods"][method] for f in rows]
            keys = [k for k in ("median_m", "p90_m", "coverage_1sigma", "coverage_2sigma", "coverage_95",
                                "tail_ratio", "reachable_coverage_2sigma", "train_s") if k in scores[0]]
            per_method[method] = {"folds": len(scores), **{k: mean_sd([s[k] for s in scores]) for k in keys}}
        entry: dict[str, Any] = {"methods": per_method}
        classical = [m for m in methods if m not in ("model", "model_direct")]
        for learned in ("model", "model_direct"):
            if learned in methods and classical:
                best = min(classical, key=lambda m: per_method[m]["median_m"]["mean"])
                diffs = [f["methods"][learned]["median_m"] - f["methods"][best]["median_m"] for f in rows]
                key = "paired_difference_m" if learned == "model" else f"paired_difference_{learned}_m"
                entry[key] = {"best_classical": best, **mean_sd(diffs)}
        summary[mode] = entry
    return summary


def markdown(result: dict[str, Any]) -> str:
    """Per-fold medians, then mean +- sd per mode and method."""
    methods = list(dict.fromkeys(m for f in result["folds"] for m in f["methods"]))
    lines = ["| mode | seed | fold | train | test | " + " | ".join(f"{m} median" for m in methods) + " |",
             "|---|---|---|---|---|" + "---|" * len(methods)]
    for f in result["folds"]:
        cells = [f"{f['methods'][m]['median_m']:.0f} m" if m in f["methods"] else "-" for m in methods]
        head = f"| {f['mode']} | {f['seed']} | {f['fold']} | {f['n_train']} | {f['n_test']} | "
        lines.append(head + " | ".join(cells) + " |")
    lines += ["", "| mode | method | folds | median (m) | p90 (m) | 1-sigma cov. | 2-sigma cov. | 95% ellipse cov. "
              "| tail ratio | reachable 2-sigma | train (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(stats: dict[str, Any], key: str, fmt: str) -> str:
        return f"{stats[key]['mean']:{fmt}} ± {stats[key]['sd']:{fmt}}" if key in stats else "-"

    for mode, entry in result["summary"].items():
        for method, stats in entry["methods"].items():
            cells = [cell(stats, "median_m", ".0f"), cell(stats, "p90_m", ".0f"), cell(stats, "coverage_1sigma", ".3f"),
                     cell(stats, "coverage_2sigma", ".3f"), cell(stats, "coverage_95", ".3f"),
                     cell(stats, "tail_ratio", ".2f"), cell(stats, "reachable_coverage_2sigma", ".3f"),
                     cell(stats, "train_s", ".2f")]
            lines.append(f"| {mode} | {method} | {stats['folds']} | " + " | ".join(cells) + " |")
        for key, learned in (("paired_difference_m", "model"), ("paired_difference_model_direct_m", "model_direct")):
            if key in entry:
                d = entry[key]
                paired = f"{d['mean']:+.0f} ± {d['sd']:.0f}"
                lines.append(f"| {mode} | {learned} - {d['best_classical']} (paired) | | {paired} | | | | | | | |")
    return "\n".join(lines)
