"""A tiny document model rendered to Markdown (tables by pandas/tabulate) and from that to one
self-contained HTML file (Python-Markdown, the figures embedded).

Inline markup understood in text: **bold**, *italic* and `code`.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown
import pandas as pd


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
def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table, columns padded for reading as plain text."""
    frame = pd.DataFrame([[_cell(c) for c in row] for row in rows], columns=[_cell(h) for h in headers])
    colalign = [{"r": "right"}.get(a, "left") for a in (align or ["l"] * len(headers))]
    return frame.to_markdown(index=False, colalign=colalign, disable_numparse=True)


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
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
h1 { font-size: 1.7rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2rem; }
"""


def to_html(doc: Document, figures_dir: Path) -> str:
    """The Markdown of ``doc`` as one HTML file, each figure's PNG embedded as a data URI."""
    def embed(match: re.Match) -> str:
        png = Path(figures_dir) / match.group(1)
        if not png.is_file():
            return f'src="" data-missing="figures/{match.group(1)}"'
        return f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode("ascii")}"'

    body = markdown.markdown(to_markdown(doc), extensions=["tables"])
    body = re.sub(r'src="figures/([^"]+\.png)"', embed, body)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(doc.title)}'
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
