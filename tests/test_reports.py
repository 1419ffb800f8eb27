"""Tests of the reports package and its command (python -m harness report) on small results folders made here
(no training)."""
from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also when run as plain `pytest` without installing the project
    sys.path.insert(0, str(REPO))

from reports import FIGURE_NAMES, ReportInputError, build_report  # noqa: E402
from markdown_table import parse_markdown_table  # noqa: E402
from harness.__main__ import main as cli_main  # noqa: E402
from reports.folder.schema import EPOCH_COLUMNS, RUN_COLUMNS  # noqa: E402

# Seconds per epoch (at repeat 0) of each variant per batch size; repeats add a little.
EPOCH_TIME = {
    ("numpy", "original"): {500: 1.34, 2000: 1.30, 20000: 1.26},
    ("numpy", "step1"): {500: 0.31, 2000: 0.29, 20000: 0.28},
    ("numpy", "step2"): {500: 0.27, 2000: 0.25, 20000: 0.25},
    ("numpy", "step3"): {500: 0.21, 2000: 0.20, 20000: 0.19},
    ("numpy", "optimized"): {500: 0.16, 2000: 0.15, 20000: 0.15},
    ("tensorflow", "fit"): {500: 0.77, 2000: 0.60, 20000: 0.49},
    ("tensorflow", "fit-tuned"): {500: 0.29, 2000: 0.27, 20000: 0.31},
    ("tensorflow", "loop"): {500: 0.43, 2000: 0.38, 20000: 0.37},
    ("jax", "fit"): {500: 0.35, 2000: 0.30, 20000: 0.28},
    ("jax", "loop"): {500: 0.14, 2000: 0.13, 20000: 0.12},
}
FIRST_EPOCH = {"tensorflow": 1.8, "jax": 12.0}  # the peers compile in their first epoch: its time over a steady one
FINAL_ACC = {500: 0.968, 2000: 0.962, 20000: 0.941}


def make_results(folder: Path, series, batch_sizes, repeats=2, epochs=3, threads=(2,), failed=(), noisy=(),
                 instrumented=True, files=("epochs", "summary", "environment", "study")) -> dict:
    """Write a small results folder in the harness's format; return the runs as dicts.

    ``failed``: (framework, variant, batch_size, repeat) tuples whose run failed; ``noisy``: (framework,
    variant, batch_size) cells whose second repeat takes 1.5 times as long.
    """
    folder.mkdir(parents=True, exist_ok=True)
    runs, epoch_rows = [], []
    for fw, var in series:
        for b in batch_sizes:
            for t in threads:
                for rep in range(repeats):
                    for instr in ((False, True) if instrumented and fw == "numpy" and rep == 0 else (False,)):
                        per_epoch = EPOCH_TIME[(fw, var)][b] * (1 + 0.05 * rep) * (1.0 if t > 1 else 1.6)
                        per_epoch *= 1.15 if instr else 1.5 if rep == 1 and (fw, var, b) in noisy else 1.0
                        bad = (fw, var, b, rep) in failed and not instr
                        walls = [per_epoch * (FIRST_EPOCH.get(fw, 1.0) if e == 1 else 1.0)
                                 for e in range(1, epochs + 1)]
                        offset = 0.0007 * (list(EPOCH_TIME).index((fw, var)) - 3)  # variants differ a little
                        accs = [FINAL_ACC[b] + offset - (FINAL_ACC[b] - 0.85) * math.exp(-(e - 1) * 0.5)
                                - 0.001 * rep for e in range(1, epochs + 1)]
                        row = dict(framework=fw, variant=var, batch_size=b, epochs=epochs, repeat=rep, seed=rep,
                                   threads=t, status="ok", error="", instrumented=instr)
                        if bad:
                            row.update(status="failed", error="MemoryError: unable to allocate | 3 GiB")
                            runs.append(row)
                            continue
                        row.update(wall_s=sum(walls), cpu_s=sum(walls) * (1.4 if fw == "numpy" else 1.9),
                                   first_epoch_wall_s=walls[0],
                                   steady_epoch_wall_s=float(np.median(walls[1:])) if epochs > 1 else "",
                                   setup_s=0.2 if fw == "numpy" else 3.0, train_acc=accs[-1] + 0.01,
                                   test_acc=accs[-1], final_loss=50.0,
                                   gemm_floor_s=(0.06 * epochs) if fw == "numpy" else "",
                                   peak_rss_mb=300 if fw == "numpy" else 900)
                        runs.append(row)
                        for e in range(1, epochs + 1):
                            er = dict(framework=fw, variant=var, batch_size=b, threads=t, repeat=rep,
                                      instrumented=instr, epoch=e, wall_s=walls[e - 1], cpu_s=walls[e - 1] * 1.4,
                                      eval_s=0.05, loss=100 / e, train_acc=accs[e - 1] - 0.01,
                                      test_acc=accs[e - 1], lr=0.001)
                            if instr:
                                shares = dict(prepare=0.05, forward=0.25, cost=0.05, backward=0.45, update=0.1)
                                for p, share in shares.items():
                                    er[f"phase_{p}_s"] = walls[e - 1] * share
                            epoch_rows.append(er)
    _write_csv(folder / "runs.csv", RUN_COLUMNS, runs)
    if "epochs" in files:
        _write_csv(folder / "epochs.csv", EPOCH_COLUMNS, epoch_rows)
    if "summary" in files:
        _write_csv(folder / "summary.csv", ["framework", "variant", "batch_size", "threads", "n_runs", "n_ok",
                                            "wall_median_s"], [])
    if "environment" in files:
        (folder / "environment.json").write_text(json.dumps({"sessions": [{
            "cpu_model": "Test CPU 3000", "cores": 2, "os": "Linux", "python": "3.11", "numpy": "2.4",
            "tensorflow": "2.21", "keras": "3.15",
            "blas": [{"internal_api": "openblas", "version": "0.3.30", "num_threads": 2}],
            "onednn": True, "git_commit": "abc1234", "date": "2025-01-01", "command": "python -m harness run"}]}))
    if "study" in files:
        (folder / "study.json").write_text(json.dumps({
            "preset": "test", "epochs": epochs, "batch_sizes": list(batch_sizes), "threads": list(threads),
            "repeats": repeats, "frameworks": sorted({fw for fw, _ in series}),
            "variants": {}, "config": {"layer_sizes": [784, 70, 30, 10], "hidden_activation": "sigmoid",
                                       "output_activation": "sigmoid", "loss": "logloss", "learning_rate": None,
                                       "lr_decay": 1e-6, "momentum": 5e-5, "l2": 0.2, "l1": 0.0,
                                       "init_scale": 0.5, "input_scaling": "standardize", "dtype": "float32"},
            "train_limit": None}))
    return {"runs": runs}


def _write_csv(path: Path, columns, rows) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def _check_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.is_file(), path
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(raw) > 5_000, f"{path} is only {len(raw)} bytes"
    image = mpimg.imread(path)
    assert image.shape[1] >= 600 and image.shape[0] >= 200, image.shape
    assert path.with_suffix(".svg").is_file()


def _check_figures(fig_dir: Path, text: str) -> None:
    """Each figure is drawn and shown, or left out (no file, no image in the report) with the reason listed."""
    for name in FIGURE_NAMES:
        if f"Figure `{name}` is left out" in text:
            assert not (fig_dir / f"{name}.png").exists() and f"](figures/{name}.png)" not in text
        else:
            _check_png(fig_dir / f"{name}.png")
            assert f"](figures/{name}.png)" in text


def _medians(runs, fw, var, b):
    walls = [r["wall_s"] for r in runs if (r["framework"], r["variant"], r["batch_size"]) == (fw, var, b)
             and r["status"] == "ok" and not r["instrumented"]]
    return float(np.median(walls)), walls


SERIES = [("numpy", "step3"), ("numpy", "optimized"), ("tensorflow", "fit-tuned")]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results_small")
    made = make_results(folder, SERIES, batch_sizes=(500, 2000, 20000), repeats=2, epochs=3,
                        failed=[("tensorflow", "fit-tuned", 20000, 1)], noisy=[("numpy", "step3", 500)])
    md = build_report(folder)
    return folder, md, made["runs"]


def test_all_figures_exist_and_are_valid_pngs(small_report):
    folder, md, _ = small_report
    assert md == folder / "report" / "report.md"
    for name in FIGURE_NAMES:
        _check_png(folder / "report" / "figures" / f"{name}.png")
    text = md.read_text()
    assert "could not be drawn" not in text
    assert "is left out" not in text  # this folder has data for every figure
    html = (folder / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert f"](figures/{name}.png)" in text


def test_headline_table_holds_the_medians(small_report):
    folder, md, runs = small_report
    rows = parse_markdown_table(md.read_text().split("## Headline results", 1)[1])
    assert len(rows) == 9  # 3 variants x 3 batch sizes
    by_key = {(r["Framework"], r["Variant"], int(r["Batch"].replace(",", ""))): r for r in rows}
    tensorflow_500, _ = _medians(runs, "tensorflow", "fit-tuned", 500)
    for fw, var in SERIES:
        for b in (500, 2000, 20000):
            row = by_key[({"numpy": "NumPy", "tensorflow": "TensorFlow"}[fw], var, b)]
            med, walls = _medians(runs, fw, var, b)
            assert float(row["Wall median (s)"]) == pytest.approx(med, rel=0.01)
            if len(walls) >= 2:
                iqr = np.percentile(walls, 75) - np.percentile(walls, 25)
                assert float(row["Wall IQR (s)"]) == pytest.approx(iqr, rel=0.02, abs=0.0015)
            else:
                assert row["Wall IQR (s)"] == "–"  # no spread from a single run
            assert row["Runs ok"] == f"{len(walls)}/2"
            if b == 500:
                assert _ratio(row["Speed-up vs fastest peer"]) == pytest.approx(tensorflow_500 / med, rel=0.01)
    # the failed repeat leaves TensorFlow at batch 20000 with one run: its median is that run's time
    row = by_key[("TensorFlow", "fit-tuned", 20000)]
    assert row["Runs ok"] == "1/2" and row["Spread"] == "1 run"
    assert row["Speed-up vs fastest peer"] == "1.00× (reference)"
    assert by_key[("NumPy", "optimized", 20000)]["Speed-up vs fastest peer"].endswith("(one run: no interval)")


def _ratio(cell: str) -> float:
    """1.27 from '1.27× [1.18, 1.36]'."""
    return float(cell.split("×", 1)[0])


def test_failed_run_and_missing_variant_are_listed(small_report):
    _, md, _ = small_report
    text = md.read_text()
    section = text.split("## Failed runs and missing data", 1)[1]
    failed = parse_markdown_table(section)
    assert len(failed) == 1
    assert failed[0]["Variant"] == "fit-tuned" and failed[0]["Status"] == "failed"
    assert "MemoryError" in failed[0]["Error"] and "|" in failed[0]["Error"]
    assert "loop" in section  # the Keras 'loop' variant was not run
    assert "Test CPU 3000" in text


def test_missing_framework_is_reported(tmp_path):
    folder = tmp_path / "numpy_only"
    make_results(folder, [("numpy", "step3"), ("numpy", "optimized")], batch_sizes=(500,), repeats=2,
                 epochs=3, files=("epochs",))
    md = build_report(folder, tmp_path / "out")
    assert md == tmp_path / "out" / "report.md"
    text = md.read_text()
    _check_figures(tmp_path / "out" / "figures", text)
    assert "TensorFlow was not run" in text
    assert "Figure `speedup_vs_peer` is left out" in text and "No data for this figure" not in text
    assert "environment.json" in text and "study.json" in text  # missing files are named
    assert "Only one batch size" in text
    assert (tmp_path / "out" / "report.html").is_file()


def test_runs_csv_only_and_all_failed(tmp_path):
    folder = tmp_path / "bare"
    make_results(folder, [("numpy", "step3"), ("tensorflow", "fit")], batch_sizes=(500,), repeats=1, epochs=2,
                 instrumented=False, failed=[("tensorflow", "fit", 500, 0)], files=())
    md = build_report(folder)
    text = md.read_text()
    assert "Every TensorFlow run failed" in text
    assert "epochs.csv" in text
    _check_figures(folder / "report" / "figures", text)


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ReportInputError, match="does not exist"):
        build_report(tmp_path / "nowhere")
    with pytest.raises(ReportInputError, match="runs.csv"):
        build_report(tmp_path)
    (tmp_path / "runs.csv").write_text("framework,variant\nnumpy,step3\n")
    with pytest.raises(ReportInputError, match="required column"):
        build_report(tmp_path)


def test_cli_missing_folder_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(tmp_path / "missing")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_cli_builds_into_out_dir(tmp_path, capsys):
    folder = tmp_path / "res"
    make_results(folder, SERIES[:2], batch_sizes=(500,), repeats=1, epochs=2, instrumented=False)
    assert cli_main(["report", str(folder), "--out", str(tmp_path / "rep"), "--accuracy-threshold", "0.8"]) == 0
    assert str(tmp_path / "rep" / "report.md") in capsys.readouterr().out
    assert "shortest median time to 80% test accuracy" in (tmp_path / "rep" / "report.md").read_text()
    assert not list((tmp_path / "rep").rglob("*.tmp"))  # atomic writes leave no temporary files
    assert cli_main(["report", str(tmp_path / "empty-dir-that-is-missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_internal_error_is_one_line_and_status_1_or_the_traceback_on_request(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "res"
    make_results(folder, SERIES[:2], batch_sizes=(500,), repeats=1, epochs=2, instrumented=False)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the report")

    monkeypatch.setattr("reports.build.build_report", broken)
    assert cli_main(["report", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: internal error in 'report': RuntimeError: a bug in the report (rerun with "
                                "--traceback for the details)"]
    assert cli_main(["report", str(folder), "--traceback"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: a bug in the report" in err


def test_cli_help_explains_options():
    proc = subprocess.run([sys.executable, "-m", "harness", "report", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for option in ("RESULTS_DIR", "--out", "--accuracy-threshold"):
        assert option in proc.stdout


def test_noisy_cell_and_one_run_cell_appear_as_such(small_report):
    _, md, runs = small_report
    text = md.read_text()
    section = text.split("## How sure these numbers are", 1)[1].split("\n## ", 1)[0]
    noisy = parse_markdown_table(section)
    assert [(r["Variant"], r["Batch"]) for r in noisy] == [("NumPy step3", "500")]  # the cell whose runs spread
    _, walls = _medians(runs, "numpy", "step3", 500)
    assert noisy[0]["Wall times of the runs (s)"] == ", ".join(f"{w:.3f}" for w in sorted(walls))
    assert "rerun them with more repeats" in section
    assert "**One run, no interval**: TensorFlow fit-tuned at batch 20,000" in section
    headline = {(r["Variant"], r["Batch"]): r for r in parse_markdown_table(text.split("## Headline results", 1)[1])}
    assert headline[("step3", "500")]["Spread"].endswith("**noisy**")
    assert not headline[("step3", "20,000")]["Spread"].endswith("**noisy**")


def test_first_screen_holds_the_short_answer_and_the_winner_map(small_report):
    _, md, _ = small_report
    first = md.read_text().splitlines()[:40]
    assert "## The answer" in first and any("](figures/winner_map.png)" in line for line in first)
    answer = "\n".join(first).split("## The answer", 1)[1].split("###", 1)[0]
    sentences = [line for line in answer.splitlines() if line.startswith("- ")]
    assert 1 <= len(sentences) <= 5
    # 2 runs per cell: the lead at batch 500 carries its interval, and the sentence names no winner without one
    assert re.search(r"NumPy optimized at batch 500, 2,000 and 20,000 \(([\d.]+× \[[\d.]+, [\d.]+\], ){2}[\d.]+× "
                     r"\[[\d.]+, [\d.]+\] ahead of the runner-up\)", sentences[0])
    assert all("×" not in s or "[" in s or "no interval" in s for s in sentences)
    text = md.read_text()  # then the cost model and its crossovers, then the headline table
    order = ["## The answer", "](figures/winner_map.png)", "](figures/cost_model.png)", "NumPy faster per steady epoch",
             "## Headline results"]
    assert [text.index(marker) for marker in order] == sorted(text.index(marker) for marker in order)


def test_the_winner_maps_legend_says_why_with_each_winners_fitted_costs(small_report):
    """The headline figure answers 'why' too: a winner's legend entry carries its per-step and per-sample costs
    (cost_model.csv, whose step cost decides small batches) and its first epoch's extra time (short trainings)."""
    from reports import figures
    from reports.data import load
    from reports.folder.schema import COST_MODEL_FILE

    data = load(small_report[0])
    model = data.answer[COST_MODEL_FILE]
    threads = sorted(model["threads"].unique())
    fit = model[(model["framework"] == "numpy") & (model["variant"] == "optimized")].iloc[0]
    label = figures._why(data, ("numpy", "optimized"), threads)
    assert label.startswith("NumPy optimized: a step ")
    assert f"a step {fit['step_cost_s'] * 1e6:.0f} µs [{fit['step_cost_lo_s'] * 1e6:.0f}, " in label, label
    assert f"a sample {fit['sample_cost_s'] * 1e6:.1f} µs" in label and "; first epoch +" in label, label


def test_the_winner_map_promises_nothing_it_does_not_draw(tmp_path):
    """Two batch sizes (no cost model) and one variant ahead in both epochs (no break-even): the legend has no
    break-even entry and the caption promises no fitted costs, saying what they need instead."""
    from reports import figures
    from reports.data import load

    folder = tmp_path / "res"
    make_results(folder, [("numpy", "optimized"), ("tensorflow", "fit")], batch_sizes=(500, 2000), repeats=2,
                 epochs=3, instrumented=False)
    fig, facts = figures.fig_winner_map(load(folder))
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert not any("break-even" in text for text in legend), legend
    assert any(text.startswith("NumPy optimized: first epoch +") for text in legend), legend
    caption = figures.caption("winner_map", **facts)
    assert "Black lines" not in caption and "fitted cost per step (a low one" not in caption, caption
    assert "the fitted costs per step and per sample need 3 or more batch sizes" in caption, caption


def test_the_time_to_accuracy_caption_explains_stubs_only_when_some_are_drawn(tmp_path):
    import functools

    from reports import figures
    from reports.data import load

    folder = tmp_path / "res"
    make_results(folder, SERIES[:2], batch_sizes=(500,), repeats=2, epochs=3, instrumented=False)
    data = load(folder)
    for threshold, stubs in ((0.5, False), (0.999, True)):
        make = functools.partial(figures.fig_time_to_accuracy, threshold=threshold, auto_threshold=False)
        caption = figures.draw(tmp_path / f"fig{threshold}", "time_to_accuracy", make, data).caption
        assert ("Hatched stubs" in caption) is stubs, caption


def test_a_ladder_of_one_step_without_the_articles_times_is_left_out_and_saying_why(tmp_path):
    """The quick preset runs NumPy optimized alone, at batch sizes the article has no times for: no ladder to show.
    Two steps make a ladder, whose caption then mentions no article diamonds where none are drawn."""
    from reports import figures
    from reports.data import load

    one = tmp_path / "one"
    make_results(one, [("numpy", "optimized"), ("tensorflow", "fit")], batch_sizes=(500, 2000), repeats=2, epochs=3,
                 instrumented=False)
    left_out = figures.draw(tmp_path / "fig1", "ladder", figures.fig_ladder, load(one)).left_out
    assert left_out and "only NumPy optimized ran" in left_out and "a ladder needs two of its steps" in left_out
    two = tmp_path / "two"
    make_results(two, [("numpy", "step3"), ("numpy", "optimized")], batch_sizes=(2000,), repeats=2, epochs=3,
                 instrumented=False)
    drawn = figures.draw(tmp_path / "fig2", "ladder", figures.fig_ladder, load(two))
    assert not drawn.left_out and "diamonds" not in drawn.caption, drawn.caption
    assert "the article has no times for these steps and batch sizes" in drawn.caption, drawn.caption


def test_no_paragraph_is_longer_than_800_characters(small_report):
    _, md, _ = small_report
    text = md.read_text()
    long = [line[:80] for line in text.splitlines() if not line.startswith("|") and len(line) > 800]
    assert not long
    assert len(text.splitlines()) < 350


def test_templates_only_display():
    """The report's logic lives in Python (reports.sections, reports.findings, reports.answer): a template places
    prepared values, tests whether they are there and formats numbers with the package's own filters; no
    arithmetic, comparisons, slicing, Jinja tests or Jinja's built-in filters (min, map, selectattr, join...)."""
    import jinja2
    from jinja2 import nodes

    from reports.document import templates

    formats = set(templates().filters) - set(jinja2.defaults.DEFAULT_FILTERS)
    logic = (nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Neg,
             nodes.Compare, nodes.Test, nodes.Slice, nodes.ExprStmt)
    parser = jinja2.Environment(extensions=["jinja2.ext.do"])  # so that a {% do %} is found, not a syntax error
    found = []
    for path in sorted((REPO / "reports" / "templates").glob("*.j2")):
        tree = parser.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.name}:{n.lineno} {type(n).__name__}" for n in tree.find_all(logic)]
        found += [f"{path.name}:{n.lineno} |{n.name}" for n in tree.find_all(nodes.Filter) if n.name not in formats]
    assert not found, f"logic in the templates (move it to reports/): {', '.join(found)}"


def test_a_third_framework_slots_in(tmp_path, monkeypatch):
    """Keras on JAX beside Keras on TensorFlow: named in tables and legends, compared as a peer, its compile
    time turned into a break-even epoch."""
    import matplotlib

    from reports.folder.schema import FRAMEWORKS

    monkeypatch.setitem(FRAMEWORKS, "jax", FRAMEWORKS.get("jax", "Keras 3 on JAX"))  # registered by the jax branch
    folder = tmp_path / "three"
    series = [("numpy", "optimized"), ("tensorflow", "loop"), ("jax", "fit"), ("jax", "loop")]
    make_results(folder, series, batch_sizes=(500,), repeats=3, epochs=6, instrumented=False)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # legend text searchable in the SVG
        md = build_report(folder)
    text = md.read_text()
    headline = parse_markdown_table(text.split("## Headline results", 1)[1])
    assert {r["Framework"] for r in headline} == {"NumPy", "TensorFlow", "JAX"}
    assert {r["Variant"]: r["Speed-up vs fastest peer"] for r in headline}["loop"]  # both loops present
    fastest = parse_markdown_table(text.split("## The fastest of each framework", 1)[1])
    jax = next(r for r in fastest if r["Framework"] == "JAX")
    assert jax["Fastest (whole training)"] == "loop" and "[" in jax["Fastest NumPy against it"]
    tensorflow = next(r for r in fastest if r["Framework"] == "TensorFlow")
    assert "[" in tensorflow["Fastest NumPy against it"]
    # JAX loop: the faster steady epoch (0.14 s against 0.16 s), the slower first (1.68 s against 0.16 s)
    breaks = parse_markdown_table(text.split("#### Break-even epochs", 1)[1])
    row = next(r for r in breaks if r["Variant"] == "NumPy optimized")
    assert row["Against"] == "JAX loop" and row["Ahead after the flip"] == "JAX loop"
    assert "JAX loop overtakes NumPy optimized after about" in (folder / "report" / "report.html").read_text()
    for name in ("speedup_vs_peer", "time_vs_batch", "time_to_accuracy"):
        svg = (folder / "report" / "figures" / f"{name}.svg").read_text()
        assert "JAX loop" in svg and "TensorFlow loop" in svg, name
