"""A tiny document model rendered both to Markdown and to one self-contained HTML file.

Inline markup understood in text: **bold**, *italic* and `code` (nothing else), so that the
Markdown and the HTML say the same thing without a Markdown library.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: list[str] | None = None  # 'l' or 'r' per column


@dataclass
class Figure:
    name: str  # file stem in figures/
    alt: str
    caption: str
    number: int = 0


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list = field(default_factory=list)

    def add(self, block) -> "Section":
        self.blocks.append(block)
        return self


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)


# -- Markdown ------------------------------------------------------------------------------------
def md_escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table with columns padded for reading as plain text."""
    n = len(headers)
    align = list(align or ["l"] * n) + ["l"] * max(0, n - len(align or []))
    cells = [[md_escape_cell(h) for h in headers]] + [
        [md_escape_cell(c) for c in (list(r) + [""] * (n - len(r)))[:n]] for r in rows
    ]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(n)]

    def fmt(row):
        out = []
        for i, c in enumerate(row):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "| " + " | ".join(
        ("-" * (widths[i] - 1) + ":") if align[i] == "r" else "-" * widths[i] for i in range(n)
    ) + " |"
    lines = [fmt(cells[0]), sep] + [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """Parse the first Markdown table in text back into dicts (used by the tests and by users)."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next((i for i in range(len(lines) - 1)
                  if lines[i].startswith("|") and re.fullmatch(r"\|[\s:\-|]+\|", lines[i + 1] or "")), None)
    if start is None:
        return []

    def split(line):
        parts = re.split(r"(?<!\\)\|", line.strip()[1:-1])
        return [p.strip().replace("\\|", "|") for p in parts]

    headers = split(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(headers, split(line))))
    return rows


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for section in doc.sections:
        out += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            if isinstance(block, Para):
                out += [block.text, ""]
            elif isinstance(block, Bullets):
                out += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Table):
                out += [markdown_table(block.headers, block.rows, block.align), ""]
            elif isinstance(block, Figure):
                out += [f"![{block.alt}](figures/{block.name}.png)", "",
                        f"*Figure {block.number}. {block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML ----------------------------------------------------------------------------------------
def inline_html(text: str) -> str:
    s = html.escape(text, quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
    return s


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
h1 { font-size: 1.7rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f3f3f3; } td.r { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-style: italic; font-size: 0.92rem; color: #444; }
code { background: #f5f5f5; padding: 0 0.2rem; }
"""


def to_html(doc: Document, figures_dir: Path) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(doc.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{inline_html(doc.title)}</h1>"]
    for section in doc.sections:
        level = min(max(section.level, 2), 6)
        out.append(f"<h{level}>{inline_html(section.title)}</h{level}>")
        for block in section.blocks:
            if isinstance(block, Para):
                out.append(f"<p>{inline_html(block.text)}</p>")
            elif isinstance(block, Bullets):
                out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block.items) + "</ul>")
            elif isinstance(block, Table):
                align = block.align or ["l"] * len(block.headers)
                head = "".join(f"<th>{inline_html(h)}</th>" for h in block.headers)
                body = []
                for row in block.rows:
                    cells = "".join(
                        f'<td class="{"r" if i < len(align) and align[i] == "r" else "l"}">{inline_html(str(c))}</td>'
                        for i, c in enumerate(row))
                    body.append(f"<tr>{cells}</tr>")
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
            elif isinstance(block, Figure):
                png = Path(figures_dir) / f"{block.name}.png"
                if png.is_file():
                    data = base64.b64encode(png.read_bytes()).decode("ascii")
                    img = f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
                else:
                    img = f"<p>[figure {html.escape(block.name)} is missing]</p>"
                out.append(f"<figure>{img}<figcaption>Figure {block.number}. "
                           f"{inline_html(block.caption)}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
