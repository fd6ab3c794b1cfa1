"""Error types: every failure a user can cause is one of these.

Adapters (CLI, API, workers) turn them into one line or a 4xx response; anything else
escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "HeimdallError",
    "ConfigError",
    "InputError",
    "NotFoundError",
    "DataError",
    "ConflictError",
]


class HeimdallError(Exception):
    """Base class of every error Heimdall raises on purpose."""


class ConfigError(HeimdallError):
    """Settings or a configuration file are invalid."""


class InputError(HeimdallError):
    """User-supplied input (file, flag, request body) is malformed or out of range."""


class NotFoundError(HeimdallError):
    """A named dataset, model, job or receiver does not exist."""


class DataError(HeimdallError):
    """Data exists but cannot be used (e.g. a filter left no samples)."""


class ConflictError(InputError):
    """The request conflicts with the current state (e.g. pausing a finished job)."""
