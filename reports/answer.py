"""The report's answer, prepared for the template: the short answer's sentences (each from a verdict with its
95 % interval in winners.csv or crossovers.csv), the crossover table's rows and the cost model's fit notes.
Nothing here claims more than its interval: a lead whose interval holds 1 is "no clear winner"."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from . import style
from .data import StudyData
from .document import markdown_table
from .folder.schema import (ALONE, ALWAYS, CLEAR, COST_MODEL_FILE, CROSSOVERS_FILE, NEVER, NO_CLEAR_WINNER,
                            WINNERS_FILE)
from .stats.cost_model import BAD_FIT, MIN_POINTS

MAX_SENTENCES = 5
LONG_RUN = 300  # epochs of the long-training sentence (the winner map's top row)


@dataclass
class Answer:
    sentences: list[str] = field(default_factory=list)
    crossovers: str = ""  # the crossover table (Markdown)
    fit_note: str = ""


def ratio_text(row) -> str:
    """'1.13× [1.01, 1.17]' (or without the interval when there is none)."""
    if style.finite(row["ratio_lo"]):
        return f"{row['ratio']:.2f}× [{row['ratio_lo']:.2f}, {row['ratio_hi']:.2f}]"
    return f"{row['ratio']:.2f}× (no interval)"


def lead_group(rows: list[dict]) -> str:
    """Winner-map cells of one winner and one kind of lead as a clause: who has the shortest median training at
    which batch sizes, by how much over the runner-up, and whether that is a clear lead, none, or unjudged."""
    first, sizes = rows[0], style.and_join([f"{r['batch_size']:,}" for r in rows])
    winner, ratios = style.label_of(first["winner"]), ", ".join(ratio_text(r) for r in rows)
    if first["lead"] == ALONE:
        return f"{winner} at batch {sizes} (the only variant)"
    if first["lead"] == CLEAR:
        return f"{winner} at batch {sizes} ({ratios} ahead of the runner-up)"
    if first["lead"] == NO_CLEAR_WINNER:
        return f"no clear winner at batch {sizes} ({winner} over {style.label_of(first['runner_up'])}: {ratios})"
    plain = ", ".join(f"{r['ratio']:.2f}×" for r in rows)
    return f"{winner} at batch {sizes} ({plain} over the runner-up; one run per cell: no interval, no verdict)"


def leads(rows: list[dict]) -> str:
    """Consecutive batch sizes with the same winner and kind of lead grouped into one clause each."""
    groups: list[list[dict]] = []
    for row in rows:
        if groups and (groups[-1][0]["winner"], groups[-1][0]["lead"]) == (row["winner"], row["lead"]):
            groups[-1].append(row)
        else:
            groups.append([row])
    return "; ".join(map(lead_group, groups))


def winners_sentence(winners: pd.DataFrame, threads: int, epochs: int, several: bool) -> str | None:
    """Who trains fastest over this study's length (``epochs``) at each batch size."""
    rows = winners[(winners["threads"] == threads) & (winners["epochs"] == epochs)].sort_values("batch_size")
    if rows.empty:
        return None
    where = f" with {style.threads_label(threads)}" if several else ""
    return (f"Over {epochs} epochs (this study's length){where}, the shortest median training: "
            f"{leads(rows.to_dict('records'))}.")


def crossover_text(row) -> str:
    """Where NumPy is faster per steady epoch, from a crossovers.csv row: "from batch b* [lo, hi]", or "at every" /
    "at no measured batch size"; "by the fit, not clearly" where the interval does not support it."""
    span = f"{row['measured_min']:,.0f}-{row['measured_max']:,.0f}"
    if row["kind"] in (ALWAYS, NEVER):
        claim = f"faster at {'every' if row['kind'] == ALWAYS else 'no'} measured batch size ({span})"
    else:
        claim = f"faster {row['kind']} batch {row['batch_size']:,.0f}"
    if pd.isna(row["batch_size_lo"]):
        return f"{claim} by the fit (cells of one run: no interval)"
    clear = str(row["clear"]) == "True"  # a bool, or the text 'True' in a CSV's object column
    if clear and row["kind"] in (ALWAYS, NEVER):
        return f"{claim}, clearly (the crossover's 95 % interval lies outside the measured batch sizes)"
    if clear:
        return f"{claim}, crossover {batch_interval(row)}"
    return f"{claim} by the fit, not clearly: crossover {batch_interval(row)}"


def batch_interval(row) -> str:
    lo, hi = row["batch_size_lo"], row["batch_size_hi"]
    if not (isinstance(lo, float) and not math.isnan(lo)):
        return "(no interval)"
    return f"[{'any' if lo == 0 else f'{lo:,.0f}'}, {'never' if math.isinf(hi) else f'{hi:,.0f}'}]"


def build(data: StudyData, main_threads: int) -> Answer:
    """The answer section's facts, at the study's epochs and the main thread setting (and one thread)."""
    out = Answer()
    winners, crossings = data.answer.get(WINNERS_FILE), data.answer.get(CROSSOVERS_FILE)
    threads = style.order_threads(winners["threads"].unique()) if winners is not None and len(winners) else []
    own = data.epochs_per_run or 0
    out.sentences = [winners_sentence(winners, t, own, len(threads) > 1) for t in threads[:2]]
    if threads and own != LONG_RUN:
        out.sentences.append(_changed_at_long_run(winners, threads[0], own, len(threads) > 1))
    if crossings is not None and len(crossings):
        main = crossings[crossings["threads"] == main_threads]
        if len(main):
            where = f" with {style.threads_label(main_threads)}" if len(threads) > 1 else ""
            clauses = [f"against {style.label(r['framework'], r['variant'])}: {crossover_text(r)}"
                       for r in main.to_dict("records")]
            out.sentences.append(f"Per steady epoch (the per-step cost model's crossover [95 %]){where}, NumPy "
                                 f"optimized {'; '.join(clauses)}.")
        out.crossovers = markdown_table(
            ["Threads", "NumPy", "Against (fastest fitted variant)", "NumPy faster per steady epoch"],
            [[str(r["threads"]), r["numpy_variant"], style.label(r["framework"], r["variant"]), crossover_text(r)]
             for r in crossings.to_dict("records")])
    out.fit_note = fit_note(data.answer.get(COST_MODEL_FILE), data.batch_sizes)
    out.sentences = [s for s in out.sentences if s][:MAX_SENTENCES]
    return out


def _changed_at_long_run(winners: pd.DataFrame, threads: int, own: int, several: bool) -> str | None:
    """A sentence on the batch sizes where a long training has another winner than the study's length."""
    at = winners[winners["threads"] == threads]
    short, long = (at[at["epochs"] == e].set_index("batch_size") for e in (own, LONG_RUN))
    changed = [b for b in long.index if b in short.index and long.loc[b, "winner"] != short.loc[b, "winner"]]
    if not changed:
        return None
    rows = [dict(long.loc[b], batch_size=b) for b in changed]
    where = f" with {style.threads_label(threads)}" if several else ""
    return f"Over {LONG_RUN} epochs{where} the winner changes: {leads(rows)}."


def fit_note(model: pd.DataFrame | None, batch_sizes: list[int]) -> str:
    """Where the per-step cost model fits badly (largest relative residual), that it fits everywhere, or why there
    is none."""
    if model is None or model.empty:
        sizes = style.and_join([f"{b:,}" for b in batch_sizes]) or "none"
        return (f"There is no per-step cost model: it needs a variant's steady epochs at {MIN_POINTS} or more batch "
                f"sizes, and this study ran batch size(s) {sizes}. The default preset (`python -m harness run`) runs "
                "five.")
    fits = model.drop_duplicates(["framework", "variant", "threads"])
    bad = fits[fits["bad_fit"].astype(bool)].sort_values("max_residual_rel", ascending=False)
    if bad.empty:
        return f"The model fits every variant within {fits['max_residual_rel'].max():.0%} (largest relative residual)."
    worst = [f"{style.label(r['framework'], r['variant'])} ({style.threads_label(r['threads'])}, "
             f"{r['max_residual_rel']:.0%})" for r in bad.head(3).to_dict("records")]
    return (f"The model fits badly (a relative residual of {BAD_FIT:.0%} or more) for {len(bad)} of {len(fits)} fits, "
            f"worst {style.and_join(worst)}: read their costs and crossovers with care (per point in "
            "`cost_model.csv`).")
