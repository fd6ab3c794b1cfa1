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
    "Interrupted",
]


class HeimdallError(Exception):
    """Base class of every error Heimdall raises on purpose.

    `hint` says what to do about it; the CLI prints it after the message (`{command}`
    becomes the command that failed); the API leaves it out.
    """

    hint: str | None = None

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(HeimdallError):
    """Settings or a configuration file are invalid."""

    hint = "check the HEIMDALL_* environment variables and the file named above"


class InputError(HeimdallError):
    """User-supplied input (file, flag, request body) is malformed or out of range."""

    hint = "`{command} --help` lists the options and their accepted values"


class NotFoundError(HeimdallError):
    """A named dataset, model, job or receiver does not exist."""

    hint = "`heimdall datasets list` and `heimdall models list` show what exists"


class DataError(HeimdallError):
    """Data exists but cannot be used (e.g. a filter left no samples)."""

    hint = "docs/TRAINING.md (Troubleshooting) lists the usual causes"


class ConflictError(InputError):
    """The request conflicts with the current state (e.g. pausing a finished job)."""

    hint = "pick another name, or check the current state first"


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that stopped a command, with the command that continues its work (if known)."""

    def __init__(self, resume: str | None = None) -> None:
        super().__init__()
        self.resume = resume
