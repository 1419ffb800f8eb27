"""The README against the files it speaks for: every number of its answer table against the summary.csv of
the reference folder named above the table, so that the table cannot go stale, and its test command
against what CI runs.

To point the check at another folder, change the README's "From `reports/reference/<folder>/`" line; to
check other columns, map their headers in ANSWER_COLUMNS."""
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from reports.folder import schema
from markdown_table import parse_markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ANSWER_HEADING = "## The answer"
TEST_HEADING = "## Test it"
SUBJECT = {"framework": "numpy", "variant": "optimized"}  # the summary.csv row each table row speaks for

# Table header -> (how the cell is written, the summary.csv column it shows).
# key: the row's batch size or threads; name: a variant's name; speedup: "1.15x [1.01, 1.18] faster", the
# column with its _lo, _hi and _verdict; epochs: "76 [51, 145]", the column with its _lo and _hi, or "none"
# where the column is empty.
ANSWER_COLUMNS = {
    "batch": ("key", "batch_size"),
    "threads": ("key", "threads"),
    "fastest peer, whole training": ("name", "best_peer"),
    "whole training": ("speedup", "speedup_vs_best_peer"),
    "fastest peer, steady epoch": ("name", "best_peer_steady"),
    "steady epoch": ("speedup", "steady_speedup_vs_best_peer"),
    "break-even epochs": ("epochs", "break_even_epochs"),
}
NUMBER = r"(-?\d+(?:\.\d+)?|inf)"
SPEEDUP = re.compile(rf"{NUMBER}x \[{NUMBER}, {NUMBER}\] (.+)")
EPOCHS = re.compile(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]")
NO_VALUE = "none"


def section(text: str, heading: str) -> str:
    """The lines under a level-2 heading, up to the next one."""
    start = text.index(heading + "\n") + len(heading) + 1
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def answer_table(readme: str) -> tuple[Path, list[dict[str, str]]]:
    """The summary.csv that the README's answer table names and the table's rows."""
    answer = section(readme, ANSWER_HEADING)
    named = re.search(r"^From `([^`]+)`", answer, flags=re.MULTILINE)
    assert named, f"{ANSWER_HEADING} names no results folder in a line 'From `reports/reference/<folder>/`'"
    return ROOT / named.group(1) / schema.SUMMARY_FILE, parse_markdown_table(answer[named.end():])


def shown_as(shown: str, value: float) -> bool:
    """Whether value, rounded to the decimals shown, reads as shown ("inf" for an unbounded interval)."""
    if shown == "inf":
        return math.isinf(value)
    decimals = len(shown.partition(".")[2])
    return abs(value - float(shown)) <= 0.5 * 10 ** -decimals + 1e-9


def cell_errors(header: str, shown: str, row: pd.Series) -> list[str]:
    """What in one table cell disagrees with its summary.csv row."""
    kind, column = ANSWER_COLUMNS[header]
    if kind == "name":
        return [] if shown.strip("`") == row[column] else [f"{header}: {shown} but {column} is {row[column]}"]
    if kind == "epochs" and shown == NO_VALUE:
        return [] if pd.isna(row[column]) else [f"{header}: {shown} but {column} is {row[column]}"]
    match = (SPEEDUP if kind == "speedup" else EPOCHS).fullmatch(shown)
    if not match:
        return [f"{header}: {shown!r} is not written as the {kind} column {column} is"]
    numbers = dict(zip((column, column + "_lo", column + "_hi"), match.groups()[:3]))
    errors = [f"{header}: {text} but {name} is {row[name]}" for name, text in numbers.items()
              if not shown_as(text, row[name])]
    if kind == "speedup" and match.group(4) != row[column + "_verdict"]:
        errors.append(f"{header}: '{match.group(4)}' but {column}_verdict is '{row[column + '_verdict']}'")
    return errors


def table_errors(rows: list[dict[str, str]], summary: pd.DataFrame) -> list[str]:
    """Every disagreement between the answer table's rows and summary.csv."""
    subject = summary.loc[(summary[list(SUBJECT)] == pd.Series(SUBJECT)).all(axis=1)]
    errors = []
    for number, cells in enumerate(rows, start=1):
        keys = {column: int(cells[header]) for header, (kind, column) in ANSWER_COLUMNS.items() if kind == "key"}
        match = subject.loc[(subject[list(keys)] == pd.Series(keys)).all(axis=1)]
        if len(match) != 1:
            errors.append(f"row {number}: {len(match)} summary rows of {SUBJECT} at {keys}")
            continue
        errors += [f"row {number}: {error}" for header, shown in cells.items()
                   if ANSWER_COLUMNS[header][0] != "key" for error in cell_errors(header, shown, match.iloc[0])]
    return errors


def test_answer_table_matches_the_reference_summary():
    summary_path, rows = answer_table(README.read_text(encoding="utf-8"))
    assert 1 <= len(rows) <= 6, f"the answer table has {len(rows)} rows; it should have one to six"
    unknown = set(rows[0]) - set(ANSWER_COLUMNS)
    assert not unknown, f"columns the check does not know (map them in ANSWER_COLUMNS): {sorted(unknown)}"
    assert summary_path.is_file(), f"the answer table names {summary_path.parent}, which has no summary"
    errors = table_errors(rows, pd.read_csv(summary_path))
    assert not errors, f"the README's answer table disagrees with {summary_path}:\n" + "\n".join(errors)


def test_the_check_sees_a_changed_number():
    """The checker itself: a table whose numbers were all copied right passes, one changed digit fails."""
    summary_path, rows = answer_table(README.read_text(encoding="utf-8"))
    summary = pd.read_csv(summary_path)
    changed = [dict(row) for row in rows]
    header = "whole training"
    changed[0][header] = changed[0][header].replace(".", ".9", 1)
    assert table_errors(rows, summary) == []
    assert any(header in error for error in table_errors(changed, summary))


REPRODUCIBILITY = ROOT / "docs" / "reproducibility.md"
RUNS_COMPARED = {"reference": "amd-epyc", "rerun": "amd-epyc-rerun",  # its columns' suffix -> the folder
                 "rerun 2": "amd-epyc-rerun-2"}


def test_the_rerun_table_matches_each_runs_summary():
    """docs/reproducibility.md's table of the default study run three times, each run's columns against its
    folder."""
    rows = parse_markdown_table(REPRODUCIBILITY.read_text(encoding="utf-8"))
    assert len(rows) == 10, f"{REPRODUCIBILITY} has a table of {len(rows)} rows; it shows 5 batch sizes x 2 threads"
    for run, folder in RUNS_COMPARED.items():
        shown = [{header.removesuffix(f": {run}"): text for header, text in row.items()
                  if header in ("batch", "threads") or header.endswith(f": {run}")} for row in rows]
        summary = ROOT / "reports" / "reference" / folder / schema.SUMMARY_FILE
        errors = table_errors(shown, pd.read_csv(summary))
        assert not errors, f"{REPRODUCIBILITY}'s {run} columns disagree with {summary}:\n" + "\n".join(errors)


@pytest.mark.parametrize("shown, value, agrees", [("1.15", 1.1478, True), ("1.15", 1.156, False),
                                                  ("76", 75.97, True), ("76", 75.4, False),
                                                  ("inf", math.inf, True), ("inf", 145.3, False)])
def test_a_number_is_read_at_the_precision_it_is_shown(shown, value, agrees):
    assert shown_as(shown, value) is agrees


def test_ci_runs_exactly_the_readme_test_command():
    block = re.search(r"```bash\n(.+?)\n```", section(README.read_text(encoding="utf-8"), TEST_HEADING), re.S)
    assert block, f"{TEST_HEADING} holds no bash block"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in ci_lines if line and not line.startswith("#")]
    assert commands[-1] == block.group(1).strip()
