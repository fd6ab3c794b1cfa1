"""Optional parts of the install: which extra brings which package, and one clear error.

The embedded laptop install (`pip install heimdall`) runs everything on SQLite, the local
artifact store and jobs inside the server. PostgreSQL, S3, a Celery broker and the MLflow
UI need packages from the extras below; a setting that asks for one of them while it is
missing is one `error:` line naming the extra, not an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from heimdall.errors import ConfigError

__all__ = ["EXTRAS", "require", "require_database_driver"]

#: extra -> the importable packages it installs (pyproject.toml [project.optional-dependencies]).
EXTRAS = {
    "server": ("celery", "redis"),
    "s3": ("boto3",),
    "postgres": ("psycopg",),
    "ui": ("flask",),
}


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked package counts as missing
        return False


def require(extra: str, feature: str) -> None:
    """Raise ConfigError when a package of `extra` is not installed; `feature` says who needs it."""
    missing = [name for name in EXTRAS[extra] if not _installed(name)]
    if missing:
        raise ConfigError(
            f"{feature} needs {', '.join(missing)}, which is not installed",
            hint=f"pip install 'heimdall[{extra}]' (in a checkout: pip install -e '.[{extra}]')",
        )


def require_database_driver(url: str, setting: str) -> None:
    """The PostgreSQL driver for a `postgresql+psycopg://` (or plain `postgresql://`) URL."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("postgresql") and "psycopg2" not in scheme and "pg8000" not in scheme:
        require("postgres", f"{setting} (PostgreSQL)")
