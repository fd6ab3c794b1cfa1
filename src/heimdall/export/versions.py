"""Semantic bundle versions `v{major}.{minor}.{patch}[-pre-release][+build]` (SemVer 2.0.0).

The registry's integer version stays the key of a model version; the semantic version is a
label for people, kept in the bundle manifest and as a registry tag. Each export of a model
name bumps the minor number of the highest one so far (`v1.0.0`, `v1.1.0`, ...); an export
may name its own instead (e.g. `v2.0.0` for an incompatible change of inputs, or
`1.0.0-test` for a pre-release). The leading `v` is optional on input and always written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from heimdall.errors import ConflictError, InputError

__all__ = ["SEMVER_TAG", "parse_semver", "normalize_semver", "next_semver", "choose_semver"]

#: Registry tag holding a version's semantic version.
SEMVER_TAG = "semantic_version"
_NUMBER = r"(0|[1-9]\d{0,5})"
_PRE_PART = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    rf"^v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-(?P<pre>{_PRE_PART}(?:\.{_PRE_PART})*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
FIRST = "v1.0.0"


def _match(text: str) -> re.Match[str]:
    match = _SEMVER.match(text.strip())
    if match is None or len(text.strip()) > 128:
        raise InputError(
            f"invalid version {text!r}; expected v{{major}}.{{minor}}.{{patch}} with an optional "
            "-pre-release and +build, e.g. v1.2.0, 1.0.0-test or 1.0.0+build.1"
        )
    return match


def parse_semver(text: str) -> tuple[int, int, int]:
    """`v1.2.3` (or `1.2.3-rc.1+build.5`) -> (1, 2, 3); anything else is an InputError."""
    match = _match(text)
    return int(match[1]), int(match[2]), int(match[3])


def normalize_semver(text: str) -> str:
    """The version as it is stored: `v` prefix, no surrounding spaces (`1.0.0-test` -> `v1.0.0-test`)."""
    return "v" + _match(text).group(0).removeprefix("v")


def _precedence_key(text: str) -> tuple[tuple[int, int, int], str | None]:
    """What SemVer compares: the core and the pre-release (build metadata is ignored)."""
    match = _match(text)
    return (int(match[1]), int(match[2]), int(match[3])), match["pre"]


def next_semver(existing: Iterable[str]) -> str:
    """The highest of `existing` with its minor number bumped (`v1.0.0` when there is none).

    Pre-releases count by their core (`v1.0.0-test` -> `v1.1.0`). Labels that are not
    semantic versions (hand-edited tags) are ignored.
    """
    parsed = [parse_semver(v) for v in existing if _SEMVER.match(v.strip())]
    if not parsed:
        return FIRST
    major, minor, _patch = max(parsed)
    return f"v{major}.{minor + 1}.0"


def choose_semver(existing: Iterable[str], requested: str | None) -> str:
    """`requested` (checked, normalised, unused so far) or the next minor bump of `existing`.

    Two versions that differ only in build metadata have the same SemVer precedence, so
    the second is refused like an exact repeat.
    """
    existing = list(existing)
    if requested is None:
        return next_semver(existing)
    wanted = _precedence_key(requested)
    if any(_SEMVER.match(v.strip()) and _precedence_key(v) == wanted for v in existing):
        raise ConflictError(f"version {normalize_semver(requested)} already exists")
    return normalize_semver(requested)
