"""The paragraphs under the report's figures: sentences computed from the data, one function per figure. Each
returns Markdown blocks (list items, paragraphs) that report.md.j2 shows as they are; texts speak of the main
thread setting (or say which one they use) and claim no more than the verdicts of summary.csv."""
from __future__ import annotations

import numbers

import pandas as pd

from .article import ARTICLE_TOTAL_GAIN
from .data import accuracy_curves, phase_table, rows, select, time_to_accuracy_table
from .folder.schema import CELL_KEY, FASTER, PHASES, SLOWER, UNCLEAR
from .sections import name
from .style import (PHASE_LABELS, and_join, finite, fmt_acc, fmt_interval, fmt_pct, fmt_ratio, fmt_s, fmt_verdict,
                    framework_label, label_of, threads_label, variant_rank)

CLAIMS = {FASTER: "{} is faster than {}", SLOWER: "{} is slower than {}",
          UNCLEAR: "there is no clear difference between {} and {}"}
PHASE_NAMES = {phase: text.split(" (")[0] for phase, text in PHASE_LABELS.items()}  # 'forward propagation'


def blocks(*parts: str) -> str:
    """Markdown blocks (an empty part leaves no block)."""
    return "\n\n".join(p for p in parts if p)


def sentences(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def items(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def main_threads_note(r) -> str:
    return (f"Figures in this paragraph are for {threads_label(r.main_threads)}; the other thread settings are in "
            "the figure and the headline table." if r.several else "")


def threads_note(threads: int, shown: bool) -> str:
    return f"Figures in this paragraph are for {threads_label(threads)}." if shown else ""


def threads_of(r, frame: pd.DataFrame) -> int:
    """The main thread setting if ``frame`` has rows at it, else that of its first row."""
    return r.main_threads if (frame["threads"] == r.main_threads).any() else int(frame["threads"].iloc[0])


def claim(row, col: str, subject: str, other: str) -> str:
    verdict = row.get(f"{col}_verdict")
    return CLAIMS.get(verdict, "{} against {}").format(subject, other) + f": {fmt_ratio(row, col)}"


def wall(cell) -> str:
    return f"{fmt_s(cell['wall_median_s'])} s"


def time_vs_batch(r) -> str:
    lines = []
    for b, t in r.combos():
        cells = r.rows(batch_size=b, threads=t)
        if cells:
            fast, slow = (f(cells, key=lambda c: c["wall_median_s"]) for f in (min, max))
            lines.append(f"At batch {b:,} the lowest median wall time is {name(fast)}'s ({wall(fast)})"
                         + (f" and the highest {name(slow)}'s ({wall(slow)})" if len(cells) > 1 else "") + ".")
    bs, trend = r.d.batch_sizes, []
    for fw in r.d.frameworks if len(bs) >= 2 else []:
        a, z = r.best(bs[0], r.main_threads, fw), r.best(bs[-1], r.main_threads, fw)
        if a is not None and z is not None:
            trend.append(f"the fastest {framework_label(fw)} median goes from {wall(a)} ({a['variant']}) to {wall(z)} "
                         f"({z['variant']})")
    if len(bs) >= 2:
        batches = f"From batch {bs[0]:,} to {bs[-1]:,}, {and_join(trend)}." if trend else ""
    else:
        batches = "Only one batch size was run, so the figure cannot show how time depends on it."
    cpw = [c for c in r.rows() if finite(c["cpu_per_wall"])]
    top = max(cpw, key=lambda c: c["cpu_per_wall"]) if cpw else None
    cpu = (f"CPU time exceeds wall time where several cores work in parallel: up to {top['cpu_per_wall']:.2f} "
           f"CPU-seconds per second ({name(top)}).") if top is not None else ""
    return blocks(items(lines), sentences(batches, cpu, main_threads_note(r)))


def speedup_vs_peer(r) -> str:
    lines = []
    for b, t in r.combos():
        bn = r.best(b, t, "numpy")
        if bn is None or not isinstance(bn["best_peer"], str):
            continue
        others = [o for o in r.rows(batch_size=b, threads=t, framework="numpy") if o["variant"] != bn["variant"]]
        listed = "; ".join(f"{o['variant']} {fmt_ratio(o, 'speedup_vs_best_peer')}, "
                           f"{fmt_verdict(o, 'speedup_vs_best_peer')}" for o in others)
        peer, steady = r.row(bn["best_peer"], b, t), bn["best_peer_steady"]
        line = f"At batch {b:,}, " + claim(bn, "speedup_vs_best_peer", f"NumPy {bn['variant']} ({wall(bn)})",
                                           f"the fastest peer, {label_of(bn['best_peer'])}"
                                           + (f" ({wall(peer)})" if peer is not None else ""))
        if isinstance(steady, str):
            line += "; per steady epoch, " + claim(bn, "steady_speedup_vs_best_peer", "it", label_of(steady))
        lines.append(line + (f". The other NumPy variants: {listed}" if others else "") + ".")
    ladder = ""
    if lines:
        faster = r.rows(framework="numpy", threads=r.main_threads, speedup_vs_best_peer_verdict=FASTER)
        first = min((c["variant"] for c in faster), key=lambda v: variant_rank("numpy", v)) if faster else None
        ladder = (f"On the ladder, {first} is the first NumPy step that is faster than the fastest peer (interval "
                  "above 1) at some batch size." if first else "No NumPy variant is clearly faster than the fastest "
                  "peer at any batch size (no interval lies above 1).")
    return blocks(items(lines), sentences(ladder, main_threads_note(r)))


def ladder(r) -> str:
    lines = []
    for b, t in r.combos(framework="numpy"):
        steps = [s for s in r.rows(framework="numpy", batch_size=b, threads=t)
                 if finite(s["speedup_vs_step3"]) and s["variant"] != "step3"]
        if not steps:
            continue
        line = f"At batch {b:,}: " + ", ".join(f"{s['variant']} {fmt_ratio(s, 'speedup_vs_step3')}" for s in steps)
        original = next((s for s in steps if s["variant"] == "original"), None)
        if original is not None:
            inverse = (1 / original[f"speedup_vs_step3{end}"] for end in ("", "_hi", "_lo"))
            line += f"; so step3 is {fmt_interval(*inverse, original['speedup_vs_step3_verdict'])} as fast as original"
        lines.append(line + ".")
    if not lines:
        return "Fewer than two steps of the ladder were run, so no gains can be computed."
    return blocks("Each NumPy step against step3 (ratio of median wall times, 95 % interval; above 1 = faster):",
                  items(lines),
                  sentences("For comparison, the article reports 11 → 9.6 s for Step II, 9.6 → 7.3 s at batch 500 "
                            "and 8.7 → 6.8 s at batch 20,000 for Step III, and more than "
                            f"{ARTICLE_TOTAL_GAIN}× from the original code to Step III.", main_threads_note(r)))


def phases(r) -> str:
    """Per batch size, the largest phase of each instrumented NumPy variant (its share of the epoch) and how the
    epoch shrinks along the ladder; a note on the variants that ran in row shares (their bars add up threads)."""
    table, runs = phase_table(r.d), r.d.runs
    threads, lines = threads_of(r, table), []
    cells = [dict(c, total=sum(c[p] for p in (*PHASES, "other")), top=max(PHASES, key=c.get))
             for c in select(table, threads=threads).to_dict("records")]
    for b in sorted({c["batch_size"] for c in cells}):
        group = [dict(c, share=c[c["top"]] / c["total"] if c["total"] > 0 else None) for c in cells
                 if c["batch_size"] == b]
        shares = [c for c in group if isinstance(c["share"], numbers.Number)]
        if len({c["top"] for c in group}) == 1 and len(group) > 1:
            low, high = (fmt_pct(f(c["share"] for c in shares)) for f in (min, max))
            line = (f"At batch {b:,}, {PHASE_NAMES[group[0]['top']]} is the largest phase in every variant "
                    f"({low}{'' if low == high else f'–{high}'} of the epoch)")
        else:
            line = f"At batch {b:,}, the largest phase is " + "; ".join(
                f"{c['variant']}: {PHASE_NAMES[c['top']]} ({fmt_pct(c['share'])})" for c in shares)
        if len(group) > 1:
            a, z = group[0], group[-1]
            steps = ", ".join(f"{p} {fmt_s(a[p])} → {fmt_s(z[p])} s" for p in ("forward", "backward", "update")
                              if a[p] > 0)
            line += (f". From {a['variant']} to {z['variant']} an epoch shrinks from {fmt_s(a['total'])} s to "
                     f"{fmt_s(z['total'])} s ({steps})")
        lines.append(line + ".")
    shared = runs[runs["instrumented"] & (runs["row_threads"] > 1)]
    rows_note = (f"At batch {', '.join(f'{b:,}' for b in sorted(shared['batch_size'].unique()))}, "
                 f"{' and '.join(sorted(shared['variant'].unique()))} trains each batch's rows in shares on several "
                 "threads; when its phases are timed it runs those shares one after the other (the same arithmetic), "
                 "so its bars add up the work of all its threads, not the wall time of an untimed epoch."
                 ) if len(shared) else ""
    return blocks(items(lines), sentences(threads_note(threads, table["threads"].nunique() > 1), rows_note))


def accuracy(r) -> str:
    """Per batch size, the lowest and highest final test accuracy (median over repeats) of the variants, against
    the largest spread among the repeats of one variant (what the seed and the shuffling alone make): the
    variants train alike when they differ by no more than 1 point or than their repeats do."""
    lines = []
    for b, g in accuracy_curves(r.d).groupby("batch_size"):
        last = g.sort_values("epoch").groupby(["framework", "variant"]).tail(1).dropna(subset="test_acc")
        if last.empty:
            continue
        lo, hi = last.loc[last["test_acc"].idxmin()], last.loc[last["test_acc"].idxmax()]
        if len(last) == 1:
            lines.append(f"At batch {b:,}, only {name(lo)} has accuracy data (final test accuracy "
                         f"{fmt_acc(lo['test_acc'])}).")
            continue
        runs = r.d.timing_runs[r.d.timing_runs["batch_size"] == b]
        repeats = runs.groupby(CELL_KEY)["test_acc"].agg(lambda a: a.max() - a.min()).max() * 100
        spread, noise = (hi["test_acc"] - lo["test_acc"]) * 100, float(repeats) if repeats == repeats else 0.0
        verdict = ("the implementations learn the same model as far as this study can tell, so their times are "
                   "comparable." if spread <= max(1.0, noise) else "more than one point and more than the repeats "
                   "do, so some implementations do not train the same way and their times should be compared with "
                   "care.")
        lines.append(f"At batch {b:,}, the final test accuracy lies between {fmt_acc(lo['test_acc'])} ({name(lo)}) "
                     f"and {fmt_acc(hi['test_acc'])} ({name(hi)}), a spread of {spread:.1f} percentage points (the "
                     "repeats of one variant, which differ only in their seed and shuffling, spread up to "
                     f"{noise:.1f}): {verdict}")
    return items(lines)


def time_to_accuracy(r) -> str:
    table, curves = time_to_accuracy_table(r.d, r.threshold), accuracy_curves(r.d)
    threads, lines = threads_of(r, table), []
    for b, g in select(table, threads=threads).groupby("batch_size", sort=True):
        g, c = g.sort_values("time_s", ascending=True), curves[curves["batch_size"] == b]
        done = g["time_s"].map(finite)
        reached, missed = rows(g[done]), rows(g[~done])
        line = f"At batch {b:,}"
        if reached:
            f, peers = reached[0], [p for p in reached if p["framework"] != "numpy"]
            line += (f", {name(f)} has the shortest median time to {r.threshold:.0%} test accuracy, "
                     f"{fmt_s(f['time_s'])} s of training (epoch {f['epoch']})")
            if peers and f["framework"] == "numpy":
                line += f"; the first peer is {name(peers[0])} at {fmt_s(peers[0]['time_s'])} s"
            if missed:
                line += f"; {and_join([name(m) for m in missed])} did not reach it"
        else:
            best = c.loc[c["test_acc"].idxmax()] if c["test_acc"].notna().any() else None
            line += f", no variant reaches it within {r.d.epochs_per_run or '?'} epochs" + (
                f" (best median test accuracy {fmt_acc(best['test_acc'])}, {name(best)})" if best is not None else "")
        lines.append(line + ".")
    return blocks(items(lines), threads_note(threads, table["threads"].nunique() > 1))


def efficiency(r) -> str:
    numpy = select(r.ok, framework="numpy")
    cells = numpy[numpy["gemm_efficiency"].map(finite)]
    threads, lines = threads_of(r, cells), []
    for b, group in select(cells, threads=threads).groupby("batch_size"):
        group = rows(group)
        best = max(group, key=lambda c: c["gemm_efficiency"])
        others = [f"{o['variant']} {fmt_pct(o['gemm_efficiency'])}" for o in group if o["variant"] != best["variant"]]
        lines.append(f"At batch {b:,} the matrix products alone take {fmt_s(best['gemm_floor_median_s'])} s; "
                     f"{best['variant']} comes closest to that floor ({fmt_pct(best['gemm_efficiency'])} of its time "
                     "is BLAS work)" + (f", against {and_join(others)}" if others else "") + ".")
    return blocks(items(lines), threads_note(threads, cells["threads"].nunique() > 1))


WRITERS = {f.__name__: f for f in (time_vs_batch, speedup_vs_peer, ladder, phases, accuracy, time_to_accuracy,
                                   efficiency)}


def texts(r, figures: dict, guard) -> dict[str, str]:
    """The paragraph under each figure drawn (empty for the others), each computed under ``guard``."""
    return {figure: guard(lambda: WRITERS[figure](r)) if figure in WRITERS and not o.left_out else ""
            for figure, o in figures.items()}
