"""Compose the report (Markdown and self-contained HTML) from a results folder."""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import article, machines, style
from .atomic import write_text_atomic
from .data import RUN_KEY, StudyData, choose_threshold, load, time_to_accuracy_table
from .document import Bullets, Document, Figure, Para, Section, Table, to_html, to_markdown
from .figures import FIGURE_NAMES, FigureOutcome, accuracy_curves, draw_all, fmt_s, phase_table

VARIANT_DESCRIPTIONS = {
    ("numpy", "original"): "the blog series' starting point: float64, deltas propagated back down to the input "
                           "layer, a bias row inserted into every layer's input (on a transposed batch, mixing "
                           "C- and F-ordered arrays), and the sigmoid recomputed to get its derivative",
    ("numpy", "step1"): "Step I: float32 for all big arrays; no backward propagation into the input layer "
                        "(no weight gradient needs it)",
    ("numpy", "step2"): "Step II: bias handled without inserting a row into the transposed input batch "
                        "(no C/F-order clash in the forward pass)",
    ("numpy", "step3"): "Step III, the article's final code: sigmoid derivative from the stored outputs, "
                        "A·(1−A); weight matrix sliced instead of adding a bias row in the backward pass",
    ("numpy", "optimized"): "this project's step beyond Step III (same mathematics): samples as rows and Keras' "
                            "(inputs, outputs) kernels, buffers allocated once and reused in place, each batch "
                            "pushed through the network in cache-sized chunks of uint8 rows, from batch 1000 a "
                            "share of the rows per core, the input scaling folded into the first layer for "
                            "large batches, regularization fused into the update",
    ("keras", "fit"): "Keras `model.fit` as a new user would call it: `compile` + `fit(shuffle=True)`, default "
                      "settings (one batch per call into the compiled step, no XLA)",
    ("keras", "fit-tuned"): "Keras `model.fit` with the best settings found by `python -m keras_baseline.tune`: "
                            "a whole epoch of batches per call (`steps_per_execution`), XLA from batch 20000 up",
    ("keras", "loop"): "a custom loop: `tf.GradientTape` inside one `tf.function` per epoch that runs every "
                       "batch, XLA from batch 20000 up; batches in the same order as the NumPy code",
}


# -- formatting ----------------------------------------------------------------------------------
def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and np.isfinite(x)


def fmt_acc(x) -> str:
    return f"{x:.4f}" if _ok(x) else "–"


def fmt_x(x) -> str:
    return f"{x:.2f}×" if _ok(x) else "–"


def fmt_pct(x) -> str:
    return f"{x:.0%}" if _ok(x) else "–"


def _lbl(fw: str, var: str) -> str:
    return f"{style.FRAMEWORK_LABELS.get(fw, fw)} {var}"


def _at(b: int, t: int, several_threads: bool) -> str:
    return f"batch {b:,}" + (f" ({style.threads_label(t)})" if several_threads else "")


def _join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _safe(make, on_error):
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - one paragraph must not lose the whole report
        return on_error(f"(This part could not be computed from the data: {type(exc).__name__}: {exc}.)")


# -- the pieces ----------------------------------------------------------------------------------
class Composer:
    def __init__(self, data: StudyData, outcomes: dict[str, FigureOutcome], threshold: float):
        self.d = data
        self.outcomes = outcomes
        self.threshold = threshold
        self.stats = data.stats
        self.ok_stats = data.stats[data.stats["n_ok"] > 0]
        self.several_threads = len(data.threads_values) > 1
        # Texts speak about the setting with the most threads (the usual way to run); others are summarised.
        self.main_threads = data.threads_values[0] if data.threads_values else 0
        self.figure_number = 0

    # groups of (batch, threads) present in the statistics
    def combos(self, frame: pd.DataFrame | None = None):
        frame = self.ok_stats if frame is None else frame
        c = frame[["batch_size", "threads"]].drop_duplicates().sort_values(
            ["batch_size", "threads"], key=style.sort_key)
        return [(int(b), int(t)) for b, t in c.itertuples(index=False)]

    def main_combos(self, frame: pd.DataFrame | None = None):
        combos = self.combos(frame)
        return [c for c in combos if c[1] == self.main_threads] or combos

    def threads_note(self) -> str:
        if not self.several_threads:
            return ""
        return (f" Figures in this paragraph are for {style.threads_label(self.main_threads)}; the other thread "
                "settings are in the figure and the headline table.")

    def at(self, b, t) -> str:
        return _at(b, t, self.several_threads)

    def best(self, b: int, t: int, framework: str):
        s = self.ok_stats
        s = s[(s["batch_size"] == b) & (s["threads"] == t) & (s["framework"] == framework)
              & s["wall_median_s"].notna()]
        return None if s.empty else s.loc[s["wall_median_s"].idxmin()]

    def row(self, fw: str, var: str, b: int, t: int):
        s = self.ok_stats
        s = s[(s["framework"] == fw) & (s["variant"] == var) & (s["batch_size"] == b) & (s["threads"] == t)]
        return None if s.empty else s.iloc[0]

    # ---------------------------------------------------------------------------------------
    def document(self) -> Document:
        doc = Document("When does hand-written NumPy beat Keras/TensorFlow 2 on the CPU? "
                       "A small MLP on MNIST")
        doc.sections += [self.intro(), self.question(), *self.setup(), self.headline()]
        doc.sections += self.figure_sections()
        doc.sections += machines.sections(self.d, self.figure_number + 1)  # only with several machines
        doc.sections += [self.problems(), self.about()]
        return doc

    def intro(self) -> Section:
        d = self.d
        n = len(d.runs)
        n_ok = int((d.runs["status"] == "ok").sum())
        n_instr = int(d.runs["instrumented"].sum())
        preset = d.study.get("preset")
        text = (f"This report summarises the study in `{d.results_dir}`"
                + (f" (preset `{preset}`)" if preset else "")
                + f": {n} training runs, {n_ok} of them successful"
                + (f", {n_instr} of them instrumented with per-phase timing" if n_instr else "") + ". "
                "It was generated from the files the study wrote; nothing was re-run.")
        return Section("About this study", 2, [Para(text)])

    def question(self) -> Section:
        sec = Section("The question", 2)
        sec.add(Para(
            "A blog series from 2020 (\"MLP, Numpy, TF2 – performance issues\", Steps I–III) took a "
            "hand-written NumPy multilayer perceptron for handwritten-digit recognition (MNIST) and made it "
            "faster step by step, until it roughly matched the same network trained with Keras/TensorFlow 2 on "
            "a CPU. It left a question open: **when does hand-written NumPy beat a framework on the CPU, and "
            "why?** This study re-measures every step of that optimization ladder and compares it with several "
            "ways of training the same network in Keras, at several batch sizes, repeating each run."))
        sec.add(Para("**Short answer, from the data below:**"))
        sec.add(Bullets(_safe(self.short_answer, lambda msg: [msg])))
        return sec

    def compare(self, b: int, t: int) -> tuple | None:
        """(fastest NumPy row, fastest Keras row, Keras wall / NumPy wall) at a batch size and threads."""
        bn, bk = self.best(b, t, "numpy"), self.best(b, t, "keras")
        if bn is None or bk is None:
            return None
        return bn, bk, bk["wall_median_s"] / bn["wall_median_s"]

    def short_answer(self) -> list[str]:
        items = []
        fws = set(self.ok_stats["framework"])
        if "numpy" not in fws or "keras" not in fws:
            missing = [style.FRAMEWORK_LABELS.get(f, f) for f in ("numpy", "keras") if f not in fws]
            items.append(f"No successful {_join(missing)} runs: this study cannot compare the two "
                         "frameworks. What it shows is listed below for the framework that ran.")
        for b in self.d.batch_sizes:
            main = self.compare(b, self.main_threads)
            if main is None:
                continue
            bn, bk, ratio = main
            if ratio >= 1:
                verdict = f"NumPy is **{ratio:.2f}× faster**"
            else:
                verdict = f"Keras is **{1 / ratio:.2f}× faster**"
            txt = (f"At batch {b:,}: {verdict} — fastest NumPy variant {bn['variant']} "
                   f"{fmt_s(bn['wall_median_s'])} s against fastest Keras variant {bk['variant']} "
                   f"{fmt_s(bk['wall_median_s'])} s" + (f" ({style.threads_label(self.main_threads)})"
                                                       if self.several_threads else ""))
            others = []
            for t in self.d.threads_values:
                c = self.compare(b, t) if t != self.main_threads else None
                if c is not None:
                    others.append(f"{style.threads_label(t)}: {fmt_s(c[0]['wall_median_s'])} s against "
                                  f"{fmt_s(c[1]['wall_median_s'])} s, {fmt_x(c[2])}")
            items.append(txt + (f"; with {'; '.join(others)}" if others else "") + ".")
        items += self.why()
        return items or ["There are not enough successful runs to answer."]

    def why(self) -> list[str]:
        """Explanations that the measurements support: per-step cost, warm-up, parallelism, BLAS share."""
        out = []
        train = self.d.train_size or 60_000
        per_step = []
        for b, t in self.main_combos():
            steps = math.ceil(train / b)
            parts = []
            for fw in ("numpy", "keras"):
                best = self.best(b, t, fw)
                if best is None or not _ok(best["steady_epoch_median_s"]):
                    continue
                ms = best["steady_epoch_median_s"] / steps * 1000
                parts.append(f"{_lbl(fw, best['variant'])} {ms:.3g} ms")
            if len(parts) == 2:
                per_step.append(f"batch {b:,} ({steps} steps per epoch): {parts[0]} vs {parts[1]}")
        if per_step:
            out.append("Time per mini-batch step in a steady epoch, fastest variant of each framework"
                       + (f" ({style.threads_label(self.main_threads)})" if self.several_threads else "")
                       + " — " + "; ".join(per_step) + ". A framework pays a fixed cost per step (launching "
                       "the compiled step, bookkeeping); the fewer and larger the batches, the more arithmetic "
                       "that cost is spread over.")
        k = self.ok_stats[self.ok_stats["framework"] == "keras"]
        extra = (k["first_epoch_median_s"] - k["steady_epoch_median_s"]).dropna()
        if len(extra) and extra.median() > 0:
            out.append(f"Keras' first epoch takes a median {fmt_s(float(extra.median()))} s longer than its "
                       "later epochs (tracing and compiling the training step), a one-off cost that weighs "
                       "more the fewer epochs are run.")
        main = self.ok_stats[self.ok_stats["threads"] == self.main_threads]
        cpw = main.groupby("framework")["cpu_per_wall"].median().dropna()
        if len(cpw):
            out.append("CPU seconds per wall-clock second, i.e. how many cores are busy on average (median over "
                       "variants and batch sizes" + (f", {style.threads_label(self.main_threads)}" if
                                                     self.several_threads else "") + "): "
                       + ", ".join(f"{style.FRAMEWORK_LABELS.get(f, f)} {v:.2f}"
                                   for f, v in sorted(cpw.items(), key=lambda kv: style.framework_rank(kv[0])))
                       + (f", on a machine with {self.d.env['cores']} cores." if self.d.env.get("cores") else "."))
        eff = main[(main["framework"] == "numpy") & main["gemm_efficiency"].notna()]
        if len(eff):
            ladder = [v for v in style.LADDER if v in set(eff["variant"])]
            var = "optimized" if "optimized" in ladder else (ladder[-1] if ladder else eff["variant"].iloc[-1])
            e = eff[eff["variant"] == var]
            shares = _join([f"{fmt_pct(r.gemm_efficiency)} at batch {r.batch_size:,}" for r in e.itertuples()])
            out.append(f"The matrix products themselves (the BLAS floor) make up {shares} of NumPy {var}'s "
                       "training time; the rest — element-wise work, copies and the Python loop — is what a "
                       "hand-written implementation can still shrink, and where a framework's fused kernels "
                       "can win or lose.")
        return out

    # ---------------------------------------------------------------------------------------
    def setup(self) -> list[Section]:
        d = self.d
        cfg = d.study.get("config") if isinstance(d.study.get("config"), dict) else None
        net = Section("Set-up", 2)
        if cfg:
            net.add(Para("**Network and training.** The same network is trained by every variant:"))
            sizes = cfg.get("layer_sizes")
            sizes_txt = "-".join(str(s) for s in sizes) if isinstance(sizes, (list, tuple)) else "?"
            lr = cfg.get("learning_rate")
            lr_txt = (f"{lr:g}" if isinstance(lr, (int, float)) else
                      "the article's rule min(0.001, 2 / batch size): 0.001 at batch 500, 0.0001 at batch 20,000")
            loss = cfg.get("loss", "?")
            loss_txt = ("LogLoss: binary cross-entropy of each output node, summed over the 10 nodes and the "
                        "samples of a mini-batch (not averaged)" if loss == "logloss" else
                        "half squared error, summed over nodes and samples" if loss == "mse" else str(loss))
            items = [
                f"layers {sizes_txt} (inputs, hidden layers, outputs), fully connected, one bias per node",
                f"activation: {cfg.get('hidden_activation', '?')} in the hidden layers, "
                f"{cfg.get('output_activation', '?')} at the output",
                f"loss: {loss_txt}",
                f"regularization: L2 with λ₂ = {cfg.get('l2', '?')}, L1 with λ₁ = {cfg.get('l1', '?')} "
                "(weights only, not the biases)",
                f"plain mini-batch gradient descent, learning rate {lr_txt}; decay at the start of epoch i: "
                f"lr ← lr / (1 + {cfg.get('lr_decay', '?')}·i); momentum rule W -= lr·g + m·(previous lr·g) "
                f"with m = {cfg.get('momentum', '?')}",
                f"weights uniform in ±{cfg.get('init_scale', '?')}/√(inputs of the layer); inputs scaled by "
                f"'{cfg.get('input_scaling', '?')}'; arithmetic in {cfg.get('dtype', '?')} "
                "(NumPy 'original' uses float64, as in the article)",
            ]
            net.add(Bullets(items))
        else:
            net.add(Para("**Network and training.** The network's settings are not known here because "
                         "`study.json` (or its `config`) is "
                         "missing. The study's defaults are the article's: 784-70-30-10, sigmoid everywhere, "
                         "summed LogLoss, L2 = 0.2, float32."))
        epochs = d.epochs_per_run
        repeats = d.study.get("repeats") or (int(d.runs["repeat"].max()) + 1 if len(d.runs) else "?")
        train = d.train_size
        net.add(Para(
            "**Data and protocol.** MNIST handwritten digits (28×28 = 784 pixels, 10 classes): "
            + (f"{train:,} of the 60,000 training images" if train else "60,000 training images")
            + " and 10,000 test images, reshuffled into mini-batches every epoch. "
            f"Each variant trained for {epochs if epochs else '?'} epochs at batch size(s) "
            f"{_join([f'{b:,}' for b in d.batch_sizes])}, with {style.threads_label(0) if d.threads_values == [0] else _join([str(t) for t in d.threads_values])} "
            f"BLAS/TensorFlow thread(s), repeated {repeats} time(s). Times are for training only; evaluation "
            "after each epoch, imports and model building are excluded."))

        variants = Section("What is compared", 3)
        rows = []
        present = self.d.runs.groupby(["framework", "variant"])
        counts = {k: (int((g["status"] == "ok").sum()), len(g)) for k, g in present}
        keys = style.sort_series(set(VARIANT_DESCRIPTIONS) | set(counts))
        for fw, var in keys:
            n_ok, n = counts.get((fw, var), (0, 0))
            rows.append([_lbl(fw, var), VARIANT_DESCRIPTIONS.get((fw, var), "(not described)"),
                         f"{n_ok}/{n}" if n else "not run"])
        variants.add(Table(["Variant", "What it is", "Runs ok / runs"], rows, ["l", "l", "r"]))
        variants.add(Para("All Keras variants use the same summed loss, momentum rule and learning-rate schedule "
                          "as the NumPy code, so that both sides do the same arithmetic."))

        machine = Section("Machine and software", 3)
        env = d.env
        if machines.several(d):  # a cross-machine study: one record per machine
            machine = machines.machines_section(d)
        elif env:
            blas = env.get("blas")
            blas_txt = "unknown"
            if isinstance(blas, list) and blas:
                blas_txt = "; ".join(
                    f"{b.get('internal_api', '?')} {b.get('version', '')} ({b.get('num_threads', '?')} threads"
                    + (f", {b.get('threading_layer')}" if b.get("threading_layer") else "") + ")"
                    for b in blas if isinstance(b, dict))
            items = [
                f"CPU: {env.get('cpu_model', 'unknown')}, {env.get('cores', '?')} cores",
                f"OS: {env.get('os', 'unknown')}",
                f"Python {env.get('python', '?')}, NumPy {env.get('numpy', '?')}, TensorFlow "
                f"{env.get('tensorflow', '?')}, Keras {env.get('keras', '?')}",
                f"BLAS used by NumPy: {blas_txt}",
                f"oneDNN in TensorFlow: {env.get('onednn', 'unknown')}",
                f"code version: {env.get('git_commit', 'unknown')}; run on {env.get('date', 'unknown date')}",
            ]
            if env.get("command"):
                cmd = env["command"]
                items.append(f"command: `{' '.join(cmd) if isinstance(cmd, list) else cmd}`")
            machine.add(Bullets(items))
        else:
            machine.add(Para("`environment.json` is missing or empty: the machine and software versions are unknown."))

        glossary = Section("How to read the numbers", 3)
        glossary.add(Bullets([
            "**wall time**: elapsed real time of training all epochs, in seconds; what a user waits for.",
            "**CPU time**: CPU seconds used by the process, summed over all its threads; above the wall time "
            "when several cores work at once.",
            "**median** and **IQR** (interquartile range, 75th minus 25th percentile) over the repeats of a "
            "run: the middle value and how much the repeats scatter.",
            "**speed-up vs fastest Keras**: wall time of the fastest Keras variant at the same batch size "
            "divided by this variant's; above 1 means faster than Keras. The **steady-epoch speed-up** does "
            "the same with the median steady epoch, leaving out Keras' one-off compilation in the first "
            "epoch: the fairer measure when a study runs only a few epochs.",
            "**first / steady epoch**: wall time of the first epoch (includes one-off warm-up such as "
            "compiling) and the median of the later ones.",
            "**BLAS floor** (GEMM floor): the time the BLAS library needs for only the matrix products of the "
            "whole training, measured separately, run each way the NumPy code can run them on the run's cores "
            "(whole batches, or row shares in chunks) and taking the fastest; a dense NumPy implementation of "
            "this network cannot be faster on this machine with this BLAS.",
        ]))
        return [net, variants, machine, glossary]

    # ---------------------------------------------------------------------------------------
    def headline_rows(self) -> tuple[list[str], list[list[str]], list[str]]:
        headers = ["Batch"] + (["Threads"] if self.several_threads else []) + [
            "Framework", "Variant", "Runs ok", "Wall median (s)", "Wall IQR (s)", "CPU median (s)",
            "Test accuracy", "Speed-up vs fastest Keras", "Steady-epoch speed-up"]
        align = ["r"] + (["r"] if self.several_threads else []) + ["l", "l", "r", "r", "r", "r", "r", "r", "r"]
        rows = []
        for r in self.stats.itertuples(index=False):
            row = [f"{r.batch_size:,}"] + ([str(r.threads)] if self.several_threads else []) + [
                style.FRAMEWORK_LABELS.get(r.framework, r.framework), r.variant, f"{r.n_ok}/{r.n_runs}",
                fmt_s(r.wall_median_s), fmt_s(r.wall_iqr_s) if r.n_ok >= 2 else "–", fmt_s(r.cpu_median_s),
                fmt_acc(r.test_acc_median), fmt_x(r.speedup_vs_best_keras), fmt_x(r.steady_speedup_vs_best_keras)]
            rows.append(row)
        return headers, rows, align

    def headline(self) -> Section:
        sec = Section("Headline results", 2)
        headers, rows, align = self.headline_rows()
        sec.add(Para("Median over the successful, uninstrumented repeats of each variant. Training time covers "
                     "all epochs and excludes evaluation and set-up."))
        sec.add(Table(headers, rows, align))
        notes = []
        if (self.stats["n_ok"] == 0).any():
            bad = self.stats[self.stats["n_ok"] == 0]
            notes.append("No successful run for " + _join(
                [f"{_lbl(r.framework, r.variant)} at {self.at(r.batch_size, r.threads)}" for r in bad.itertuples()])
                + " (see *Failed runs and missing data*).")
        if "keras" not in set(self.ok_stats["framework"]):
            notes.append("The speed-up column is empty because there are no successful Keras runs.")
        if notes:
            sec.add(Para(" ".join(notes)))
        return sec

    # ---------------------------------------------------------------------------------------
    def figure(self, name: str, paragraphs, extra_sections=None) -> list[Section]:
        """A figure's section; ``paragraphs`` and ``extra_sections`` are callables, so that a failure in
        computing one paragraph is reported in its place instead of losing the whole report."""
        outcome = self.outcomes[name]
        paragraphs = _safe(paragraphs, lambda msg: [msg])
        extra_sections = _safe(extra_sections, lambda msg: [Section("(missing section)", 4, [Para(msg)])]) \
            if extra_sections else []
        self.figure_number += 1
        sec = Section(f"Figure {self.figure_number}: {outcome.title}", 3)
        sec.add(Figure(name, outcome.title, outcome.caption, self.figure_number))
        if outcome.placeholder:
            sec.add(Para(f"This figure is a placeholder: {outcome.placeholder}"))
        else:
            for p in paragraphs:
                if p:
                    sec.add(Para(p))
        return [sec] + (extra_sections or [])

    def figure_sections(self) -> list[Section]:
        head = Section("Figures", 2, [Para("Each figure below is also in `figures/` as PNG and SVG. Colours "
                                           "stand for the same variant in every figure: NumPy in cool, Keras in "
                                           "warm colours.")])
        out = [head]
        out += self.figure("time_vs_batch", self.text_time, lambda: [self.epoch_table()])
        out += self.figure("speedup_vs_keras", self.text_speedup)
        out += self.figure("ladder", self.text_ladder, lambda: [self.article_comparison()])
        out += self.figure("phases", self.text_phases)
        out += self.figure("accuracy", self.text_accuracy)
        out += self.figure("time_to_accuracy", self.text_time_to_accuracy)
        out += self.figure("efficiency", self.text_efficiency)
        return out

    def text_time(self) -> list[str]:
        parts = []
        for b, t in self.main_combos():
            s = self.ok_stats[(self.ok_stats["batch_size"] == b) & (self.ok_stats["threads"] == t)
                              & self.ok_stats["wall_median_s"].notna()]
            if s.empty:
                continue
            fast, slow = s.loc[s["wall_median_s"].idxmin()], s.loc[s["wall_median_s"].idxmax()]
            txt = (f"At batch {b:,} the fastest variant is {_lbl(fast['framework'], fast['variant'])} "
                   f"({fmt_s(fast['wall_median_s'])} s)")
            if len(s) > 1:
                txt += (f" and the slowest {_lbl(slow['framework'], slow['variant'])} "
                        f"({fmt_s(slow['wall_median_s'])} s, {slow['wall_median_s'] / fast['wall_median_s']:.1f}× "
                        "as long)")
            parts.append(txt + ".")
        bs = self.d.batch_sizes
        if len(bs) >= 2:
            trend = []
            lo, hi = bs[0], bs[-1]
            for fw in ("numpy", "keras"):
                a, z = self.best(lo, self.main_threads, fw), self.best(hi, self.main_threads, fw)
                if a is not None and z is not None:
                    trend.append(f"the fastest {style.FRAMEWORK_LABELS[fw]} time goes from "
                                 f"{fmt_s(a['wall_median_s'])} s ({a['variant']}) to {fmt_s(z['wall_median_s'])} s "
                                 f"({z['variant']}; {(z['wall_median_s'] / a['wall_median_s'] - 1):+.0%})")
            if trend:
                parts.append(f"From batch {lo:,} to {hi:,}, " + _join(trend) + ".")
        else:
            parts.append("Only one batch size was run, so the figure cannot show how time depends on it.")
        if self.several_threads:
            ratios = []
            for t in self.d.threads_values[1:]:
                m = self.ok_stats[self.ok_stats["threads"] == self.main_threads][RUN_KEY + ["wall_median_s"]]
                o = self.ok_stats[self.ok_stats["threads"] == t][RUN_KEY + ["wall_median_s"]]
                j = m.drop(columns="threads").merge(o.drop(columns="threads"), on=["framework", "variant",
                                                                                    "batch_size"])
                r = (j["wall_median_s_y"] / j["wall_median_s_x"]).dropna()
                if len(r):
                    span = f"{r.min():.2f}×" if f"{r.min():.2f}" == f"{r.max():.2f}" else f"{r.min():.2f}–{r.max():.2f}×"
                    ratios.append(f"with {style.threads_label(t)} training takes {span} "
                                  f"as long as with {style.threads_label(self.main_threads)}")
            if ratios:
                parts.append(_join(ratios).capitalize() + ".")
        cpw = self.ok_stats[["framework", "variant", "cpu_per_wall"]].dropna()
        if len(cpw):
            hi_row = cpw.loc[cpw["cpu_per_wall"].idxmax()]
            parts.append(f"CPU time exceeds wall time where several cores work in parallel: up to "
                         f"{hi_row['cpu_per_wall']:.2f} CPU-seconds per second ({_lbl(hi_row['framework'], hi_row['variant'])}).")
        return [" ".join(parts) + self.threads_note()]

    def epoch_table(self) -> Section:
        sec = Section("First epoch, steady epochs and set-up", 4)
        rows = []
        for r in self.ok_stats.itertuples(index=False):
            rows.append([f"{r.batch_size:,}"] + ([str(r.threads)] if self.several_threads else []) + [
                _lbl(r.framework, r.variant), fmt_s(r.first_epoch_median_s), fmt_s(r.steady_epoch_median_s),
                fmt_s(r.setup_median_s), f"{r.peak_rss_median_mb:.0f}" if _ok(r.peak_rss_median_mb) else "–"])
        headers = ["Batch"] + (["Threads"] if self.several_threads else []) + [
            "Variant", "First epoch (s)", "Steady epoch (s)", "Set-up (s)", "Peak memory (MB)"]
        sec.add(Para("Medians over repeats. The set-up (imports, building the model) is not part of the training "
                     "time above; a first epoch much longer than the steady ones shows one-off warm-up work."))
        sec.add(Table(headers, rows, ["r"] * (2 if self.several_threads else 1) + ["l", "r", "r", "r", "r"]))
        return sec

    def text_speedup(self) -> list[str]:
        parts = []
        for b, t in self.main_combos():
            bk = self.best(b, t, "keras")
            if bk is None:
                continue
            s = self.ok_stats[(self.ok_stats["batch_size"] == b) & (self.ok_stats["threads"] == t)
                              & (self.ok_stats["framework"] == "numpy") & self.ok_stats["speedup_vs_best_keras"].notna()]
            if s.empty:
                parts.append(f"At batch {b:,} there is no successful NumPy run to compare.")
                continue
            bn = s.loc[s["wall_median_s"].idxmin()]
            sp = bn["speedup_vs_best_keras"]
            rel = f"{sp:.2f}× faster than" if sp >= 1 else f"{1 / sp:.2f}× slower than"
            others = ", ".join(f"{r.variant} {fmt_x(r.speedup_vs_best_keras)}" for r in s.itertuples()
                               if r.variant != bn["variant"])
            parts.append(f"At batch {b:,}, NumPy {bn['variant']} took {fmt_s(bn['wall_median_s'])} s, {rel} the "
                         f"fastest Keras variant ({bk['variant']}, {fmt_s(bk['wall_median_s'])} s)"
                         + (f"; the other NumPy variants: {others}" if others else "") + ".")
        beating = self.ok_stats[(self.ok_stats["framework"] == "numpy") & (self.ok_stats["threads"] == self.main_threads)
                                & (self.ok_stats["speedup_vs_best_keras"] >= 1)]
        if len(parts) and len(beating):
            first = min(beating["variant"], key=lambda v: style.variant_rank("numpy", v))
            parts.append(f"On the ladder, {first} is the first NumPy step that beats the fastest Keras variant at "
                         "some batch size.")
        return [" ".join(parts) + self.threads_note()]

    def ladder_gains(self, b: int, t: int) -> str:
        s = self.ok_stats[(self.ok_stats["framework"] == "numpy") & (self.ok_stats["batch_size"] == b)
                          & (self.ok_stats["threads"] == t)]
        walls = {r.variant: r.wall_median_s for r in s.itertuples() if _ok(r.wall_median_s)}
        steps = [v for v in style.LADDER if v in walls]
        if len(steps) < 2:
            return ""
        gains = [f"{a} → {z}: {walls[a] / walls[z]:.2f}×" for a, z in zip(steps, steps[1:])]
        txt = f"At batch {b:,}: " + ", ".join(gains)
        if "original" in walls and "step3" in walls:
            txt += f"; original → step3 together {walls['original'] / walls['step3']:.1f}×"
        return txt + "."

    def text_ladder(self) -> list[str]:
        numpy = self.ok_stats[self.ok_stats["framework"] == "numpy"]
        lines = [self.ladder_gains(b, t) for b, t in self.main_combos(numpy)]
        lines = [ln for ln in lines if ln]
        if not lines:
            return ["Fewer than two steps of the ladder were run, so no gains can be computed."]
        intro = "Gain of each step (ratio of median wall times; above 1 = the step made training faster). "
        return [intro + " ".join(lines) + " For comparison, the article reports 11 → 9.6 s (1.15×) for Step II, "
                "9.6 → 7.3 s (1.32×) at batch 500 and 8.7 → 6.8 s (1.28×) at batch 20,000 for Step III, and "
                f"more than {article.ARTICLE_TOTAL_GAIN}× from the original code to Step III."
                + self.threads_note()]

    def article_comparison(self) -> Section:
        sec = Section("The article's numbers and ours", 4)
        from .figures import _article_scale  # the same scaling as the figure
        scale, note = _article_scale(self.d)
        rows = []
        t = self.d.threads_values[0] if self.d.threads_values else 0
        for a in article.ARTICLE_TIMES:
            ours = self.row("numpy", a.variant, a.batch_size, t)
            wall = ours["wall_median_s"] if ours is not None else math.nan
            iqr = ours["wall_iqr_s"] if ours is not None else math.nan
            scaled = a.seconds * scale
            rows.append([a.variant, f"{a.batch_size:,}", f"{a.seconds:g}" + (" (derived)" if a.derived else ""),
                         fmt_s(scaled), fmt_s(wall), fmt_s(iqr) if ours is not None else "–",
                         f"{wall / scaled:.2f}" if _ok(wall) else "not run"])
        sec.add(Table(["Variant", "Batch", "Article, 35 epochs (s)", "Article, scaled to this study (s)",
                       "Ours, median (s)", "Ours, IQR (s)", "Ours / article"],
                      rows, ["l", "r", "r", "r", "r", "r", "r"]))
        cpu = self.d.env.get("cpu_model") or "a different, unrecorded CPU"
        sec.add(Para(
            note + " The comparison is honest only about ratios, not absolute times: the article ran on the "
            f"author's own (unnamed) CPU in 2020 with the NumPy and BLAS of that time, this study on {cpu}; the "
            "article reports the best of three runs while this report shows medians (typically a little slower); "
            "the article's 'original' times are derived from its '6.5×' statement, not measured; and our "
            "variants re-implement the article's code from its description, so they can differ in details "
            "that matter for speed. The 'optimized' variant has no counterpart in the article."
            + (f" Threads: the table uses the runs with {style.threads_label(t)}." if self.several_threads else "")))
        return sec

    def text_phases(self) -> list[str]:
        table = phase_table(self.d)
        if table.empty:
            return []
        threads = self.main_threads if (table["threads"] == self.main_threads).any() else int(table["threads"].iloc[0])
        parts = []
        for b, g in table[table["threads"] == threads].groupby("batch_size", sort=True):
            rows = list(g.itertuples(index=False))
            totals = {r.variant: sum(getattr(r, p) for p in (*style.PHASES, "other")) for r in rows}
            tops = {r.variant: max(style.PHASES, key=lambda p: getattr(r, p)) for r in rows}
            txt = f"At batch {int(b):,}"
            names = {style.PHASE_LABELS[p].split(" (")[0] for p in tops.values()}
            if len(names) == 1 and len(rows) > 1:
                p = next(iter(tops.values()))
                shares = [getattr(r, p) / totals[r.variant] for r in rows if totals[r.variant] > 0]
                txt += (f", {style.PHASE_LABELS[p].split(' (')[0]} is the largest phase in every variant "
                        + (f"({min(shares):.0%} of the epoch)" if f"{min(shares):.0%}" == f"{max(shares):.0%}"
                           else f"({min(shares):.0%}–{max(shares):.0%} of the epoch)"))
            else:
                txt += ", the largest phase is " + "; ".join(
                    f"{r.variant}: {style.PHASE_LABELS[tops[r.variant]].split(' (')[0]} "
                    f"({getattr(r, tops[r.variant]) / totals[r.variant]:.0%})" for r in rows if totals[r.variant] > 0)
            if len(rows) > 1:
                a, z = rows[0], rows[-1]
                changes = ", ".join(f"{p} {fmt_s(getattr(a, p))} → {fmt_s(getattr(z, p))} s"
                                    for p in ("forward", "backward", "update") if getattr(a, p) > 0)
                txt += (f". From {a.variant} to {z.variant} an epoch shrinks from {fmt_s(totals[a.variant])} s to "
                        f"{fmt_s(totals[z.variant])} s ({changes})")
            parts.append(txt + ".")
        note = (f" Figures in this paragraph are for {style.threads_label(threads)}."
                if table["threads"].nunique() > 1 else "")
        runs = self.d.runs
        if "row_threads" in runs:
            shared = runs[runs["instrumented"] & (pd.to_numeric(runs["row_threads"], errors="coerce") > 1)]
            if not shared.empty:
                sizes = ", ".join(f"{int(b):,}" for b in sorted(shared["batch_size"].unique()))
                note += (f" At batch {sizes}, {' and '.join(sorted(shared['variant'].unique()))} trains each batch's "
                         "rows in shares on several threads; when its phases are timed it runs those shares one "
                         "after the other (the same arithmetic), so its bars add up the work of all its threads, "
                         "not the wall time of an untimed epoch.")
        return [" ".join(parts) + note]

    def text_accuracy(self) -> list[str]:
        curves = accuracy_curves(self.d)
        if curves.empty:
            return []
        parts = []
        for b, g in curves.groupby("batch_size"):
            last = g.sort_values("epoch").groupby(["framework", "variant"]).tail(1)
            last = last[last["test_acc"].notna()]
            if last.empty:
                continue
            lo, hi = last.loc[last["test_acc"].idxmin()], last.loc[last["test_acc"].idxmax()]
            spread = (hi["test_acc"] - lo["test_acc"]) * 100
            txt = (f"At batch {int(b):,}, the final test accuracy lies between {fmt_acc(lo['test_acc'])} "
                   f"({_lbl(lo['framework'], lo['variant'])}) and {fmt_acc(hi['test_acc'])} "
                   f"({_lbl(hi['framework'], hi['variant'])}), a spread of {spread:.1f} percentage points")
            if len(last) == 1:
                txt = (f"At batch {int(b):,}, only {_lbl(lo['framework'], lo['variant'])} has accuracy data "
                       f"(final test accuracy {fmt_acc(lo['test_acc'])})")
            elif spread <= 1.0:
                txt += ": the implementations learn essentially the same model, so their times are comparable"
            else:
                txt += (": more than one point apart, so some implementations do not train the same way and "
                        "their times should be compared with care")
            parts.append(txt + ".")
        return [" ".join(parts)]

    def text_time_to_accuracy(self) -> list[str]:
        table = time_to_accuracy_table(self.d, self.threshold)
        if table.empty:
            return []
        curves = accuracy_curves(self.d)
        parts = []
        threads = self.main_threads if (table["threads"] == self.main_threads).any() else int(table["threads"].iloc[0])
        for b, g in table[table["threads"] == threads].groupby("batch_size", sort=True):
            g = g.sort_values("time_s", ascending=True)
            reached = g[np.isfinite(g["time_s"])]
            missed = g[~np.isfinite(g["time_s"])]
            txt = f"At batch {int(b):,}"
            if len(reached):
                f = reached.iloc[0]
                txt += (f", {_lbl(f['framework'], f['variant'])} reaches {self.threshold:.0%} test accuracy first, "
                        f"after {fmt_s(f['time_s'])} s of training (epoch {int(f['epoch'])})")
                bk = reached[reached["framework"] == "keras"]
                if len(bk) and f["framework"] != "keras":
                    k = bk.iloc[0]
                    txt += f"; the first Keras variant is {k['variant']} at {fmt_s(k['time_s'])} s"
            if len(missed) == len(g):
                c = curves[curves["batch_size"] == b]
                best = c.loc[c["test_acc"].idxmax()] if c["test_acc"].notna().any() else None
                txt += (f", no variant reaches it within {self.d.epochs_per_run or '?'} epochs"
                        + (f" (best median test accuracy {fmt_acc(best['test_acc'])}, "
                           f"{_lbl(best['framework'], best['variant'])})" if best is not None else ""))
            elif len(missed):
                txt += "; " + _join([_lbl(r.framework, r.variant) for r in missed.itertuples()]) + " did not reach it"
            parts.append(txt + ".")
        note = (f" Figures in this paragraph are for {style.threads_label(threads)}."
                if table["threads"].nunique() > 1 else "")
        return [" ".join(parts) + note]

    def text_efficiency(self) -> list[str]:
        s = self.ok_stats[(self.ok_stats["framework"] == "numpy") & self.ok_stats["gemm_efficiency"].notna()]
        if s.empty:
            return []
        threads = self.main_threads if (s["threads"] == self.main_threads).any() else int(s["threads"].iloc[0])
        parts = []
        for b, g in s[s["threads"] == threads].groupby("batch_size", sort=True):
            best = g.loc[g["gemm_efficiency"].idxmax()]
            others = _join([f"{r.variant} {fmt_pct(r.gemm_efficiency)}" for r in g.itertuples()
                            if r.variant != best["variant"]])
            parts.append(f"At batch {int(b):,} the matrix products alone take {fmt_s(best['gemm_floor_median_s'])} s; "
                         f"{best['variant']} comes closest to that floor ({fmt_pct(best['gemm_efficiency'])} of its "
                         "time is BLAS work)" + (f", against {others}" if others else "") + ".")
        note = (f" Figures in this paragraph are for {style.threads_label(threads)}."
                if s["threads"].nunique() > 1 else "")
        return [" ".join(parts) + note]

    # ---------------------------------------------------------------------------------------
    def missing_items(self) -> list[str]:
        d = self.d
        items = list(d.missing) + list(d.notes)
        expected_fw = d.study.get("frameworks") if isinstance(d.study.get("frameworks"), list) else ["numpy", "keras"]
        present_fw = set(d.runs["framework"])
        for fw in expected_fw:
            name = style.FRAMEWORK_LABELS.get(fw, fw)
            if fw not in present_fw:
                why = "" if isinstance(d.study.get("frameworks"), list) else " (the study may have left it out)"
                items.append(f"**{name} was not run**: runs.csv has no {name} runs{why}, so there is no "
                             f"{name} side to compare with.")
            elif not ((d.runs["framework"] == fw) & (d.runs["status"] == "ok")).any():
                items.append(f"**Every {name} run failed**: there are no {name} times.")
        study_variants = d.study.get("variants") if isinstance(d.study.get("variants"), dict) else {}
        for fw in sorted(present_fw, key=style.framework_rank):
            expected = study_variants.get(fw) or style.VARIANT_ORDER.get(fw, ())
            have = set(d.runs.loc[d.runs["framework"] == fw, "variant"])
            absent = [v for v in expected if v not in have]
            if absent:
                items.append(f"{style.FRAMEWORK_LABELS.get(fw, fw)} variant(s) not run: {', '.join(absent)}.")
        ok_counts = self.stats.loc[self.stats["n_ok"] > 0, "n_ok"]
        if len(ok_counts) and ok_counts.max() < 3:
            items.append(f"At most {int(ok_counts.max())} successful run(s) per configuration: medians are close "
                         "to single measurements and the IQR (shown as – for a single run) says little about the "
                         "spread; three or more repeats are better.")
        if len(d.batch_sizes) == 1:
            items.append(f"Only one batch size ({d.batch_sizes[0]:,}) was run: the dependence on batch size is unknown.")
        if len(d.threads_values) == 1:
            items.append(f"Only one thread setting ({style.threads_label(d.threads_values[0])}) was run.")
        if not d.runs["instrumented"].any():
            items.append("No instrumented NumPy runs: the per-phase breakdown is missing.")
        for name in FIGURE_NAMES:
            o = self.outcomes[name]
            if o.placeholder:
                items.append(f"Figure `{name}` is a placeholder: {o.placeholder}")
        return items

    def problems(self) -> Section:
        sec = Section("Failed runs and missing data", 2)
        failed = self.d.failed_runs
        if len(failed):
            sec.add(Para(f"{len(failed)} run(s) did not finish with status ok; they are left out of every "
                         "statistic."))
            rows = []
            for r in failed.itertuples(index=False):
                err = str(r.error or "").strip().replace("\n", " ")
                if len(err) > 180:
                    err = err[:177] + "..."
                err = f"`{err.replace('`', chr(39))}`" if err else "–"  # a code span shows the message literally
                rows.append([style.FRAMEWORK_LABELS.get(r.framework, r.framework), r.variant, f"{r.batch_size:,}",
                             str(r.threads), str(r.repeat), "yes" if r.instrumented else "no", r.status, err])
            sec.add(Table(["Framework", "Variant", "Batch", "Threads", "Repeat", "Instrumented", "Status", "Error"],
                          rows, ["l", "l", "r", "r", "r", "l", "l", "l"]))
        else:
            sec.add(Para("Every run finished with status ok."))
        items = self.missing_items()
        sec.add(Para("**Missing data:**" if items else "Nothing is missing: every file, framework and figure is there."))
        if items:
            sec.add(Bullets(items))
        return sec

    def about(self) -> Section:
        now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        return Section("About this report", 2, [Para(
            f"Generated on {now} by `python -m reports build {self.d.results_dir}` from runs.csv, epochs.csv, "
            "summary.csv, environment.json and study.json of that folder (those that exist). Statistics are "
            "recomputed from runs.csv; failed runs and the instrumented runs (per-phase timing on) are "
            "excluded from all timing statistics.")])


def build_report(results_dir, out_dir=None, accuracy_threshold: float | None = None) -> Path:
    """Build the report of a results folder; return the path of report.md.

    Writes ``report.md``, ``report.html`` (self-contained) and ``figures/*.png|svg`` to ``out_dir``
    (default ``results_dir/report``). Raises ``ReportInputError`` when the folder or its runs.csv is
    missing or unusable. ``accuracy_threshold`` fixes the time-to-accuracy threshold (default: the
    highest of 0.95, 0.94, ... that most variants reach).
    """
    data = load(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    fig_dir = out / "figures"
    threshold = accuracy_threshold if accuracy_threshold is not None else choose_threshold(data)
    outcomes = draw_all(data, fig_dir, threshold, auto_threshold=accuracy_threshold is None)
    machines.draw(data, fig_dir)
    doc = Composer(data, outcomes, threshold).document()
    md_path = write_text_atomic(out / "report.md", to_markdown(doc))
    write_text_atomic(out / "report.html", to_html(doc, fig_dir))
    return md_path
