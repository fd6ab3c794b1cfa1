"""Int8 quantisation of a bundle's ONNX graph (onnxruntime dynamic quantisation).

Dynamic quantisation stores the weights of MatMul/Gemm as int8 and quantises activations
on the fly, so it needs no calibration data. The int8 graph lives beside the float one in
the same bundle (`model.int8.onnx`), described by the manifest's `variants.int8` entry with
its parity report; the float `model.onnx` stays the reference.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from heimdall.errors import InputError
from heimdall.export.onnx_export import OUTPUT_NAMES
from heimdall.fileio import temp_file_beside

__all__ = ["VARIANTS", "Variant", "variant_file", "quantize_int8", "output_difference", "parity_report"]

Variant = Literal["float", "int8"]
VARIANTS: tuple[Variant, ...] = ("float", "int8")
_FILES: dict[str, str] = {"float": "model.onnx", "int8": "model.int8.onnx"}


def variant_file(config: dict[str, Any], variant: str) -> str:
    """File name of `variant` in a bundle whose manifest is `config`; a missing one is an error."""
    if variant not in VARIANTS:
        raise InputError(f"unknown model variant {variant!r}; expected {' or '.join(VARIANTS)}")
    if variant == "float":
        return _FILES["float"]
    entry = (config.get("variants") or {}).get(variant)
    if not entry:
        raise InputError(
            f"model {config.get('name')} v{config.get('version')} has no {variant} variant "
            f"(export it with --quantize {variant})"
        )
    return str(entry["file"])


def quantize_int8(source: Path, target: Path | None = None) -> Path:
    """Write the dynamic-int8 version of the ONNX file `source` (default `model.int8.onnx`
    beside it), atomically; return its path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = Path(source)
    target = Path(target) if target is not None else source.with_name(_FILES["int8"])
    fd, tmp = temp_file_beside(target, suffix=".onnx")
    os.close(fd)
    model = onnx.load(str(source))
    # The exporter's shape annotations are those of its example batch; the quantiser re-runs
    # shape inference, which refuses them against the dynamic axes. Let it infer afresh.
    del model.graph.value_info[:]
    # The quantiser logs a line per tensor at INFO and advice to pre-process at WARNING, all
    # on the root logger; for the second or two it runs, only errors get through.
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(model, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(tmp, target)
    finally:
        logging.getLogger().setLevel(previous)
        Path(tmp).unlink(missing_ok=True)
    return target


def output_difference(float_path: Path, int8_path: Path, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest differences between the float and int8 graphs on the same inputs.

    `max_abs_position_diff_m`: metres; `max_rel_sigma_diff`: largest relative change of a
    standard deviation (sqrt of a covariance diagonal), dimensionless.
    """
    import onnxruntime as ort

    outputs = []
    for path in (float_path, int8_path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        outputs.append(session.run(list(OUTPUT_NAMES), {n: feeds[n] for n in names}))
    (position_f, covariance_f), (position_q, covariance_q) = outputs
    sigma_f = np.sqrt(np.abs(covariance_f[:, [0, 1], [0, 1]]))
    sigma_q = np.sqrt(np.abs(covariance_q[:, [0, 1], [0, 1]]))
    return {
        "max_abs_position_diff_m": float(np.max(np.abs(position_q - position_f))),
        "max_rel_sigma_diff": float(np.max(np.abs(sigma_q - sigma_f) / sigma_f)),
    }


def parity_report(
    float_summary: dict[str, Any],
    int8_summary: dict[str, Any],
    difference: dict[str, float],
    float_path: Path,
    int8_path: Path,
) -> dict[str, Any]:
    """What quantisation changed: file size, largest output differences, and the split's
    median/p90 error (metres) of both graphs with the change (int8 minus float)."""
    report: dict[str, Any] = {
        "split": float_summary.get("split"),
        "n": float_summary.get("n"),
        "float_size_bytes": Path(float_path).stat().st_size,
        "int8_size_bytes": Path(int8_path).stat().st_size,
        **difference,
    }
    for key in ("median_error_m", "p90_error_m"):
        before, after = float(float_summary[key]), float(int8_summary[key])
        report[f"float_{key}"] = before
        report[f"int8_{key}"] = after
        report[f"{key.removesuffix('_m')}_change_m"] = after - before
    return report
