"""`GET /health` (open, no token) and `GET /v1/version`."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from heimdall import __version__
from heimdall.service.dependencies import ContextDep, QueueDep

__all__ = ["router", "version_router"]

router = APIRouter(tags=["health"])
version_router = APIRouter(prefix="/v1", tags=["health"])


def _database(ctx: Any) -> dict[str, Any]:
    try:
        with ctx.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported as this part's status
        return {"status": "unavailable", "detail": type(exc).__name__}
    return {"status": "ok", "backend": ctx.db.engine.dialect.name}


def _artifacts(ctx: Any) -> dict[str, Any]:
    try:
        ctx.store.exists("datasets")
    except Exception as exc:  # noqa: BLE001 - reported as this part's status
        return {"status": "unavailable", "detail": type(exc).__name__}
    return {"status": "ok", "backend": type(ctx.store).__name__}


@router.get("/health")
def health(ctx: ContextDep, queue: QueueDep) -> dict[str, Any]:
    """Whether the database, artifact store, broker and a worker answer (always 200)."""
    parts = {"database": _database(ctx), "artifact_store": _artifacts(ctx), **queue.health()}
    healthy = all(part["status"] in ("ok", "not configured") for part in parts.values())
    return {"status": "ok" if healthy else "degraded", "mode": queue.mode, **parts}


@version_router.get("/version")
def version() -> dict[str, str]:
    """Package and API versions."""
    return {"name": "heimdall", "version": __version__, "api": "v1", "python": platform.python_version()}
