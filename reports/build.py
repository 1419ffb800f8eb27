"""Compose the report (Markdown and self-contained HTML) from a results folder."""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import article, machines, style
from harness.files import write_text_atomic
from .data import RUN_KEY, StudyData, choose_threshold, load, time_to_accuracy_table
from .document import Bullets, Document, Figure, Para, Section, Table, to_html, to_markdown
from .figures import FIGURE_NAMES, FigureOutcome, accuracy_curves, draw_all, fmt_s, phase_table
from harness.schema import variant_descriptions
from harness.schema import FASTER, REFERENCE, SLOWER, UNCLEAR
from harness.summary import N_RESAMPLES, NOISY_REL_IQR

# -- formatting ----------------------------------------------------------------------------------
def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and np.isfinite(x)


def fmt_acc(x) -> str:
    return f"{x:.4f}" if _ok(x) else "–"


def fmt_interval(x, lo, hi, verdict) -> str:
    """A speed-up with its 95 % interval, '1.27× [1.18, 1.36]'; a cell without one says why."""
    if not _ok(x):
        return "–"
    if verdict == REFERENCE:
        return f"{x:.2f}× (reference)"
    if _ok(lo) and _ok(hi):
        return f"{x:.2f}× [{lo:.2f}, {hi:.2f}]"
    return f"{x:.2f}× (one run: no interval)"


def fmt_ratio(row, column: str) -> str:
    """The speed-up in ``column`` of a summary row, with its interval."""
    return fmt_interval(row.get(column), row.get(f"{column}_lo"), row.get(f"{column}_hi"),
                        row.get(f"{column}_verdict"))


def fmt_verdict(row, column: str) -> str:
    v = row.get(f"{column}_verdict")
    return v if isinstance(v, str) and v else "–"


def claim(row, column: str, subject: str, other: str) -> str:
    """A sentence on who is faster that says no more than the verdict of ``column`` supports."""
    ratio, v = fmt_ratio(row, column), row.get(f"{column}_verdict")
    if v == FASTER:
        return f"{subject} is faster than {other}: {ratio}"
    if v == SLOWER:
        return f"{subject} is slower than {other}: {ratio}"
    if v == UNCLEAR:
        return f"there is no clear difference between {subject} and {other}: {ratio}"
    return f"{subject} against {other}: {ratio}"


def fmt_epochs(x) -> str:
    if not _ok(x):
        return "never" if x == math.inf else "–"
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def fmt_pct(x) -> str:
    return f"{x:.0%}" if _ok(x) else "–"


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

    def peers(self) -> list[str]:
        """The peer frameworks with successful runs, in report order."""
        return [f for f in self.d.frameworks if f != "numpy"]

    def peer_row(self, name: str, b: int, t: int):
        """The summary row of a 'framework/variant' name (summary.csv's best_peer)."""
        return self.row(*name.split("/", 1), b, t) if isinstance(name, str) and "/" in name else None

    def row(self, fw: str, var: str, b: int, t: int):
        s = self.ok_stats
        s = s[(s["framework"] == fw) & (s["variant"] == var) & (s["batch_size"] == b) & (s["threads"] == t)]
        return None if s.empty else s.iloc[0]

    # ---------------------------------------------------------------------------------------
    def document(self) -> Document:
        doc = Document("When does hand-written NumPy beat Keras on the CPU? A small MLP on MNIST")
        doc.sections += [self.intro(), self.question(), *self.setup(), self.headline(), self.fastest_table(),
                         self.certainty()]
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
            "ways of training the same network in Keras (its *peers*: every framework other than NumPy), at "
            "several batch sizes, repeating each run."))
        sec.add(Para("**Short answer, from the data below** (speed-ups with their 95 % intervals; who is faster "
                     "is said only where the interval excludes 1):"))
        sec.add(Bullets(_safe(self.short_answer, lambda msg: [msg])))
        return sec

    def against_peers(self, bn, b: int, t: int) -> str:
        """How the fastest NumPy row fares against the fastest peer, whole training and per steady epoch."""
        peer = self.peer_row(bn.get("best_peer"), b, t)
        other = f"the fastest peer, {style.label_of(bn['best_peer'])}" + (
            f" ({fmt_s(peer['wall_median_s'])} s)" if peer is not None else "")
        text = claim(bn, "speedup_vs_best_peer", f"NumPy {bn['variant']} ({fmt_s(bn['wall_median_s'])} s)", other)
        if isinstance(bn.get("best_peer_steady"), str):
            text += "; per steady epoch, " + claim(bn, "steady_speedup_vs_best_peer", "it",
                                                   style.label_of(bn["best_peer_steady"]))
        return text

    def short_answer(self) -> list[str]:
        items = []
        if "numpy" not in self.d.frameworks or not self.peers():
            missing = _join([n for n, ok in (("NumPy", "numpy" in self.d.frameworks), ("peer", self.peers())) if not ok])
            items.append(f"No successful {missing} runs: this study cannot compare NumPy with a framework. "
                         "What it shows is listed below for what ran.")
        for b in self.d.batch_sizes:
            for t in self.d.threads_values if self.several_threads else [self.main_threads]:
                bn = self.best(b, t, "numpy")
                if bn is None or not isinstance(bn.get("best_peer"), str):
                    continue
                text = f"At {self.at(b, t)}, " + self.against_peers(bn, b, t)
                if len(self.peers()) > 1:
                    text += "; against the fastest of each peer framework: " + "; ".join(
                        f"{style.label(fw, bn[f'best_{fw}_variant'])} {fmt_ratio(bn, f'speedup_vs_best_{fw}')} "
                        f"{fmt_verdict(bn, f'speedup_vs_best_{fw}')}" for fw in self.peers()
                        if isinstance(bn.get(f"best_{fw}_variant"), str))
                items.append(text + ".")
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
            for fw in self.d.frameworks:
                best = self.best(b, t, fw)
                if best is None or not _ok(best["steady_epoch_median_s"]):
                    continue
                ms = best["steady_epoch_median_s"] / steps * 1000
                parts.append(f"{style.label(fw, best['variant'])} {ms:.3g} ms")
            if len(parts) >= 2:
                per_step.append(f"batch {b:,} ({steps} steps per epoch): {', '.join(parts)}")
        if per_step:
            out.append("Time per mini-batch step in a steady epoch, fastest variant of each framework (medians)"
                       + (f" ({style.threads_label(self.main_threads)})" if self.several_threads else "")
                       + " — " + "; ".join(per_step) + ". A framework pays a fixed cost per step (launching "
                       "the compiled step, bookkeeping); the fewer and larger the batches, the more arithmetic "
                       "that cost is spread over.")
        extra = []
        for fw in self.peers():
            k = self.ok_stats[self.ok_stats["framework"] == fw]
            gap = (k["first_epoch_median_s"] - k["steady_epoch_median_s"]).dropna()
            if len(gap) and gap.median() > 0:
                extra.append(f"{style.framework_label(fw)} {fmt_s(float(gap.median()))} s")
        if extra:
            out.append("A peer's first epoch takes longer than its later epochs (tracing and compiling the "
                       f"training step; median over its variants and batch sizes): {', '.join(extra)}, a one-off "
                       "cost that weighs more the fewer epochs are run (see *Break-even epochs*).")
        main = self.ok_stats[self.ok_stats["threads"] == self.main_threads]
        cpw = main.groupby("framework")["cpu_per_wall"].median().dropna()
        if len(cpw):
            out.append("CPU seconds per wall-clock second, i.e. how many cores are busy on average (median over "
                       "variants and batch sizes" + (f", {style.threads_label(self.main_threads)}" if
                                                     self.several_threads else "") + "): "
                       + ", ".join(f"{style.framework_label(f)} {v:.2f}"
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
        registry = {(fw, v): text for fw, named in variant_descriptions().items() for v, text in named.items()}
        for fw, var in style.sort_series(set(registry) | set(counts)):
            n_ok, n = counts.get((fw, var), (0, 0))
            rows.append([style.label(fw, var), registry.get((fw, var), "(not described)"),
                         f"{n_ok}/{n}" if n else "not run"])
        variants.add(Table(["Variant", "What it is", "Runs ok / runs"], rows, ["l", "l", "r"]))
        variants.add(Para("Every peer variant (Keras on TensorFlow, Keras/TF; Keras on JAX, Keras/JAX) uses the "
                          "same summed loss, momentum rule and learning-rate schedule as the NumPy code, so that "
                          "both sides do the same arithmetic."))

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
                f"{env.get('tensorflow', '?')}, Keras {env.get('keras', '?')}"
                + (f", JAX {env['jax']}" if env.get("jax") else ""),
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
            "**peer**: every framework other than NumPy (Keras/TF, Keras/JAX). **speed-up vs fastest peer**: "
            "median wall time of the fastest peer variant at the same batch size and threads divided by this "
            "variant's; above 1 means faster. The **steady-epoch speed-up** does "
            "the same with the median steady epoch, leaving out the peers' one-off compilation in the first "
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
            "Framework", "Variant", "Runs ok", "Wall median (s)", "Wall IQR (s)", "Spread", "Test accuracy",
            "Speed-up vs fastest peer", "Verdict", "Steady-epoch speed-up vs fastest peer", "Steady verdict"]
        align = ["r"] * (2 if self.several_threads else 1) + ["l", "l"] + ["r"] * 8 + ["l"]
        rows = []
        for _, r in self.stats.iterrows():
            rows.append([f"{r.batch_size:,}"] + ([str(r.threads)] if self.several_threads else []) + [
                style.framework_label(r.framework), r.variant, f"{r.n_ok}/{r.n_runs}", fmt_s(r.wall_median_s),
                fmt_s(r.wall_iqr_s) if r.n_ok >= 2 else "–", self.spread(r), fmt_acc(r.test_acc_median),
                fmt_ratio(r, "speedup_vs_best_peer"), fmt_verdict(r, "speedup_vs_best_peer"),
                fmt_ratio(r, "steady_speedup_vs_best_peer"), fmt_verdict(r, "steady_speedup_vs_best_peer")])
        return headers, rows, align

    @staticmethod
    def spread(r) -> str:
        if r.n_ok < 2:
            return "1 run" if r.n_ok == 1 else "–"
        return f"{r.wall_rel_iqr:.0%}" + (" **noisy**" if r.noisy else "")

    def headline(self) -> Section:
        sec = Section("Headline results", 2)
        headers, rows, align = self.headline_rows()
        sec.add(Para("Median over the successful, uninstrumented repeats of each variant. Training time covers "
                     "all epochs and excludes evaluation and set-up. *Spread* is the IQR over the median of the "
                     f"runs' wall times (**noisy** from {NOISY_REL_IQR:.1%}). The speed-ups compare with the "
                     "fastest peer variant at the same batch size and threads (whole training, and per steady "
                     "epoch without the first), with 95 % bootstrap intervals and the verdict they support."))
        sec.add(Table(headers, rows, align))
        notes = []
        if (self.stats["n_ok"] == 0).any():
            bad = self.stats[self.stats["n_ok"] == 0]
            notes.append("No successful run for " + _join(
                [f"{style.label(r.framework, r.variant)} at {self.at(r.batch_size, r.threads)}" for r in bad.itertuples()])
                + " (see *Failed runs and missing data*).")
        if not self.peers():
            notes.append("The speed-up columns are empty because there are no successful peer runs.")
        if notes:
            sec.add(Para(" ".join(notes)))
        return sec

    def fastest_table(self) -> Section:
        """The fastest variant of each framework per batch size, and the fastest NumPy against each."""
        sec = Section("The fastest of each framework", 3)
        rows = []
        for b, t in self.combos():
            bn = self.best(b, t, "numpy")
            for fw in self.d.frameworks:
                best = self.best(b, t, fw)
                s = self.ok_stats[(self.ok_stats["batch_size"] == b) & (self.ok_stats["threads"] == t)
                                  & (self.ok_stats["framework"] == fw) & self.ok_stats["steady_epoch_median_s"].notna()]
                steady = s.loc[s["steady_epoch_median_s"].idxmin()] if len(s) else None
                if best is None:
                    continue
                vs = f"speedup_vs_best_{fw}"
                compared = fw != "numpy" and bn is not None and vs in self.stats
                rows.append([f"{b:,}"] + ([str(t)] if self.several_threads else []) + [
                    style.framework_label(fw), best["variant"], fmt_s(best["wall_median_s"]),
                    steady["variant"] if steady is not None else "–",
                    fmt_s(steady["steady_epoch_median_s"]) if steady is not None else "–",
                    f"{fmt_ratio(bn, vs)}, {fmt_verdict(bn, vs)}" if compared else "–",
                    f"{fmt_ratio(bn, 'steady_' + vs)}, {fmt_verdict(bn, 'steady_' + vs)}" if compared else "–"])
        sec.add(Para("Per batch size, the variant of each framework with the lowest median wall time and the "
                     "one with the lowest median steady epoch, and how the fastest NumPy variant compares with "
                     "them (95 % intervals). The fastest peer of the headline table is the fastest of these rows "
                     "other than NumPy's."))
        sec.add(Table(["Batch"] + (["Threads"] if self.several_threads else []) + [
            "Framework", "Fastest (whole training)", "Wall median (s)", "Fastest per steady epoch",
            "Steady epoch (s)", "Fastest NumPy against it", "… per steady epoch"], rows,
            ["r"] * (2 if self.several_threads else 1) + ["l", "l", "r", "l", "r", "r", "r"]))
        return sec

    def certainty(self) -> Section:
        sec = Section("How sure these numbers are", 2)
        sec.add(Para(
            "Every speed-up carries a 95 % percentile-bootstrap interval: the runs of both cells are resampled "
            f"({N_RESAMPLES} times, with a fixed seed, so a rebuilt report prints the same intervals) and the "
            "ratio of medians recomputed; per steady epoch the steady epochs within each drawn run are resampled "
            "too, so that both process-to-process and epoch-to-epoch noise widen it. The verdict is *faster* or "
            "*slower* when the interval lies above or below 1, *no clear difference* when it holds 1. With three "
            "runs a cell's median can take only three values, so intervals are wide and somewhat rough."))
        timed = self.stats[self.stats["n_ok"] > 0]
        noisy = timed[timed["noisy"]]
        if len(noisy):
            sec.add(Para(
                f"**Noisy cells**: the runs of these cells spread by {NOISY_REL_IQR:.1%} of their median or more "
                "(IQR / median; for normal noise that is a standard deviation of 10 % of the mean, where pyperf "
                "warns that a result may be unstable). Their verdicts rest on shaky medians: rerun them with more "
                "repeats (`--repeats 5`), on a quieter machine (nothing else running, fixed CPU frequency), and "
                "compare the new intervals."))
            sec.add(Table(["Batch"] + (["Threads"] if self.several_threads else []) + [
                "Variant", "Runs ok", "Wall times of the runs (s)", "Median (s)", "Spread (IQR / median)"],
                [[f"{r.batch_size:,}"] + ([str(r.threads)] if self.several_threads else []) + [
                    style.label(r.framework, r.variant), str(r.n_ok), ", ".join(fmt_s(w) for w in self.walls(r)),
                    fmt_s(r.wall_median_s), f"{r.wall_rel_iqr:.0%}"] for r in noisy.itertuples()],
                ["r"] * (2 if self.several_threads else 1) + ["l", "r", "r", "r", "r"]))
        elif (timed["n_ok"] >= 2).any():
            sec.add(Para(f"No cell is noisy: the runs of every cell spread by less than {NOISY_REL_IQR:.1%} of "
                         "their median (IQR / median)."))
        single = timed[timed["n_ok"] == 1]
        if len(single) == len(timed) and len(timed):
            sec.add(Para(f"**Every cell has one run**: no speed-up has an interval or a verdict, each is a single "
                         "measurement that can be off by a third on a busy machine. Rerun with `--repeats 3` or "
                         "more for intervals."))
        elif len(single):
            sec.add(Para("**One run, no interval**: " + _join(
                [f"{style.label(r.framework, r.variant)} at {self.at(r.batch_size, r.threads)}" for r in single.itertuples()])
                + " ran once, so their speed-ups have no interval and no verdict."))
        return sec

    def walls(self, r) -> list[float]:
        runs = self.d.timing_runs
        sel = runs[(runs["framework"] == r.framework) & (runs["variant"] == r.variant)
                   & (runs["batch_size"] == r.batch_size) & (runs["threads"] == r.threads)]
        return sorted(sel["wall_s"])

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
                                           "stand for the same variant in every figure: NumPy in cool colours, "
                                           "Keras/TF in warm ones, Keras/JAX in magentas.")])
        out = [head]
        out += self.figure("time_vs_batch", self.text_time, lambda: [self.epoch_table()])
        out += self.figure("speedup_vs_peer", self.text_speedup, lambda: [self.break_even_table()])
        out += self.figure("ladder", self.text_ladder, lambda: [self.step3_table(), self.article_comparison()])
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
            txt = (f"At batch {b:,} the lowest median wall time is {style.label(fast['framework'], fast['variant'])}'s "
                   f"({fmt_s(fast['wall_median_s'])} s)")
            if len(s) > 1:
                txt += (f" and the highest {style.label(slow['framework'], slow['variant'])}'s "
                        f"({fmt_s(slow['wall_median_s'])} s)")
            parts.append(txt + ".")
        bs = self.d.batch_sizes
        if len(bs) >= 2:
            trend = []
            lo, hi = bs[0], bs[-1]
            for fw in self.d.frameworks:
                a, z = self.best(lo, self.main_threads, fw), self.best(hi, self.main_threads, fw)
                if a is not None and z is not None:
                    trend.append(f"the fastest {style.framework_label(fw)} median goes from "
                                 f"{fmt_s(a['wall_median_s'])} s ({a['variant']}) to {fmt_s(z['wall_median_s'])} s "
                                 f"({z['variant']})")
            if trend:
                parts.append(f"From batch {lo:,} to {hi:,}, " + _join(trend) + ".")
        else:
            parts.append("Only one batch size was run, so the figure cannot show how time depends on it.")
        cpw = self.ok_stats[["framework", "variant", "cpu_per_wall"]].dropna()
        if len(cpw):
            hi_row = cpw.loc[cpw["cpu_per_wall"].idxmax()]
            parts.append(f"CPU time exceeds wall time where several cores work in parallel: up to "
                         f"{hi_row['cpu_per_wall']:.2f} CPU-seconds per second ({style.label(hi_row['framework'], hi_row['variant'])}).")
        return [" ".join(parts) + self.threads_note()]

    def epoch_table(self) -> Section:
        sec = Section("First epoch, steady epochs and set-up", 4)
        rows = []
        for r in self.ok_stats.itertuples(index=False):
            rows.append([f"{r.batch_size:,}"] + ([str(r.threads)] if self.several_threads else []) + [
                style.label(r.framework, r.variant), fmt_s(r.first_epoch_median_s), fmt_s(r.steady_epoch_median_s),
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
            bn = self.best(b, t, "numpy")
            if bn is None or not isinstance(bn.get("best_peer"), str):
                continue
            s = self.ok_stats[(self.ok_stats["batch_size"] == b) & (self.ok_stats["threads"] == t)
                              & (self.ok_stats["framework"] == "numpy") & (self.ok_stats["variant"] != bn["variant"])]
            others = "; ".join(f"{r['variant']} {fmt_ratio(r, 'speedup_vs_best_peer')}, "
                               f"{fmt_verdict(r, 'speedup_vs_best_peer')}" for _, r in s.iterrows())
            parts.append(f"At batch {b:,}, " + self.against_peers(bn, b, t)
                         + (f". The other NumPy variants: {others}" if others else "") + ".")
        faster = self.ok_stats[(self.ok_stats["framework"] == "numpy") & (self.ok_stats["threads"] == self.main_threads)
                               & (self.ok_stats["speedup_vs_best_peer_verdict"] == FASTER)]
        if len(parts):
            if len(faster):
                first = min(faster["variant"], key=lambda v: style.variant_rank("numpy", v))
                parts.append(f"On the ladder, {first} is the first NumPy step that is faster than the fastest peer "
                             "(interval above 1) at some batch size.")
            else:
                parts.append("No NumPy variant is clearly faster than the fastest peer at any batch size (no "
                             "interval lies above 1).")
        return [" ".join(parts) + self.threads_note()]

    def break_even_table(self) -> Section:
        sec = Section("Break-even epochs", 4)
        s = self.ok_stats[self.ok_stats["break_even_epochs"].notna()]
        sec.add(Para(
            "A training of n epochs takes first + (n − 1) × steady epoch. Where a variant has the faster first "
            "epoch but the slower steady epoch than the fastest peer per steady epoch (or the other way round), "
            "the ranking flips after 1 + Δfirst / Δsteady epochs, with a 95 % bootstrap interval (runs, then "
            "epochs, resampled); *never* means that in some resamples the side with the faster steady epoch "
            "no longer has it, so the flip may not come at all."))
        if s.empty:
            sec.add(Para("Nowhere does one side have the faster first and the slower steady epoch: no ranking flips "
                         "with the number of epochs."))
            return sec
        rows, sentences = [], []
        for _, r in s.iterrows():
            me, ref = style.label(r["framework"], r["variant"]), style.label_of(r["best_peer_steady"])
            peer = self.peer_row(r["best_peer_steady"], r["batch_size"], r["threads"])
            ahead, behind = (me, ref) if r["steady_epoch_median_s"] < peer["steady_epoch_median_s"] else (ref, me)
            n = fmt_epochs(r["break_even_epochs"])
            interval = f"[{fmt_epochs(r['break_even_epochs_lo'])}, {fmt_epochs(r['break_even_epochs_hi'])}]" \
                if _ok(r["break_even_epochs_lo"]) else "(one run: no interval)"
            rows.append([f"{r['batch_size']:,}"] + ([str(r["threads"])] if self.several_threads else []) + [
                me, ref, f"{fmt_s(r['first_epoch_median_s'])} / {fmt_s(peer['first_epoch_median_s'])}",
                f"{fmt_s(r['steady_epoch_median_s'])} / {fmt_s(peer['steady_epoch_median_s'])}", ahead,
                f"{n} {interval}"])
            sentences.append(f"{ahead} overtakes {behind} after about {n} epochs {interval} at "
                             f"{self.at(r['batch_size'], r['threads'])}")
        sec.add(Table(["Batch"] + (["Threads"] if self.several_threads else []) + [
            "Variant", "Against", "First epoch (s), variant / against", "Steady epoch (s), variant / against",
            "Ahead after the flip", "Flips after (epochs) [95 %]"], rows,
            ["r"] * (2 if self.several_threads else 1) + ["l", "l", "r", "r", "l", "r"]))
        sec.add(Para("; ".join(sentences) + f". This study ran {self.d.epochs_per_run or '?'} epochs."))
        return sec

    def step3_table(self) -> Section:
        sec = Section("Against the article's final code (step3)", 4)
        s = self.ok_stats[self.ok_stats["speedup_vs_step3"].notna()]
        sec.add(Para("Each variant against NumPy step3 at the same batch size and threads: whole training and "
                     "per steady epoch, with 95 % intervals and verdicts."))
        sec.add(Table(["Batch"] + (["Threads"] if self.several_threads else []) + [
            "Variant", "Speed-up vs step3", "Verdict", "Steady-epoch speed-up vs step3", "Steady verdict"],
            [[f"{r['batch_size']:,}"] + ([str(r["threads"])] if self.several_threads else []) + [
                style.label(r["framework"], r["variant"]), fmt_ratio(r, "speedup_vs_step3"),
                fmt_verdict(r, "speedup_vs_step3"),
                fmt_ratio(r, "steady_speedup_vs_step3"), fmt_verdict(r, "steady_speedup_vs_step3")]
             for _, r in s.iterrows()],
            ["r"] * (2 if self.several_threads else 1) + ["l", "r", "l", "r", "l"]))
        return sec

    def text_ladder(self) -> list[str]:
        lines = []
        for b, t in self.main_combos(self.ok_stats[self.ok_stats["framework"] == "numpy"]):
            s = self.ok_stats[(self.ok_stats["framework"] == "numpy") & (self.ok_stats["batch_size"] == b)
                              & (self.ok_stats["threads"] == t) & self.ok_stats["speedup_vs_step3"].notna()]
            steps = [r for _, r in s.iterrows() if r["variant"] != "step3"]
            if not steps:
                continue
            text = f"At batch {b:,}: " + ", ".join(f"{r['variant']} {fmt_ratio(r, 'speedup_vs_step3')}" for r in steps)
            original = [r for r in steps if r["variant"] == "original"]
            if original:
                r = original[0]
                text += ("; so step3 is " + fmt_interval(1 / r["speedup_vs_step3"], 1 / r["speedup_vs_step3_hi"],
                                                        1 / r["speedup_vs_step3_lo"], r["speedup_vs_step3_verdict"])
                         + " as fast as original")
            lines.append(text + ".")
        if not lines:
            return ["Fewer than two steps of the ladder were run, so no gains can be computed."]
        return ["Each NumPy step against step3 (ratio of median wall times, 95 % interval; above 1 = faster). "
                + " ".join(lines) + " For comparison, the article reports 11 → 9.6 s for Step II, 9.6 → 7.3 s at "
                "batch 500 and 8.7 → 6.8 s at batch 20,000 for Step III, and more than "
                f"{article.ARTICLE_TOTAL_GAIN}× from the original code to Step III." + self.threads_note()]

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
            rows.append([style.label("numpy", a.variant), f"{a.batch_size:,}",
                         f"{a.seconds:g}" + (" (derived)" if a.derived else ""), fmt_s(scaled),
                         fmt_s(wall) if _ok(wall) else "not run",
                         fmt_s(iqr) if ours is not None and ours["n_ok"] >= 2 else "–"])
        sec.add(Table(["Variant", "Batch", "Article, 35 epochs (s)", "Article, scaled to this study (s)",
                       "Ours, median (s)", "Ours, IQR (s)"], rows, ["l", "r", "r", "r", "r", "r"]))
        cpu = self.d.env.get("cpu_model") or "a different, unrecorded CPU"
        sec.add(Para(
            note + " Compare the steps' ratios rather than absolute times: the article ran on the "
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
                   f"({style.label(lo['framework'], lo['variant'])}) and {fmt_acc(hi['test_acc'])} "
                   f"({style.label(hi['framework'], hi['variant'])}), a spread of {spread:.1f} percentage points")
            if len(last) == 1:
                txt = (f"At batch {int(b):,}, only {style.label(lo['framework'], lo['variant'])} has accuracy data "
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
                txt += (f", {style.label(f['framework'], f['variant'])} reaches {self.threshold:.0%} test accuracy first, "
                        f"after {fmt_s(f['time_s'])} s of training (epoch {int(f['epoch'])})")
                bk = reached[reached["framework"] != "numpy"]
                if len(bk) and f["framework"] == "numpy":
                    k = bk.iloc[0]
                    txt += f"; the first peer is {style.label(k['framework'], k['variant'])} at {fmt_s(k['time_s'])} s"
            if len(missed) == len(g):
                c = curves[curves["batch_size"] == b]
                best = c.loc[c["test_acc"].idxmax()] if c["test_acc"].notna().any() else None
                txt += (f", no variant reaches it within {self.d.epochs_per_run or '?'} epochs"
                        + (f" (best median test accuracy {fmt_acc(best['test_acc'])}, "
                           f"{style.label(best['framework'], best['variant'])})" if best is not None else ""))
            elif len(missed):
                txt += "; " + _join([style.label(r.framework, r.variant) for r in missed.itertuples()]) + " did not reach it"
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
        expected_fw = d.study.get("frameworks") if isinstance(d.study.get("frameworks"), list) else ["numpy", "keras"]  # the default study's
        present_fw = set(d.runs["framework"])
        for fw in expected_fw:
            name = style.framework_label(fw)
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
                items.append(f"{style.framework_label(fw)} variant(s) not run: {', '.join(absent)}.")
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
                rows.append([style.framework_label(r.framework), r.variant, f"{r.batch_size:,}",
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
            "summary.csv, environment.json and study.json of that folder (those that exist). The statistics are "
            "summary.csv's (computed by `harness.summary` when it is missing or older); failed runs and the "
            "instrumented runs (per-phase timing on) are excluded from all timing statistics.")])


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
