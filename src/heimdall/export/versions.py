"""Semantic bundle versions `v{major}.{minor}.{patch}`.

The registry's integer version stays the key of a model version; the semantic version is a
label for people, kept in the bundle manifest and as a registry tag. Each export of a model
name bumps the minor number of the highest one so far (`v1.0.0`, `v1.1.0`, ...); an export
may name its own instead (e.g. `v2.0.0` for an incompatible change of inputs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from heimdall.errors import ConflictError, InputError

__all__ = ["SEMVER_TAG", "parse_semver", "next_semver", "choose_semver"]

#: Registry tag holding a version's semantic version.
SEMVER_TAG = "semantic_version"
_SEMVER = re.compile(r"^v(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")
FIRST = "v1.0.0"


def parse_semver(text: str) -> tuple[int, int, int]:
    """`v1.2.3` -> (1, 2, 3); anything else is an InputError naming the expected form."""
    match = _SEMVER.match(text.strip())
    if match is None:
        raise InputError(f"invalid version {text!r}; expected v{{major}}.{{minor}}.{{patch}}, e.g. v1.2.0")
    return int(match[1]), int(match[2]), int(match[3])


def next_semver(existing: Iterable[str]) -> str:
    """The highest of `existing` with its minor number bumped (`v1.0.0` when there is none).

    Labels that are not semantic versions (hand-edited tags) are ignored.
    """
    parsed = [parse_semver(v) for v in existing if _SEMVER.match(v)]
    if not parsed:
        return FIRST
    major, minor, _patch = max(parsed)
    return f"v{major}.{minor + 1}.0"


def choose_semver(existing: Iterable[str], requested: str | None) -> str:
    """`requested` (checked, unused so far) or the next minor bump of `existing`."""
    existing = list(existing)
    if requested is None:
        return next_semver(existing)
    wanted = parse_semver(requested)
    if any(_SEMVER.match(v) and parse_semver(v) == wanted for v in existing):
        raise ConflictError(f"version {requested} already exists")
    return "v{}.{}.{}".format(*wanted)
