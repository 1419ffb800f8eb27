"""Markdown: the templates (jinja2) and their text as report.md, tables (pandas' to_markdown, tabulate),
and report.md as one self-contained HTML file (Python-Markdown, figures embedded)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import jinja2
import markdown
import pandas as pd

from . import style


def markdown_table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table, columns padded for reading as plain text; ``align``: 'l' or 'r'
    per column (default: all left)."""
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in [headers, *rows]]
    return pd.DataFrame(cells[1:], columns=cells[0]).to_markdown(index=False, disable_numparse=True, colalign=[
        "right" if a == "r" else "left" for a in align.ljust(len(headers), "l")])


def templates() -> jinja2.Environment:
    """The templates of reports/templates, with the number formats they use as filters (their facts come prepared:
    reports.sections, reports.findings). Block tags on a line of their own leave no trace; each line of the
    output is what reports.document.unwrap joins."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("reports"), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(n="{:,}".format, threads=style.threads_label)
    return env


def one_line(text: str) -> str:
    """Text on one line, single spaces, no space before punctuation (but an ellipsis)."""
    return re.sub(r" +([.,;:)])(?!\.)", r"\1", " ".join(text.split()))


def unwrap(text: str) -> str:
    """The template's text as Markdown blocks: a line continues the block before it unless it starts a list item,
    table row or heading; an empty line ends a block, a line of spaces (what a template left out) is dropped."""
    blocks: list[list[str]] = [[]]
    for raw in text.split("\n"):
        line = raw.strip()
        if not raw or line.startswith("#"):
            blocks += [[line], []] if line else [[]]
        elif not line:
            continue
        elif blocks[-1] and not line.startswith(("- ", "|")) and not blocks[-1][-1].startswith("|"):
            blocks[-1][-1] += line if line[0] in ".,;:)" else " " + line
        else:
            blocks[-1].append(line)
    return "\n\n".join("\n".join(line if line.startswith("|") else one_line(line) for line in b)
                       for b in blocks if b) + "\n"


def to_html(md: str, figures_dir: Path) -> str:
    """report.md as one HTML file, titled by its first heading, each figure's PNG embedded as a data URI."""
    def embed(match: re.Match) -> str:
        png = (Path(figures_dir) / match.group(1)).read_bytes()
        return f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"'

    body = re.sub(r'src="figures/([^"]+\.png)"', embed, markdown.markdown(md, extensions=["tables"]))
    return templates().get_template("report.html.j2").render(title=html.escape(md.split("\n", 1)[0].lstrip("# ")),
                                                             body=body)
