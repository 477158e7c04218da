"""One version, said the same everywhere: the package, the changelog's newest entry and the
citation file. The version changes with every file format or result-changing default
(CHANGELOG.md); this keeps the three from drifting apart when it does."""

from __future__ import annotations

import re
from pathlib import Path

import calfseg

ROOT = Path(__file__).resolve().parents[1]


def test_the_changelogs_newest_entry_is_the_packages_version() -> None:
    headings = re.findall(r"^## (\d+\.\d+\.\d+)\b", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings, "CHANGELOG.md has no '## X.Y.Z' entry"
    assert headings[0] == calfseg.__version__
    assert len(set(headings)) == len(headings)  # each version once


def test_the_citation_file_cites_this_version() -> None:
    found = re.search(r"^version: (\S+)$", (ROOT / "CITATION.cff").read_text(), re.M)
    assert found is not None and found.group(1) == calfseg.__version__
