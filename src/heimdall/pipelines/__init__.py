"""Orchestration: each user-facing job is one function here; adapters only call these."""

from heimdall.pipelines.context import Context, open_context
from heimdall.pipelines.datasets import (
    GenerateResult,
    ImportResult,
    dataset_export,
    dataset_show,
    datasets_list,
    generate,
    import_measurements,
    network_from_dataset,
)
from heimdall.pipelines.model_export import ExportResult, export
from heimdall.pipelines.models import evaluate, localize, resolve_model
from heimdall.pipelines.training import TrainRequest, TrainResult, train

__all__ = [
    "Context",
    "open_context",
    "GenerateResult",
    "generate",
    "datasets_list",
    "dataset_show",
    "dataset_export",
    "ImportResult",
    "import_measurements",
    "network_from_dataset",
    "TrainRequest",
    "TrainResult",
    "train",
    "ExportResult",
    "export",
    "evaluate",
    "localize",
    "resolve_model",
]
