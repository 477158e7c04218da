"""build_report: summary.md and one self-contained report.html with every section."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from calfseg.bench import build_report
from calfseg.bench.report import SECTION_TITLES


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._in_heading = True
            self.headings.append("")
        if values.get("src") is not None:
            self.sources.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.links.append(values["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


def test_report_files_and_sections(fake_benchmark: Path) -> None:
    files = build_report(fake_benchmark)
    summary = files.summary.read_text()
    for title in SECTION_TITLES:
        assert f"## {title}" in summary
    # every loss is shown for every model, with the reduction named in the header
    assert "Dice (per image)" in summary and "Dice (pooled)" in summary
    assert summary.count("| calf |") >= 2 and summary.count("| dice |") >= 2
    assert "unet: CALF beat BCE on per-image Dice significantly" in summary
    assert "fpn: CALF did not differ significantly from BCE" in summary
    assert (fake_benchmark / "results.csv").is_file()
    assert len(files.figures) == 8  # 4 figures x 2 models
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.figures)


def test_report_html_is_self_contained(fake_benchmark: Path) -> None:
    files = build_report(fake_benchmark)
    parser = _Collector()
    parser.feed(files.html.read_text())
    for title in SECTION_TITLES:
        assert title in parser.headings
    assert len(parser.sources) == 8
    assert all(src.startswith("data:image/png;base64,") for src in parser.sources)
    assert parser.links == []


def test_report_of_no_runs_still_has_every_section(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    files = build_report(tmp_path)
    summary = files.summary.read_text()
    assert all(f"## {title}" in summary for title in SECTION_TITLES)
    assert files.figures == ()
