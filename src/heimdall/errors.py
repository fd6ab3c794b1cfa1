"""Error types: every failure a user can cause is one of these.

Adapters (CLI, API, workers) turn them into one line or a 4xx response; anything else
escaping is a bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from heimdall.settings import Settings

__all__ = [
    "HeimdallError",
    "ConfigError",
    "InputError",
    "NotFoundError",
    "DataError",
    "ConflictError",
    "Interrupted",
    "one_line",
    "redact",
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


def one_line(text: str, limit: int = 500) -> str:
    """`text` on one line, at most `limit` characters (for job errors and responses)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _secrets(settings: Settings) -> list[str]:
    values = [settings.api_token, settings.s3_secret_access_key, settings.s3_access_key_id]
    for url in (settings.database_url, settings.broker_url, settings.mlflow_tracking_uri, settings.s3_endpoint_url):
        # The password of scheme://user:password@host.
        credentials = (url or "").split("//", 1)[-1].split("@", 1)
        if len(credentials) == 2 and ":" in credentials[0]:
            values.append(credentials[0].split(":", 1)[1])
    return [v for v in values if v and len(v) >= 4]


def redact(text: str, settings: Settings) -> str:
    """`text` on one line with every configured secret replaced by ***."""
    text = one_line(text)
    for secret in _secrets(settings):
        text = text.replace(secret, "***")
    return text
