"""Errors -> HTTP: Heimdall's error types become 4xx/503 with a one-line message.

No response and no log line carries a stack trace or a configured secret.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from heimdall.errors import ConfigError, ConflictError, DataError, HeimdallError, InputError, NotFoundError, one_line, redact
from heimdall.settings import Settings

__all__ = ["STATUS_OF", "status_of", "install_error_handlers"]

log = logging.getLogger("heimdall.service")

#: Most specific first.
STATUS_OF: tuple[tuple[type[HeimdallError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (ConfigError, 503),
    (DataError, 422),
    (InputError, 400),
    (HeimdallError, 400),
)


def status_of(exc: HeimdallError) -> int:
    """The HTTP status of a Heimdall error."""
    return next(code for kind, code in STATUS_OF if isinstance(exc, kind))


def _field(loc: Any) -> str:
    return ".".join(str(part) for part in loc) or "body"


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(HeimdallError)
    async def heimdall_error(_request: Request, exc: HeimdallError) -> JSONResponse:
        return JSONResponse({"detail": redact(str(exc), settings)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e.get("loc", ())), "message": one_line(str(e.get("msg", "invalid")), 300)} for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        detail = f"invalid value for {first['field']}: {first['message']}"
        return JSONResponse({"detail": redact(detail, settings), "errors": errors[:20]}, status_code=422)
