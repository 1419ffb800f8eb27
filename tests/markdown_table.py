"""Reading a report's Markdown tables back, for the tests' assertions."""
import itertools
import re


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in text, as one dict per row."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next((i for i in range(len(lines) - 1)
                  if lines[i].startswith("|") and re.fullmatch(r"\|[\s:\-|]+\|", lines[i + 1] or "")), None)
    if start is None:
        return []

    def split(line):
        return [p.strip().replace("\\|", "|") for p in re.split(r"(?<!\\)\|", line.strip()[1:-1])]

    headers = split(lines[start])
    return [dict(zip(headers, split(line))) for line in itertools.takewhile(lambda ln: ln.startswith("|"),
                                                                            lines[start + 2:])]
