"""The command line, every command of the study: ``python -m harness run | report | list | env | parity``. A
command turns its options into a plan, opens the executor asked for and hands both to the study (harness.study);
``report`` draws a results folder (reports). One error path: bad input is one line and status 2."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import traceback
from pathlib import Path

import pandas as pd

from keras_baseline.runtime import all_cores
from reports.folder.files import UsageError
from reports.folder.results import write_csv_atomic
from reports.folder.schema import (
    FRAMEWORKS, MNIST_TRAIN_SAMPLES, OPTIONAL_FRAMEWORKS, PARITY_FILE, STUDY_FILE, available_frameworks,
    framework_missing, peer_frameworks, variant_descriptions,
)
from reports.stats.parity import (
    ACCURACY_FLOOR, BAND_SIGMAS, BANDS_FILE, FLOOR_BATCH_SIZE, accuracy_table, measured_spread, parity_failures,
    parity_table,
)

from .environment import environment_record
from .interrupts import interrupted, stop_like_ctrl_c
from .options import (check_data_dir, check_out_dir, fraction, non_negative_int, once_each, positive_int,
                      timeout_seconds)
from .plan import DEFAULT_PRESET, PRESETS, Extra, StudyPlan

PARITY_NUMPY_VARIANT = "optimized"  # the numpy variant parity judges unless --variants names numpy variants


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, as argparse does, but without the usage dump
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Train the MNIST MLP with numpy_mlp and keras_baseline on identical work and compare them.",
    )
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--traceback", action="store_true",
                       help="on an unexpected internal error, print the full Python traceback")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, **options) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[debug], **options)  # every command has --traceback

    run = command(
        "run", help="run a study and build its report",
        description="Run a study: every (framework, variant, batch size, threads, repeat) in a fresh process; "
        "results go to --out as runs.csv, epochs.csv, summary.csv, environment.json, study.json, then the report. "
        f"Without options this is the '{DEFAULT_PRESET}' preset. Options given override the preset.",
    )
    run.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help=f"a named study (see 'python -m harness list'); default: {DEFAULT_PRESET}")
    run.add_argument("--frameworks", nargs="+", metavar="NAME", help=f"frameworks to run: {', '.join(FRAMEWORKS)}")
    run.add_argument("--variants", nargs="+", metavar="NAME",
                     help="variants to run, of any framework (e.g. optimized step3 fit-tuned); default: the preset's")
    run.add_argument("--batch-sizes", nargs="+", type=positive_int, metavar="N", help="mini-batch sizes")
    run.add_argument("--epochs", type=positive_int, metavar="N", help="epochs per run (the article: 35)")
    run.add_argument("--repeats", type=positive_int, metavar="N", help="runs per configuration; medians over them")
    run.add_argument("--once", nargs="*", metavar="NAME",
                     help="variants to run in the first repeat only (the article preset: original, which takes "
                     "far longer than the others); '--once' alone: none")
    run.add_argument("--threads", nargs="+", type=positive_int, metavar="N",
                     help="BLAS and TensorFlow threads, one study per value (default: all cores)")
    run.add_argument("--seed", type=non_negative_int, metavar="S",
                     help="seed of repeat 0 (repeat r uses S + r): initial weights and shuffling (default 0)")
    run.add_argument("--phase-epochs", type=non_negative_int, metavar="N",
                     help="epochs of the extra per-phase-timed numpy runs (0: none)")
    run.add_argument("--out", metavar="DIR", help="results folder (default: results/<timestamp>-<pid>)")
    run.add_argument("--resume", action="store_true",
                     help="continue the study in --out with the plan in its study.json, skipping finished runs and "
                     "redoing incomplete ones; plan options may be given only with the values of that plan")
    run.add_argument("--retry-failed", action="store_true",
                     help="with --resume: also redo the runs that failed or timed out ('diverged' runs are results "
                     "and are kept)")
    run.add_argument("--timeout", type=timeout_seconds, default=1800, metavar="SECONDS",
                     help="time limit of one run; a run over it is recorded as 'timeout' (default 1800)")
    run.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    _add_shared_options(run)
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run on the workers of this Dask scheduler (one worker per machine, one thread each; "
                     "see the README) instead of one run after the other here")
    run.add_argument("--placement", choices=("spread", "every-machine"), default=None,
                     help="with --scheduler: 'spread' (default) gives each run to whichever worker is free; "
                     "'every-machine' runs the whole plan on every worker machine, to compare machines")

    report = command(
        "report", help="build the report of a results folder, or of several merged",
        description="Build report.md, a self-contained report.html and figures/*.png|svg from a results folder "
        "(runs.csv required; epochs.csv, summary.csv, environment.json, study.json used when present); nothing is "
        "re-run. Several folders (made on different machines, with the same plan) are first merged into one "
        "results folder (--merge-into) and reported as one cross-machine study.",
    )
    report.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                        help="folder written by 'python -m harness run'; must contain runs.csv")
    report.add_argument("--out", metavar="DIR",
                        help="where to write the report (default: RESULTS_DIR/report/, or the merged folder's "
                        "report/); created if needed")
    report.add_argument("--merge-into", metavar="DIR", help="with several RESULTS_DIRs: the results folder they are "
                        "merged into (default: results/merged-<timestamp>)")
    report.add_argument("--accuracy-threshold", metavar="FRACTION", type=fraction,
                        help="test accuracy for the time-to-accuracy figure, e.g. 0.95 (default: the highest of "
                        "0.95, 0.94, 0.93, ... that at least two thirds of the variants reach)")

    command("list", help="frameworks, variants and presets, one line each",
                        description="List frameworks, variants and presets, one line each with a description.")
    command("env", help="the environment record every result carries, as JSON",
                        description="Print the environment record that every result carries, as JSON.")

    parity = command(
        "parity", help="check that every framework reaches the same test accuracy",
        description="Train numpy_mlp 'optimized' and every variant of every peer framework on the full MNIST with "
        "the reference configuration, same initial weights per seed, each with its own shuffling, and compare the "
        "median test accuracies. The band of each batch size comes from the measured seed-to-seed spread "
        "(reports/stats/parity_bands.json). Exit 0 when every difference is within its band, 1 when not, "
        "2 on bad input.",
    )
    parity.add_argument("--batch-sizes", nargs="+", type=positive_int, default=[500, 20000], metavar="N",
                        help="batch sizes (default: 500 20000)")
    parity.add_argument("--epochs", type=positive_int, default=35, metavar="N", help="epochs (default 35)")
    parity.add_argument("--seeds", type=positive_int, default=3, metavar="N", help="seeds 0..N-1 (default 3)")
    parity.add_argument("--frameworks", nargs="+", metavar="NAME",
                        help=f"peer frameworks to check: {', '.join(peer_frameworks())} (default: all)")
    parity.add_argument("--variants", nargs="+", metavar="NAME",
                        help="peer variants to check, in every peer framework that has them (default: all), and "
                        f"numpy variants to judge (default: {PARITY_NUMPY_VARIANT})")
    parity.add_argument("--threads", type=positive_int, metavar="N", help="threads (default: all cores)")
    parity.add_argument("--out", metavar="DIR",
                        help="where the runs and parity.csv go (default: results/parity-<timestamp>-<pid>)")
    _add_shared_options(parity)
    return parser


def _add_shared_options(command) -> None:
    """The data, and one timing study per machine (harness.locks): wait for the one running, or run beside it."""
    command.add_argument("--train-limit", type=positive_int, metavar="N", help="use only the first N training samples")
    command.add_argument("--data-dir", metavar="DIR", help="folder with MNIST (default: $MNIST_DIR, then the caches)")
    command.add_argument("--wait", action="store_true",
                         help="when another study is measuring this machine, wait for it to end instead of stopping")
    command.add_argument("--share-machine", action="store_true",
                         help="run even while another study is measuring this machine (both timings are disturbed; "
                         "recorded in study.json)")


def _check_frameworks(names, allowed: list[str], what: str) -> None:
    """Each of ``names`` one of ``allowed`` and installed here, else a UsageError naming the first that is not."""
    for name in names:
        if name not in allowed:
            raise UsageError(f"unknown {what} {name!r}; choose from {', '.join(allowed)}")
        if framework_missing(name):
            raise UsageError(framework_missing(name))


def plan_from_args(args, stored: StudyPlan | None = None) -> StudyPlan:
    """The plan the options ask for: the preset's values where an option is not given, or, for a
    resume without --preset, the ``stored`` plan's (so `--resume --out DIR` alone asks for that plan)."""
    for option in ("frameworks", "variants", "batch_sizes", "threads", "once"):
        setattr(args, option, once_each(f"--{option.replace('_', '-')}", getattr(args, option)))
    preset_name = args.preset or DEFAULT_PRESET
    preset = PRESETS[preset_name]
    base = stored if stored is not None and args.preset is None else None
    frameworks = tuple(args.frameworks or (base or preset).frameworks or available_frameworks())
    _check_frameworks(frameworks, list(FRAMEWORKS), "framework")
    known = variant_descriptions()
    wanted = args.variants or preset.variants
    variants = {f: base.variants[f] if base is not None and not args.variants and f in base.variants
                else tuple(v for v in (wanted or known[f]) if v in known[f]) for f in frameworks}
    for name in args.variants or ():  # a preset's names that no framework here has are skipped
        if not any(name in known[f] for f in FRAMEWORKS):
            choices = ", ".join(dict.fromkeys(v for f in FRAMEWORKS for v in known[f]))
            raise UsageError(f"unknown variant {name!r}; choose from {choices}")
        if not any(name in known[f] for f in frameworks):
            raise UsageError(f"variant {name!r} belongs to a framework not selected ({', '.join(frameworks)})")
    frameworks = tuple(f for f in frameworks if variants[f])
    defaults = base or preset
    train_limit = args.train_limit if args.train_limit is not None else defaults.train_limit
    batch_sizes = tuple(args.batch_sizes or defaults.batch_sizes)
    threads = tuple(t or all_cores() for t in (args.threads or defaults.threads))
    for name in args.once or ():
        if not any(name in known[f] for f in FRAMEWORKS):
            raise UsageError(f"unknown variant {name!r} in --once")
    modified = any((args.frameworks, args.variants, args.batch_sizes, args.epochs, args.repeats, args.threads,
                    args.train_limit, args.once is not None))
    regridded = any((args.frameworks, args.variants, args.batch_sizes, args.threads))
    n_train = train_limit or MNIST_TRAIN_SAMPLES  # a limit out of range is refused by StudyPlan.validate
    extras = base.extras if base else () if regridded else _extras(preset, frameworks, known, n_train)
    return StudyPlan(
        frameworks=frameworks, variants=variants, batch_sizes=batch_sizes, epochs=args.epochs or defaults.epochs,
        repeats=args.repeats or defaults.repeats, threads=tuple(dict.fromkeys(threads)),
        seed=args.seed if args.seed is not None else base.seed if base else 0, train_limit=train_limit,
        phase_epochs=args.phase_epochs if args.phase_epochs is not None else defaults.phase_epochs,
        eval_every_epoch=defaults.eval_every_epoch, once=tuple(defaults.once if args.once is None else args.once),
        preset=base.preset if base else f"{preset_name} (modified)" if modified else preset_name, extras=extras,
        **({"config": base.config} if base else {}),
    )


def _extras(preset, frameworks, known: dict, n_train: int) -> tuple[Extra, ...]:
    """The preset's extra blocks for the frameworks of the plan: the variants each framework has (a block
    without any is dropped), the batch sizes the training set allows, None threads as all cores."""
    extras = []
    for block in preset.extras:
        variants = {f: tuple(v for v in block.variants if v in known[f]) for f in frameworks}
        variants = {f: v for f, v in variants.items() if v}
        batch_sizes = tuple(b for b in block.batch_sizes if b <= n_train)
        if variants and batch_sizes:
            extras.append(Extra(variants, batch_sizes, tuple(dict.fromkeys(t or all_cores() for t in block.threads))))
    return tuple(extras)


def cmd_run(args) -> int:
    if args.placement and not args.scheduler:
        raise UsageError("--placement needs --scheduler: without a cluster every run happens here")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed needs --resume: it redoes the failed runs of a study being continued")
    out = check_out_dir(args.out, args.resume)
    # a resume asks for the stored plan with the options over it, once the folder is locked
    plan = (lambda stored: plan_from_args(args, stored)) if args.resume else plan_from_args(args)
    data_dir = check_data_dir(args.data_dir)
    from .study import run_study

    executor = None  # the study's default: here, holding this machine
    if args.scheduler:
        from .dask_executor import DaskExecutor

        executor = DaskExecutor(args.scheduler, args.placement or "spread")
    try:
        files = run_study(plan, out, data_dir, executor=executor, resume=args.resume, retry_failed=args.retry_failed,
                          timeout=args.timeout, command=_as_typed(), wait_machine=args.wait,
                          share_machine=args.share_machine)
        print(f"results: {files.out}")
        if not args.no_report:
            from reports.build import build_report
            from reports.data import ReportInputError

            try:
                print(f"report: {build_report(files.out)}")
            except (OSError, ReportInputError) as exc:
                raise UsageError(f"the results are complete, but the report could not be built ({exc}); "
                                 f"once fixed: python -m harness report {files.out}") from None
        from reports.stats.summary import noisy_cell_lines

        for line in noisy_cell_lines(files.summary):  # last, where a reader looks
            print(line)
    except KeyboardInterrupt as exc:
        return _stopped(exc, out, f"; continue with --resume --out {out}")
    return 0


def _as_typed() -> list[str]:
    """This command as the user typed it (sys.argv[0] is the path of this file): the locks' holders and
    environment.json name it."""
    return ["python", "-m", "harness", *sys.argv[1:]]


def _stopped(exc: KeyboardInterrupt, out, hint: str = "") -> int:
    """Say that the study in ``out`` was interrupted and what it kept (with ``hint`` when it kept runs)."""
    kept = (out / STUDY_FILE).exists()
    return interrupted(exc, f": finished runs are kept in {out}{hint}" if kept else
                       ": no run had started; nothing was kept")


def cmd_report(args) -> int:
    """Build the report of one results folder, or merge several into one folder first and report on it."""
    from reports.build import build_report
    from reports.data import ReportInputError
    from reports.folder.merge import merge

    if args.merge_into and len(args.results_dirs) == 1:
        raise UsageError("--merge-into needs several RESULTS_DIRs to merge")
    folder = args.results_dirs[0]
    try:
        if len(args.results_dirs) > 1:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            folder = merge(args.results_dirs, args.merge_into or Path("results") / f"merged-{stamp}")
            print(f"merged {len(args.results_dirs)} results folders into {folder}")
        path = build_report(folder, args.out, accuracy_threshold=args.accuracy_threshold)
    except ReportInputError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # --out on a file, a read-only folder, a full disk: the user's to fix
        where = f" {exc.filename}" if exc.filename else ""
        raise UsageError(f"cannot write the report{where}: {exc.strerror or exc}") from None
    print(f"report written to {path} (also {path.with_suffix('.html')} and {path.parent / 'figures'}/)")
    return 0


def cmd_list(args) -> int:
    print("frameworks:")
    for name, text in FRAMEWORKS.items():
        missing = framework_missing(name)
        status = f" [{missing}]" if missing else " [optional: installed here]" if name in OPTIONAL_FRAMEWORKS else ""
        print(f"  {name:<10} {text}{status}")
    print("variants:")
    names = {f"{framework}/{name}": text for framework, variants in variant_descriptions().items()
             for name, text in variants.items()}
    width = max(map(len, names), default=0)
    for name, text in names.items():
        print(f"  {name:<{width}}  {text}")
    print("presets:")
    for name, preset in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"  {name:<10} {preset.description}{default}")
    return 0


def cmd_env(args) -> int:
    print(json.dumps(environment_record(), indent=2))
    return 0


def _formatted(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column.startswith("seed_") or column.endswith("median"):
            shown[column] = shown[column].map(lambda v: f"{v:.4f}" if pd.notna(v) else "-")
    if "diff_pp" in shown:
        shown["diff_pp"] = shown["diff_pp"].map(lambda v: f"{v:+.2f}" if pd.notna(v) else "-")
        shown["band_pp"] = shown["band_pp"].map(lambda v: f"{v:.2f}")
    return shown.to_string(index=False)


def _parity_plan(args) -> StudyPlan:
    """The one study that trains every numpy variant judged and every peer variant, checked before anything
    runs. --variants names both kinds; a test registers its broken numpy variants through $MLP_STUDY_PLUGINS
    and names them there."""
    known = variant_descriptions()
    peers = tuple(args.frameworks or (f for f in available_frameworks() if f != "numpy"))
    _check_frameworks(peers, peer_frameworks(), "peer framework")
    for name in args.variants or ():
        if name not in known["numpy"] and not any(name in known[f] for f in peers):
            choices = ", ".join(sorted({v for f in peers for v in known[f]}))
            raise UsageError(f"unknown peer variant {name!r}; choose from {choices} (or numpy variants to judge: "
                             f"{', '.join(known['numpy'])})")
    judged = tuple(dict.fromkeys(v for v in args.variants or () if v in known["numpy"])) or (PARITY_NUMPY_VARIANT,)
    named_peers = [v for v in args.variants or () if v not in known["numpy"]]
    variants = {f: tuple(v for v in known[f] if not named_peers or v in named_peers) for f in peers}
    peers = tuple(f for f in peers if variants[f])
    return StudyPlan(
        frameworks=("numpy", *peers), variants={"numpy": judged, **{f: variants[f] for f in peers}},
        batch_sizes=tuple(dict.fromkeys(args.batch_sizes)), epochs=args.epochs, repeats=args.seeds,
        threads=(args.threads or all_cores(),), seed=0, train_limit=args.train_limit, phase_epochs=0,
        eval_every_epoch=False, preset="parity",
    )


def cmd_parity(args) -> int:
    """Train the parity study, then judge it with reports.stats.parity: 0 when parity holds, 1 when not."""
    from .study import run_study

    plan = _parity_plan(args)
    out = check_out_dir(args.out, resume=False, prefix="parity-")
    data_dir = check_data_dir(args.data_dir)
    try:
        files = run_study(plan, out, data_dir, command=_as_typed(), wait_machine=args.wait,
                          share_machine=args.share_machine, resumable=False)
    except KeyboardInterrupt as exc:
        return _stopped(exc, out)
    spread = measured_spread()
    accuracies = accuracy_table(pd.read_csv(files.runs))
    table = parity_table(accuracies, plan.variants["numpy"], args.seeds, spread)
    write_csv_atomic(out / PARITY_FILE, table)
    floor_applies = args.train_limit is None and args.epochs >= 35
    print(f"{_formatted(accuracies)}\n\n{_formatted(table)}")
    print(f"table: {out / PARITY_FILE}")
    spreads = ", ".join(f"batch {b}: {s:.3f} pp" for b, s in sorted(spread.items()))
    print(f"band: {BAND_SIGMAS:g} x sigma_b x sqrt(pi / n) for n = {args.seeds} seed(s) a side, sigma_b the measured "
          f"seed-to-seed spread of test accuracy ({spreads}; {BANDS_FILE.name}, full MNIST, 35 epochs)")
    if args.train_limit is not None or args.epochs != 35 or not set(args.batch_sizes) <= set(spread):
        print("note: the bands were measured at full MNIST, 35 epochs; at other settings the seed-to-seed "
              "spread differs and the verdict is indicative only")
    if not floor_applies:
        print(f"note: the {ACCURACY_FLOOR:.0%} floor at batch {FLOOR_BATCH_SIZE} applies only to full data and 35+ "
              "epochs")
    failures = parity_failures(accuracies, table, floor_applies)
    for numpy_variant, problems in failures.items():
        for problem in problems:
            print(f"parity FAILED for numpy/{numpy_variant}: {problem}")
        if not problems:
            print(f"parity holds for numpy/{numpy_variant}: every peer's median within its band at every batch size")
    return 1 if any(failures.values()) else 0


def main(argv: list[str] | None = None) -> int:
    """Run the command: its status, 2 on bad input (one line), 1 on an internal error (one line, or the traceback
    with --traceback)."""
    args = build_parser().parse_args(argv)
    from .mnist import MnistError

    stop_like_ctrl_c()
    commands = {"run": cmd_run, "report": cmd_report, "list": cmd_list, "env": cmd_env, "parity": cmd_parity}
    try:
        return commands[args.command](args)
    except (UsageError, MnistError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # before a command's own handling began (e.g. while importing)
        return interrupted(exc, " before any run started")
    except Exception as exc:  # noqa: BLE001 - one line for users, the details on request
        if args.traceback:
            traceback.print_exc()
        print(f"error: internal error in '{args.command}': {type(exc).__name__}: {exc} (rerun with --traceback for "
              "the details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
