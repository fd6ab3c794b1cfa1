"""The repository's documentation stands alone: every document it names is in the repository,
and nothing sends a reader to files outside it (the specification the project was written
from is not shipped)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where users and developers read references to documents.
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "src").rglob("*.py")),
           *sorted((ROOT / "benchmarks").glob("*.py")), ROOT / "benchmarks" / "README.md"]
DOC_REFERENCE = re.compile(r"\bdocs/[A-Za-z0-9_]+\.md\b")


def test_every_document_named_exists() -> None:
    missing = {
        f"{source.relative_to(ROOT)} names {name}"
        for source in SOURCES
        for name in DOC_REFERENCE.findall(source.read_text(encoding="utf-8"))
        if not (ROOT / name).is_file()
    }
    assert not missing, sorted(missing)


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"DESIGN\.md|STYLE\.md|\.\./shared|seeds/")
    found = [
        f"{source.relative_to(ROOT)}: {match.group(0)}"
        for source in SOURCES
        for match in outside.finditer(source.read_text(encoding="utf-8"))
    ]
    assert not found, found


def test_the_reference_pattern_finds_what_it_should() -> None:
    # Guards the two tests above against a pattern that silently matches nothing.
    text = "see docs/REAL_DATA.md and docs/TRAINING.md, section 7; not docs/ alone"
    assert DOC_REFERENCE.findall(text) == ["docs/REAL_DATA.md", "docs/TRAINING.md"]
    assert DOC_REFERENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
