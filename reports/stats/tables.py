"""The statistics tables of a results folder, from one set of bootstrap draws per cell: summary.csv,
winners.csv (reports.stats.winners), cost_model.csv and crossovers.csv (reports.stats.cost_model)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..folder.files import writing
from ..folder.results import write_csv_atomic
from ..folder.schema import (
    COST_MODEL_FILE, CROSSOVERS_FILE, MNIST_TRAIN_SAMPLES, STUDY_FILE, SUMMARY_FILE, WINNERS_FILE,
)
from . import cost_model, winners
from .summary import cell_draws, summarize


def study_shape(study: dict) -> tuple[int | None, int]:
    """(epochs per run, training samples) of a study.json's plan (None / all of MNIST's when unknown)."""
    epochs, limit = study.get("epochs"), study.get("train_limit")
    limited = isinstance(limit, (int, float)) and limit > 0
    samples = int(min(limit, MNIST_TRAIN_SAMPLES)) if limited else MNIST_TRAIN_SAMPLES
    return (int(epochs) if isinstance(epochs, (int, float)) and epochs > 0 else None), samples


def compute(runs: pd.DataFrame, epochs: pd.DataFrame | None, study: dict) -> dict[str, pd.DataFrame]:
    """The four tables by file name."""
    cells = cell_draws(runs, epochs)
    summary = summarize(runs, epochs, cells=cells)
    n_epochs, n_samples = study_shape(study)
    model = cost_model.fits(summary, cells, n_samples)
    return {SUMMARY_FILE: summary, WINNERS_FILE: winners.winner_map(summary, cells, winners.epoch_grid(n_epochs)),
            COST_MODEL_FILE: cost_model.cost_table(model), CROSSOVERS_FILE: cost_model.crossover_table(model)}


def write_tables(out: Path, runs: pd.DataFrame, epochs: pd.DataFrame | None) -> None:
    """Write the four tables into the results folder ``out`` (each atomically), for the plan in its study.json."""
    try:
        study = json.loads((Path(out) / STUDY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        study = {}
    for file_name, table in compute(runs, epochs, study if isinstance(study, dict) else {}).items():
        with writing(Path(out) / file_name):
            write_csv_atomic(Path(out) / file_name, table)
