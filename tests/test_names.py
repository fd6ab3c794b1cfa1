"""One naming rule for datasets and models (heimdall.names)."""

from __future__ import annotations

import pytest

from heimdall.errors import InputError
from heimdall.names import is_slug, to_slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [("demo", "demo"), ("Test Dataset 1k", "test-dataset-1k"), ("Localization Net Test", "localization-net-test"),
     ("v1.2 run", "v1-2-run"), ("A  B", "a-b"), ("x_y-z", "x_y-z")],
)
def test_display_names_become_slugs(name: str, slug: str) -> None:
    assert to_slug(name) == slug and is_slug(slug)


@pytest.mark.parametrize("name", ["", " x", "../x", "a/b", ".hidden", "-x", "a\x00b", "ünï", "x;drop", "a" * 65])
def test_names_without_a_slug_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="invalid model name"):
        to_slug(name, "model")
