"""Logging configuration for entry points (library modules only create loggers)."""

from __future__ import annotations

import logging
import warnings

__all__ = ["configure_logging"]


def configure_logging(level: str = "WARNING") -> None:
    """Route library logs to stderr at `level`; quiet third-party chatter."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "lightning", "lightning.pytorch", "lightning.fabric", "torch", "onnxscript"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Third-party deprecation notices are not actionable for a CLI user.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
