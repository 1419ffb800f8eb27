"""The study runner: one worker process per run, results written as each run finishes.

The parent only schedules and collects. It loads MNIST once, fits the input scaler once and hands
every worker the same arrays through one .npz file; runs are executed one at a time, so that they
never compete for the cores they are measuring. With a Dask scheduler the runs go to the cluster's
workers instead (harness.cluster), and their results are landed here the same way.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .environment import PROJECT_ROOT, environment_record, machine_name, machine_record, machines_in
from .plan import RunSpec, StudyPlan
from .results import (
    EPOCH_COLUMNS, LOST, RUN_COLUMNS, RUN_KEY, as_table, atomic_write_csv, atomic_write_text, read_table,
    supersede_lost,
)
from .summary import summarize
from .worker import PARENT_VARIABLE


@dataclass
class StudyFiles:
    out: Path

    @property
    def runs(self) -> Path:
        return self.out / "runs.csv"

    @property
    def epochs(self) -> Path:
        return self.out / "epochs.csv"

    @property
    def summary(self) -> Path:
        return self.out / "summary.csv"

    @property
    def environment(self) -> Path:
        return self.out / "environment.json"

    @property
    def study(self) -> Path:
        return self.out / "study.json"


def prepare_data(plan: StudyPlan, data_dir, folder: Path) -> Path:
    """Load MNIST (verified), cut the training set to ``train_limit`` and fit the scaler, once."""
    from harness.data import load_mnist
    from numpy_mlp import InputScaler

    x_train, y_train, x_test, y_test = load_mnist(data_dir)
    if plan.train_limit:
        x_train, y_train = x_train[: plan.train_limit], y_train[: plan.train_limit]
    scaler = InputScaler.fit(x_train, plan.config.input_scaling, dtype=plan.config.dtype)
    path = folder / "data.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             scaler_shift=scaler.shift, scaler_scale=scaler.scale)
    return path


class Progress:
    """A tqdm bar over the runs on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.stream = stream
        self.interactive = stream.isatty()
        self.bar = None
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", file=stream, dynamic_ncols=True)
        self.total, self.done = total, 0

    def start(self, spec: RunSpec) -> None:
        if self.bar is not None:
            self.bar.set_description(spec.label)
        else:
            print(f"[{self.done + 1}/{self.total}] {spec.label} ...", file=self.stream, flush=True)

    def epoch(self, spec: RunSpec, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {epoch}/{spec.epochs}")

    def finish(self, spec: RunSpec, row: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        status = row["status"]
        detail = f"{row['wall_s']:.2f} s, test acc {row.get('test_acc', float('nan')):.4f}" if status == "ok" else row["error"]
        line = f"    {spec.label}: {status} ({detail})"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def execute(spec: RunSpec, plan: StudyPlan, data_path: Path, scratch: Path, timeout: float, progress: Progress) -> dict:
    """Run one spec in a fresh Python process; always returns a row (failures included)."""
    spec_path, result_path = scratch / "spec.json", scratch / "result.json"
    result_path.unlink(missing_ok=True)
    payload = {**spec.to_dict(), "config": plan.config.to_dict(), "data_path": str(data_path)}
    spec_path.write_text(json.dumps(payload))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
               **{PARENT_VARIABLE: str(os.getpid())})
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.worker", str(spec_path), str(result_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT,
    )
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            try:
                progress.epoch(spec, json.loads(line)["epoch"])
            except (ValueError, KeyError):
                pass
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    timed_out = process.returncode != 0 and time.monotonic() >= deadline
    reader.join(timeout=5)

    if result_path.exists():
        result = json.loads(result_path.read_text())
    elif timed_out:
        result = {"run": {"status": "timeout", "error": f"no result within the time limit of {timeout:.0f} s"}, "epochs": []}
    else:
        tail = " | ".join(line.strip() for line in stderr_lines[-3:] if line.strip())
        result = {"run": {"status": "failed", "error": f"worker exited with status {process.returncode}: {tail}"}, "epochs": []}
    base = {k: v for k, v in spec.to_dict().items() if k in RUN_COLUMNS}
    row = {**base, **result["run"], "machine": machine_name()}
    epochs = [{**{k: getattr(spec, k) for k in ("framework", "variant", "batch_size", "threads", "repeat", "instrumented")}, **e,
               "machine": row["machine"]}
              for e in result["epochs"]]
    return {"run": row, "epochs": epochs}


def run_study(plan: StudyPlan, out: Path, data_dir=None, *, resume: bool = False, timeout: float = 1800.0,
              command: list[str] | None = None, progress_stream=sys.stderr, scheduler: str | None = None,
              placement: str = "spread") -> StudyFiles:
    """Execute every run of ``plan`` not yet in ``out``; write each finished run at once. With
    ``scheduler`` (a Dask scheduler's address) the runs go to its workers, placed by ``placement``."""
    files = StudyFiles(Path(out))
    with tempfile.TemporaryDirectory(prefix="mlp-study-") as scratch, \
            _cluster(scheduler, placement, progress_stream) as cluster:
        scratch = Path(scratch)
        data_path = prepare_data(plan, data_dir, scratch)  # fails here, before any file is written
        files.out.mkdir(parents=True, exist_ok=True)
        runs = read_table(files.runs, RUN_COLUMNS) if resume else as_table([], RUN_COLUMNS)
        epochs = read_table(files.epochs, EPOCH_COLUMNS) if resume else as_table([], EPOCH_COLUMNS)
        todo = runs_to_do(plan.runs(), runs) if cluster is None else cluster.todo(plan.runs(), runs)
        print(f"study: {len(todo)} runs to do -> {files.out}", file=progress_stream, flush=True)
        machines = machines_in(files.environment) if resume else {}
        if cluster is None:  # a cluster's machines are recorded as their first results come back
            machines[machine_name()] = machine_record()
        record = {**environment_record(command), "machines": machines}
        atomic_write_text(files.environment, json.dumps(record, indent=2) + "\n")
        atomic_write_text(files.study, json.dumps(plan.to_dict(), indent=2) + "\n")
        _run_all(todo, plan, data_path, scratch, timeout, files, runs, epochs, progress_stream, cluster)
    return files


def _cluster(scheduler: str | None, placement: str, stream):
    """The Dask cluster the runs go to (harness.cluster, imported only then), or none: the local runner."""
    if scheduler is None:
        return contextlib.nullcontext()
    from .cluster import connect

    return connect(scheduler, placement, stream)


def _run_all(todo, plan, data_path, scratch, timeout, files, runs, epochs, progress_stream, cluster=None) -> None:
    progress = Progress(len(todo), progress_stream)

    def land(spec: RunSpec, result: dict) -> None:
        """Add one finished run's rows to the tables and write both files (each atomically)."""
        nonlocal runs, epochs
        runs = pd.concat([supersede_lost(runs, result["run"]), as_table([result["run"]], RUN_COLUMNS)], ignore_index=True)
        if result["epochs"]:
            epochs = pd.concat([epochs, as_table(result["epochs"], EPOCH_COLUMNS)], ignore_index=True)
        atomic_write_csv(files.runs, runs[RUN_COLUMNS])
        atomic_write_csv(files.epochs, epochs[EPOCH_COLUMNS])
        progress.finish(spec, result["run"])

    try:
        if cluster is None:
            for spec in todo:
                progress.start(spec)
                land(spec, execute(spec, plan, data_path, scratch, timeout, progress))
        else:  # the cluster runs them; each result comes back to land() here
            cluster.run(todo, plan, data_path, timeout, land, files.environment, progress)
    finally:
        progress.close()
        if len(runs):
            atomic_write_csv(files.summary, summarize(runs))


def runs_to_do(specs: list[RunSpec], runs: pd.DataFrame, machine: str | None = None) -> list[RunSpec]:
    """The specs with no row in ``runs`` yet ('lost' rows do not count: those runs are done again);
    with ``machine``, the specs with no row of that machine."""
    if machine is not None:
        runs = runs[runs["machine"].astype(str) == machine] if "machine" in runs else runs.iloc[:0]
    done = {_normalize(tuple(r)) for r in runs.loc[runs["status"] != LOST, RUN_KEY].itertuples(index=False)}
    return [spec for spec in specs if _normalize(spec.key) not in done]


def _normalize(key: tuple) -> tuple:
    """Keys read back from CSV come as numpy scalars and 'True' strings; compare them as plain values."""
    framework, variant, batch_size, threads, repeat, instrumented = key
    if isinstance(instrumented, str):
        instrumented = instrumented == "True"
    return (str(framework), str(variant), int(batch_size), int(threads), int(repeat), bool(instrumented))
