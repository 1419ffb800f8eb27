"""What report.md.j2 shows, prepared: each section's tables (as Markdown), facts and sentences from the data, so
that the template only places them. Texts speak of the most threads (``main_threads``); tables show all."""
from __future__ import annotations

import numbers
from collections import defaultdict

import pandas as pd

from . import article, style
from .data import StudyData, rows, select
from .document import markdown_table
from .folder.schema import CELL_KEY, OK, variant_descriptions
from .style import fmt_acc, fmt_epochs, fmt_pct, fmt_ratio, fmt_s, fmt_verdict, framework_label, label, label_of

LOSSES = {"logloss": "LogLoss: binary cross-entropy of each output node, summed over the 10 nodes and the samples of "
                     "a mini-batch (not averaged)", "mse": "half squared error, summed over nodes and samples"}
ARTICLE_LR = "the article's rule min(0.001, 2 / batch size): 0.001 at batch 500, 0.0001 at batch 20,000"
MAX_ERROR = 180  # characters of a failed run's error shown in the table
DEFAULT_FRAMEWORKS = ("numpy", "tensorflow")  # expected when study.json does not list its frameworks


def name(cell) -> str:
    return label(cell["framework"], cell["variant"])


def guard(part) -> str:
    """A part of the report, or in its place why it could not be computed: one part must not lose the rest."""
    try:
        return part()
    except Exception as exc:  # noqa: BLE001
        return f"(This part could not be computed from the data: {type(exc).__name__}: {exc}.)"


class Report:
    """The views of the data the template shows: cells of summary.csv (``ok``: those with a time)."""

    def __init__(self, data: StudyData, threshold: float):
        self.d, self.threshold = data, threshold  # the time-to-accuracy threshold
        self.ok = data.stats[data.stats["n_ok"] > 0]
        self.several = len(data.threads_values) > 1
        self.main_threads = data.threads_values[0]
        self.peers = [f for f in data.frameworks if f != "numpy"]  # with successful runs, in report order
        self.present = sorted(set(data.runs["framework"]), key=style.framework_rank)  # with any runs
        runs = data.runs
        self.counts = dict(runs=len(runs), ok=int((runs["status"] == OK).sum()),
                           instrumented=int(runs["instrumented"].sum()),
                           repeats=data.study.get("repeats") or int(runs["repeat"].max()) + 1)
        self.batch_sizes = style.and_join([f"{b:,}" for b in data.batch_sizes])
        self.threads = (style.threads_label(0) if data.threads_values == [0]
                        else style.and_join([str(t) for t in data.threads_values]))

    def rows(self, frame: pd.DataFrame | None = None, **equal) -> list[pd.Series]:
        return rows(select(self.ok if frame is None else frame, **equal))

    def best(self, b: int, t: int, framework: str, metric: str = "wall_median_s") -> pd.Series | None:
        values = select(self.ok, batch_size=b, threads=t, framework=framework)[metric].dropna()
        return None if values.empty else self.ok.loc[values.idxmin()]

    def row(self, name, b: int, t: int) -> pd.Series | None:
        """The cell of a 'framework/variant' name (summary.csv's best_peer, NaN if none) at batch b, threads t."""
        framework, _, variant = str(name).partition("/")
        s = select(self.ok, framework=framework, variant=variant, batch_size=b, threads=t)
        return None if s.empty else s.iloc[0]

    def combos(self, main: bool = True, **equal) -> list[tuple[int, int]]:
        """(batch size, threads) of the cells with a time; ``main``: at the main thread setting if it has any."""
        frame = select(self.ok, **equal)
        combos = [(int(b), int(t)) for b, t in dict.fromkeys(zip(frame["batch_size"], frame["threads"]))]
        return [c for c in combos if c[1] == self.main_threads or not main] or combos

    def at(self, cell) -> str:
        return f"batch {cell['batch_size']:,}" + (f" ({style.threads_label(cell['threads'])})" if self.several else "")

    def names_at(self, cells) -> str:
        return style.and_join([f"{name(c)} at {self.at(c)}" for c in cells])

    def table(self, headers: list[str], body: list[list], align: str) -> str:
        """A Markdown table led by Batch (and Threads with several thread settings): each row's first two values."""
        lead = ["Batch"] + (["Threads"] if self.several else [])
        body = [[f"{b:,}"] + ([str(t)] if self.several else []) + rest for b, t, *rest in body]
        return markdown_table(lead + headers, body, "r" * len(lead) + align)

    def headline(self) -> tuple[str, str]:
        """The headline table; the cells without a successful run."""
        body = []
        for c in self.rows(self.d.stats):
            repeated = c["n_ok"] >= 2
            spread = (fmt_pct(c["wall_rel_iqr"]) + (" **noisy**" if c["noisy"] else "") if repeated
                      else "1 run" if c["n_ok"] == 1 else "–")
            body.append([c["batch_size"], c["threads"], framework_label(c["framework"]), c["variant"],
                         f"{c['n_ok']}/{c['n_runs']}", fmt_s(c["wall_median_s"]),
                         fmt_s(c["wall_iqr_s"]) if repeated else "–", spread, fmt_acc(c["test_acc_median"])]
                        + [f(c, col) for col in ("speedup_vs_best_peer", "steady_speedup_vs_best_peer")
                           for f in (fmt_ratio, fmt_verdict)])
        table = self.table(["Framework", "Variant", "Runs ok", "Wall median (s)", "Wall IQR (s)", "Spread",
                            "Test accuracy", "Speed-up vs fastest peer", "Verdict",
                            "Steady-epoch speed-up vs fastest peer", "Steady verdict"], body, "llrrrrrrrrl")
        return table, self.names_at(self.rows(self.d.stats, n_ok=0))

    def config(self) -> defaultdict | None:
        """study.json's network and training settings, written out ('?' where one is not recorded)."""
        cfg = self.d.study.get("config")
        if not cfg or not isinstance(cfg, dict):
            return None
        sizes, lr, loss = cfg.get("layer_sizes"), cfg.get("learning_rate"), cfg.get("loss", "?")
        return defaultdict(lambda: "?", cfg, loss=LOSSES.get(loss, loss),
                           layers="-".join(map(str, sizes)) if isinstance(sizes, list) else "?",
                           learning_rate="%g" % lr if isinstance(lr, numbers.Number) else ARTICLE_LR)

    def environment(self) -> dict:
        """environment.json's BLAS libraries and command, written out."""
        blas, cmd = self.d.env.get("blas"), self.d.env.get("command")
        libraries = "; ".join(
            f"{b.get('internal_api', '?')} {b.get('version', '')} ({b.get('num_threads', '?')} threads"
            + (f", {b['threading_layer']}" if b.get("threading_layer") else "") + ")"
            for b in blas if isinstance(b, dict)) if isinstance(blas, list) and blas else "unknown"
        return dict(blas=libraries, command=" ".join(cmd) if isinstance(cmd, list) else cmd)

    def compared(self) -> str:
        """'What is compared': each variant that ran or is registered, its description, runs ok / runs."""
        registry, runs = variant_descriptions(), self.d.runs
        pairs = set(zip(runs["framework"], runs["variant"])) | {(f, v) for f, named in registry.items() for v in named}
        body = []
        for fw, v in style.sort_series(pairs):
            mine = select(runs, framework=fw, variant=v)
            ok = int((mine["status"] == OK).sum())
            body.append([label(fw, v), registry.get(fw, {}).get(v, "(not described)"),
                         f"{ok}/{len(mine)}" if len(mine) else "not run"])
        return markdown_table(["Variant", "What it is", "Runs ok / runs"], body, "llr")

    def fastest(self) -> str:
        """Per cell and framework: the fastest variant (whole training, steady epoch) and NumPy's best against it."""
        body = []
        for b, t in self.combos(main=False):
            bn = self.best(b, t, "numpy")
            for fw in self.d.frameworks:
                best, steady = self.best(b, t, fw), self.best(b, t, fw, "steady_epoch_median_s")
                vs = f"speedup_vs_best_{fw}"
                if best is None:
                    continue
                compared = fw != "numpy" and bn is not None and vs in self.d.stats
                body.append([b, t, framework_label(fw), best["variant"], fmt_s(best["wall_median_s"]),
                             "–" if steady is None else steady["variant"],
                             "–" if steady is None else fmt_s(steady["steady_epoch_median_s"])]
                            + ([f"{fmt_ratio(bn, col)}, {fmt_verdict(bn, col)}" for col in (vs, f"steady_{vs}")]
                               if compared else ["–", "–"]))
        return self.table(["Framework", "Fastest (whole training)", "Wall median (s)", "Fastest per steady epoch",
                           "Steady epoch (s)", "Fastest NumPy against it", "… per steady epoch"], body, "llrlrrr")

    def noise(self) -> dict:
        """The noisy cells' table, whether any cell has repeats, the cells of one run (and whether that is all)."""
        timed = self.rows()
        single, noisy = [c for c in timed if c["n_ok"] == 1], [c for c in timed if c["noisy"]]
        body = [[c["batch_size"], c["threads"], name(c), str(c["n_ok"]),
                 ", ".join(fmt_s(w) for w in sorted(select(self.d.timing_runs, **c[CELL_KEY])["wall_s"])),
                 fmt_s(c["wall_median_s"]), fmt_pct(c["wall_rel_iqr"])] for c in noisy]
        table = self.table(["Variant", "Runs ok", "Wall times of the runs (s)", "Median (s)", "Spread (IQR / median)"],
                           body, "lrrrr") if noisy else ""
        return dict(noisy=table, repeated=any(c["n_ok"] >= 2 for c in timed), single=self.names_at(single),
                    all_single=bool(single) and len(single) == len(timed))

    def epochs(self) -> str:
        body = [[c["batch_size"], c["threads"], name(c), fmt_s(c["first_epoch_median_s"]),
                 fmt_s(c["steady_epoch_median_s"]), fmt_s(c["setup_median_s"]),
                 f"{c['peak_rss_median_mb']:.0f}" if style.finite(c["peak_rss_median_mb"]) else "–"]
                for c in self.rows()]
        return self.table(["Variant", "First epoch (s)", "Steady epoch (s)", "Set-up (s)", "Peak memory (MB)"], body,
                          "lrrrr")

    def break_even(self) -> tuple[str, list[str]]:
        """The break-even table and its flips as sentences (none: no ranking flips)."""
        body, flips = [], []
        for c in self.rows(self.ok[self.ok["break_even_epochs"].notna()]):
            me, ref = name(c), label_of(c["best_peer_steady"])
            peer = self.row(c["best_peer_steady"], c["batch_size"], c["threads"])
            ahead, behind = (me, ref) if c["steady_epoch_median_s"] < peer["steady_epoch_median_s"] else (ref, me)
            interval = (f"[{fmt_epochs(c['break_even_epochs_lo'])}, {fmt_epochs(c['break_even_epochs_hi'])}]"
                        if style.finite(c["break_even_epochs_lo"]) else "(one run: no interval)")
            epochs = fmt_epochs(c["break_even_epochs"])
            flips.append(f"{ahead} overtakes {behind} after about {epochs} epochs {interval} at {self.at(c)}")
            body.append([c["batch_size"], c["threads"], me, ref,
                         f"{fmt_s(c['first_epoch_median_s'])} / {fmt_s(peer['first_epoch_median_s'])}",
                         f"{fmt_s(c['steady_epoch_median_s'])} / {fmt_s(peer['steady_epoch_median_s'])}", ahead,
                         f"{epochs} {interval}"])
        return self.table(["Variant", "Against", "First epoch (s), variant / against",
                           "Steady epoch (s), variant / against", "Ahead after the flip",
                           "Flips after (epochs) [95 %]"], body, "llrrlr"), flips

    def step3(self) -> str:
        body = [[c["batch_size"], c["threads"], name(c)] + [f(c, col) for col in
                                                            ("speedup_vs_step3", "steady_speedup_vs_step3")
                                                            for f in (fmt_ratio, fmt_verdict)]
                for c in self.rows(self.ok[self.ok["speedup_vs_step3"].notna()])]
        return self.table(["Variant", "Speed-up vs step3", "Verdict", "Steady-epoch speed-up vs step3",
                           "Steady verdict"], body, "lrlrl")

    def article(self) -> tuple[str, str]:
        """The article's times, scaled to this study, beside ours at the main thread setting; the scaling note."""
        factor, note = article.scale(self.d.epochs_per_run, self.d.train_size)
        body = []
        for a in article.ARTICLE_TIMES:
            ours = self.row(f"numpy/{a.variant}", a.batch_size, self.main_threads)
            body.append([label("numpy", a.variant), f"{a.batch_size:,}",
                         f"{a.seconds:g}" + (" (derived)" if a.derived else ""),
                         fmt_s(a.seconds * factor), "not run" if ours is None else fmt_s(ours["wall_median_s"]),
                         fmt_s(ours["wall_iqr_s"]) if ours is not None and ours["n_ok"] >= 2 else "–"])
        return markdown_table(["Variant", "Batch", "Article, 35 epochs (s)", "Article, scaled to this study (s)",
                               "Ours, median (s)", "Ours, IQR (s)"], body, "lrrrrr"), note

    def failed(self) -> tuple[int, str]:
        """How many runs failed and their table (errors on one line, shortened)."""
        failed = rows(self.d.runs[self.d.runs["status"] != OK])
        body = []
        for f in failed:
            error = str(f["error"] or "").strip().replace("\n", " ").replace("`", "'")
            error = error[:MAX_ERROR - 3] + "..." if len(error) > MAX_ERROR else error
            body.append([framework_label(f["framework"]), f["variant"], f"{f['batch_size']:,}", str(f["threads"]),
                         str(f["repeat"]), "yes" if f["instrumented"] else "no", f["status"],
                         f"`{error}`" if error else "–"])
        return len(failed), markdown_table(["Framework", "Variant", "Batch", "Threads", "Repeat", "Instrumented",
                                            "Status", "Error"], body, "llrrrlll")

    def missing(self, figures: dict) -> list[str]:
        """What the reader should know is missing: files, frameworks, variants, repeats, settings, figures."""
        d, out = self.d, [*self.d.missing, *self.d.notes]
        listed = isinstance(d.study.get("frameworks"), list)
        succeeded = set(select(d.runs, status=OK)["framework"])
        for fw in d.study["frameworks"] if listed else DEFAULT_FRAMEWORKS:
            fwl = framework_label(fw)
            if fw not in self.present:
                out.append(f"**{fwl} was not run**: runs.csv has no {fwl} runs"
                           + ("" if listed else " (the study may have left it out)")
                           + f", so there is no {fwl} side to compare with.")
            elif fw not in succeeded:
                out.append(f"**Every {fwl} run failed**: there are no {fwl} times.")
        planned = d.study["variants"] if isinstance(d.study.get("variants"), dict) else {}
        for fw in self.present:
            have = set(select(d.runs, framework=fw)["variant"])
            absent = [v for v in planned.get(fw) or style.VARIANT_ORDER.get(fw, []) if v not in have]
            if absent:
                out.append(f"{framework_label(fw)} variant(s) not run: {', '.join(absent)}.")
        most = max((c["n_ok"] for c in self.rows()), default=3)
        if most < 3:
            out.append(f"At most {most} successful run(s) per configuration: medians are close to single "
                       "measurements and the IQR (shown as – for a single run) says little about the spread; three or "
                       "more repeats are better.")
        if len(d.batch_sizes) == 1:
            out.append(f"Only one batch size ({d.batch_sizes[0]:,}) was run: the dependence on batch size is "
                       "unknown.")
        if len(d.threads_values) == 1:
            out.append(f"Only one thread setting ({style.threads_label(d.threads_values[0])}) was run.")
        if not self.counts["instrumented"]:
            out.append("No instrumented NumPy runs: the per-phase breakdown is missing.")
        return out + [f"Figure `{n}` is left out: {o.left_out}" for n, o in figures.items() if o.left_out]
