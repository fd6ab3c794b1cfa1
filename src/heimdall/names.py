"""One naming rule for datasets and models, shared by the CLI, the API and the Python API.

A stored name is a slug: `[a-z0-9][a-z0-9_-]{0,63}` (safe in URLs, paths, S3 keys and
MLflow). A display name such as "Test Dataset 1k" (letters, digits, spaces, '.', '_', '-')
is turned into its slug ("test-dataset-1k"); anything else (a '/', a leading '.', control
characters) is refused, never rewritten.
"""

from __future__ import annotations

import re

from heimdall.errors import InputError

__all__ = ["NAME_PATTERN", "to_slug", "is_slug"]

#: The stored form of a dataset or model name.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_SLUG = re.compile(NAME_PATTERN)
_DISPLAY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$")


def is_slug(name: str) -> bool:
    """Whether `name` is already in its stored form."""
    return bool(_SLUG.match(name or ""))


def to_slug(name: str, what: str = "dataset") -> str:
    """The stored form of `name` ("Test Dataset 1k" -> "test-dataset-1k"); InputError if it has none."""
    text = name or ""
    if _SLUG.match(text):
        return text
    slug = re.sub(r"[ .]+", "-", text.lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    if not _DISPLAY.match(text) or not _SLUG.match(slug):
        raise InputError(
            f"invalid {what} name {name!r}: use 1-64 lowercase letters, digits, '_' or '-' "
            "(a display name with capitals, spaces or '.' becomes one, e.g. 'Test Dataset 1k' -> 'test-dataset-1k')"
        )
    return slug
