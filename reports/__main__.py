"""Command line: ``python -m reports build RESULTS_DIR... [--out DIR] [--merge-into DIR]``."""
from __future__ import annotations

import argparse
import datetime
import sys
import traceback
from pathlib import Path

from .build import build_report
from .data import ReportInputError
from .folder.files import StudyError
from .folder.merge import merge


def fraction(text: str) -> float:
    value = float(text)  # a ValueError: argparse says "invalid fraction value: 'text'"
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], e.g. 0.95; got {text}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description=(
        "Figures and a written report from a results folder of the study harness. Only reads its files (runs.csv "
        "required; epochs.csv, summary.csv, environment.json, study.json used when present); never re-runs anything."))
    build = parser.add_subparsers(dest="command", metavar="COMMAND", required=True).add_parser(
        "build", help="build report.md, report.html and figures/ from a results folder", description=(
            "Build report.md, a self-contained report.html and figures/*.png|svg from a results folder. Several "
            "folders (made on different machines, with the same plan) are first merged into one results folder "
            "(--merge-into) and reported as one cross-machine study. Exit status 2 on bad input (folder or runs.csv "
            "missing or unusable, plans that differ)."))
    build.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                       help="folder written by the harness; must contain runs.csv")
    build.add_argument("--out", metavar="DIR", help="where to write the report (default: RESULTS_DIR/report/, or "
                                                    "the merged folder's report/); created if needed")
    build.add_argument("--merge-into", metavar="DIR", help="with several RESULTS_DIRs: the results folder they are "
                                                           "merged into (default: results/merged-<timestamp>)")
    build.add_argument("--accuracy-threshold", metavar="FRACTION", type=fraction, help=(
        "test accuracy for the time-to-accuracy figure, e.g. 0.95 (default: the highest of 0.95, 0.94, 0.93, ... "
        "that at least two thirds of the variants reach)"))
    build.add_argument("--traceback", action="store_true",
                       help="on an unexpected internal error, print the full Python traceback")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build the report, merging several folders first: 0, or 2 on bad input or a folder that cannot be
    written, 1 on an internal error."""
    args = make_parser().parse_args(argv)
    try:
        if args.merge_into and len(args.results_dirs) == 1:
            raise ReportInputError("--merge-into needs several RESULTS_DIRs to merge")
        folder = args.results_dirs[0]
        if len(args.results_dirs) > 1:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            folder = merge(args.results_dirs, args.merge_into or Path("results") / f"merged-{stamp}")
            print(f"merged {len(args.results_dirs)} results folders into {folder}")
        path = build_report(folder, args.out, accuracy_threshold=args.accuracy_threshold)
    except (ReportInputError, StudyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # --out on a file, a read-only folder, a full disk: the user's to fix
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write the report{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for users, details on request
        if args.traceback:
            traceback.print_exc()
        print(f"error: internal error while building the report: {type(exc).__name__}: {exc} "
              "(rerun with --traceback for details)", file=sys.stderr)
        return 1
    print(f"report written to {path} (also {path.with_suffix('.html')} and {path.parent / 'figures'}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
