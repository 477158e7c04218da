"""A tiny document model (sections of paragraphs, tables and figures) rendered to Markdown
and to one self-contained HTML file (figures embedded as base64 PNG, inline CSS).

The report is built once as :class:`Section` s, so summary.md and report.html always hold
the same sections."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Paragraph:
    """Text; a ``lead`` paragraph (the answer) is bold in Markdown and large in HTML."""

    text: str
    lead: bool = False


@dataclass(frozen=True)
class Table:
    """Rows of text cells; ``cell_classes`` maps a cell's exact text to a CSS class of the
    HTML page (e.g. a verdict to its colour); Markdown ignores it."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    cell_classes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """A PNG file (relative to the report folder in Markdown, embedded in HTML)."""

    path: Path
    caption: str


Block = Paragraph | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


def to_markdown(title: str, sections: list[Section], root: Path) -> str:
    """The sections as Markdown; figure links relative to ``root``."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                lines += [f"**{block.text}**" if block.lead else block.text, ""]
            elif isinstance(block, Table):
                lines += [_md_row(block.header), _md_row(tuple("---" for _ in block.header))]
                lines += [_md_row(row) for row in block.rows]
                lines.append("")
            else:
                link = Path(os.path.relpath(block.path, root)).as_posix()
                lines += [f"![{block.caption}]({link})", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_html(title: str, sections: list[Section]) -> str:
    """The sections as one HTML page with no external resources."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        level = min(section.level, 6)
        body.append(f"<h{level}>{html.escape(section.title)}</h{level}>")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                lead = ' class="lead"' if block.lead else ""
                body.append(f"<p{lead}>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                body.append(_html_table(block))
            else:
                data = base64.b64encode(block.path.read_bytes()).decode("ascii")
                caption = html.escape(block.caption)
                body.append(
                    f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f0f0f0}"
    "img{max-width:100%}figcaption{font-size:0.85em;color:#555}"
    "p.lead{font-size:1.15em;margin:0.4em 0}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"
    "td.better{color:#1a7f37;font-weight:bold}td.worse{color:#c62828;font-weight:bold}"
    "td.equivalent{color:#1f5fa8;font-weight:bold}td.inconclusive{color:#b26a00}"
    "td.warn{color:#c62828}"
)


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.header)
    rows = "".join(
        "<tr>" + "".join(_html_cell(c, table.cell_classes.get(c)) for c in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_cell(text: str, css_class: str | None) -> str:
    attribute = f' class="{html.escape(css_class)}"' if css_class else ""
    return f"<td{attribute}>{html.escape(text)}</td>"
