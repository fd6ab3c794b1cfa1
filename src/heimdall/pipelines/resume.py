"""Resuming a training run faithfully: every setting comes back from its checkpoint.

A resumed run continues the optimiser, the schedule and the MLflow run of its checkpoint,
so it must train with the settings that run started with (batch size, learning rate,
schedule, model size, precision, ...). They are stored in the checkpoint (`train_settings`
of its Heimdall metadata); older checkpoints fall back to their job row and their
hyper-parameters. A caller that asks for a different value of one of them gets one
InputError naming it; only `--epochs` may change (to train further), and that change is
recorded on the MLflow run. Hardware flags (accelerator, devices, workers, threads) are
the caller's: they do not change what is learnt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from heimdall.errors import InputError, NotFoundError
from heimdall.pipelines.context import Context

__all__ = ["RESTORED", "RESTORED_FLAGS", "settings_of", "restore_request", "finished_epochs"]

#: TrainRequest fields a resumed run takes from its checkpoint.
RESTORED = (
    "dataset",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "warmup_epochs",
    "validation_split",
    "precision",
    "seed",
    "hidden_dim",
    "num_layers",
    "dropout",
    "spectrogram_encoder",
    "early_stopping_patience",
    "init_from",
    "stream",
)
#: The CLI flag of each restored field, for the error line.
RESTORED_FLAGS = {name: "--" + name.replace("_", "-") for name in (*RESTORED, "epochs")}


def settings_of(request: Any) -> dict[str, Any]:
    """The JSON-ready settings a checkpoint keeps so a resumed run can restore them."""
    return {name: getattr(request, name) for name in (*RESTORED, "epochs")}


def finished_epochs(checkpoint: dict[str, Any]) -> int:
    """Epochs a checkpoint has finished: its checkpoints are written at the end of an epoch,
    under that epoch's (0-based) index."""
    return int(checkpoint.get("epoch", -1)) + 1


def _stored_settings(ctx: Context, meta: dict[str, Any], hyper: dict[str, Any]) -> dict[str, Any]:
    """What the checkpoint's run was started with (newest source first)."""
    if meta.get("train_settings"):
        return dict(meta["train_settings"])
    stored: dict[str, Any] = {}
    if meta.get("job_id"):
        from heimdall.jobs.repository import get_job

        try:
            from heimdall.requests import TrainRequest

            row = TrainRequest.stored_fields(get_job(ctx.db, meta["job_id"]).params)
            stored.update({k: v for k, v in row.items() if k in (*RESTORED, "epochs")})
        except NotFoundError:
            pass
    model = meta.get("model_config", {})
    stored.update({k: model[k] for k in ("hidden_dim", "num_layers", "dropout", "spectrogram_encoder") if k in model})
    stored.update({k: hyper[k] for k in ("learning_rate", "weight_decay", "warmup_epochs") if k in hyper})
    if "max_epochs" in hyper:
        stored.setdefault("epochs", hyper["max_epochs"])
    stored["dataset"] = meta.get("dataset")
    stored.setdefault("init_from", meta.get("init_from"))
    return stored


def _given(request: Any) -> set[str]:
    """Fields the caller chose: `request.given` when known, else those off their default."""
    if request.given is not None:
        return set(request.given)
    defaults = type(request)()
    return {f.name for f in dataclasses.fields(request) if getattr(request, f.name) != getattr(defaults, f.name)}


def restore_request(ctx: Context, request: Any, meta: dict[str, Any], hyper: dict[str, Any], done: int) -> Any:
    """`request` with the checkpoint's settings; InputError for a flag that contradicts them.

    `meta` is the checkpoint's Heimdall metadata, `hyper` its Lightning hyper-parameters
    and `done` the epochs it has finished.
    """
    stored = _stored_settings(ctx, meta, hyper)
    given = _given(request)
    conflicts = [
        f"{RESTORED_FLAGS[name]} {getattr(request, name)} (the run has {stored[name]})"
        for name in RESTORED
        if name in given and name in stored and name != "dataset" and getattr(request, name) != stored[name]
    ]
    if "dataset" in given and request.dataset is not None and stored.get("dataset") not in (None, request.dataset):
        conflicts.append(f"--dataset {request.dataset} (the run has {stored['dataset']})")
    if conflicts:
        raise InputError(
            f"a resumed run keeps its checkpoint's settings; {'; '.join(conflicts)}: drop the flag, "
            "or start a new run from these weights with --init-from CHECKPOINT"
        )
    epochs = request.epochs if "epochs" in given else int(stored.get("epochs", request.epochs))
    if epochs <= done:
        raise InputError(
            f"--epochs {epochs}: the checkpoint has already finished {done} epoch(s); "
            f"pass --epochs above {done} to train further"
        )
    restored = {name: stored[name] for name in RESTORED if name in stored}
    return dataclasses.replace(request, **restored, epochs=epochs)
