"""Every document the code, the tests and the docs cite exists in the repository.

A citation such as ``docs/method.md section 3`` in a docstring is only useful if a reader of a
clone can open it; ``METHOD.md`` and ``DESIGN.md`` were once cited but never shipped."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCHED = ["src", "tests", "benchmarks", "docs", "README.md", "pyproject.toml"]
SUFFIXES = {".py", ".md", ".toml"}

# "docs/x.md", a bare "README.md" / "METHOD.md" (upper-case root documents), or a Markdown
# link "(x.md)" from inside docs/.
DOCS_PATH = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b")
ROOT_DOC = re.compile(r"(?<![/\w.-])([A-Z][A-Z_]+\.md)\b")
RELATIVE_LINK = re.compile(r"\]\(([A-Za-z0-9_.-]+\.md)(?:#[^)]*)?\)")
METHOD_SECTION = re.compile(r"docs/method\.md,? sections? (\d+)(?:-(\d+))?")


def _files() -> list[Path]:
    found: list[Path] = []
    for name in SEARCHED:
        path = ROOT / name
        found += [path] if path.is_file() else sorted(path.rglob("*"))
    this = Path(__file__).resolve()  # its docstring names the missing files on purpose
    return [p for p in found if p.is_file() and p.suffix in SUFFIXES and p.resolve() != this]


def _citations() -> list[tuple[Path, int, Path]]:
    """(citing file, line, cited file) for every document cited."""
    cited = []
    for path in _files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            cited += [(path, number, ROOT / "docs" / m) for m in DOCS_PATH.findall(line)]
            cited += [(path, number, ROOT / m) for m in ROOT_DOC.findall(line)]
            if path.parent == ROOT / "docs":
                cited += [(path, number, path.parent / m) for m in RELATIVE_LINK.findall(line)]
    return cited


def test_the_search_finds_citations():
    # guards against a pattern that silently matches nothing
    targets = {cited.name for _, _, cited in _citations()}
    assert {"method.md", "losses.md", "README.md"} <= targets


def test_every_cited_document_exists():
    missing = sorted(
        f"{path.relative_to(ROOT)}:{line} cites {cited.relative_to(ROOT)}"
        for path, line, cited in _citations()
        if not cited.is_file()
    )
    assert missing == [], "cited documents missing from the repository:\n" + "\n".join(missing)


def test_cited_sections_of_the_method_exist():
    headings = re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "method.md").read_text(), re.M)
    sections = {int(h) for h in headings}
    bad = []
    for path in _files():
        for first, last in METHOD_SECTION.findall(path.read_text(errors="replace")):
            wanted = set(range(int(first), int(last or first) + 1))
            if not wanted <= sections:
                bad.append(f"{path.relative_to(ROOT)}: section {first}{'-' + last if last else ''}")
    assert sections == {1, 2, 3, 4, 5, 6}
    assert bad == []
