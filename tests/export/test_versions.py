"""Semantic bundle versions: parsing, the minor bump, and overrides."""

from __future__ import annotations

import pytest

from heimdall.errors import ConflictError, InputError
from heimdall.export.versions import choose_semver, next_semver, normalize_semver, parse_semver


def test_parse_accepts_only_the_v_major_minor_patch_form() -> None:
    assert parse_semver("v1.2.3") == (1, 2, 3)
    assert parse_semver("v10.0.12") == (10, 0, 12)
    for bad in ("v1.2", "v1.2.3.4", "v01.2.3", "v1.2.x", "", "latest", "2", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a b"):
        with pytest.raises(InputError, match="expected v{major}.{minor}.{patch}"):
            parse_semver(bad)


def test_semver_pre_releases_and_build_metadata_are_accepted() -> None:
    # The seed exports `version="1.0.0-test"`; SemVer 2.0.0 allows both suffixes, and the v.
    assert parse_semver("1.2.3") == (1, 2, 3)
    assert parse_semver("1.0.0-test") == (1, 0, 0)
    assert normalize_semver("1.0.0-test") == "v1.0.0-test"
    assert normalize_semver(" v1.0.0+build.1 ") == "v1.0.0+build.1"
    assert normalize_semver("1.0.0-rc.1+sha.5114f85") == "v1.0.0-rc.1+sha.5114f85"
    assert choose_semver(["v1.0.0"], "1.0.0-test") == "v1.0.0-test"
    assert next_semver(["v1.0.0-test"]) == "v1.1.0"
    with pytest.raises(ConflictError, match="v1.0.0-test already exists"):
        choose_semver(["v1.0.0-test"], "1.0.0-test")
    # Build metadata does not change precedence: the same version twice is refused.
    with pytest.raises(ConflictError, match="already exists"):
        choose_semver(["v1.0.0+build.1"], "1.0.0+build.2")


def test_each_export_bumps_the_minor_number_of_the_highest() -> None:
    assert next_semver([]) == "v1.0.0"
    assert next_semver(["v1.0.0"]) == "v1.1.0"
    # Numeric, not string, order: v1.10.0 is above v1.9.0; patch numbers reset.
    assert next_semver(["v1.9.0", "v1.10.0", "v1.2.7"]) == "v1.11.0"
    assert next_semver(["v1.4.0", "v2.0.0"]) == "v2.1.0"
    assert next_semver(["hand-made", "v1.0.0"]) == "v1.1.0"


def test_an_override_is_checked_and_must_be_new() -> None:
    assert choose_semver(["v1.0.0"], None) == "v1.1.0"
    assert choose_semver(["v1.0.0"], "v2.0.0") == "v2.0.0"
    assert choose_semver(["v1.0.0"], " v1.0.1") == "v1.0.1"
    with pytest.raises(ConflictError, match="v1.0.0 already exists"):
        choose_semver(["v1.0.0"], "v1.0.0")
    with pytest.raises(InputError):
        choose_semver([], "1.0")
