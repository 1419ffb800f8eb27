"""Results folders made on different machines with the same plan, merged into one results folder (tables
concatenated, JSONs combined), so that one report compares the machines: ``python -m harness report A B``."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd

from .files import StudyError, write_text_atomic
from .results import KEY_KINDS, RESUME_EPOCH_COLUMNS, read_results, text
from .schema import ENVIRONMENT_FILE, EPOCH_COLUMNS, EPOCHS_FILE, RUN_COLUMNS, RUNS_FILE, STUDY_FILE
from .sessions import machines_in

PLAN_FIELDS = ("config", "epochs", "train_limit", "seed")  # what makes two folders' times comparable


def _read_folder(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """A folder's runs, epochs, plan and machine records, each row naming its machine (a run that a
    cluster could not place on any machine is named after the folder)."""
    for name, why in ((RUNS_FILE, ""), (STUDY_FILE, ": cannot check that its plan matches the others'")):
        if not (folder / name).is_file():
            raise StudyError(f"{folder} holds no {name}{why}")
    try:
        runs = read_results(folder / RUNS_FILE, RUN_COLUMNS, {**KEY_KINDS, "status": "status"})
        epochs = read_results(folder / EPOCHS_FILE, EPOCH_COLUMNS, RESUME_EPOCH_COLUMNS)
        study = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # a DamagedTable is a ValueError
        raise StudyError(f"cannot read {folder}: {exc}") from None
    for table in (runs, epochs):
        table["machine"] = text(table["machine"]).replace("", folder.resolve().name)
    return runs, epochs, study, machines_in(folder / ENVIRONMENT_FILE)


def merge(folders: list, into) -> Path:
    """Merge results folders made on different machines into the folder ``into``; StudyError when ``into``
    holds a study, for plans that differ in what makes times comparable, or for one machine in two folders."""
    into = Path(into)
    if (into / RUNS_FILE).exists():
        raise StudyError(f"{into} already holds a study; choose another folder to merge into")
    parts = {Path(f): _read_folder(Path(f)) for f in folders}
    (first, (_, _, plan, _)), owner = next(iter(parts.items())), {}
    for folder, (runs, _, study, _) in parts.items():
        for key in PLAN_FIELDS:
            if study.get(key) != plan.get(key):
                raise StudyError(f"{folder} and {first} ran different plans ({key}: {study.get(key)!r} against "
                                 f"{plan.get(key)!r}): their times cannot be compared")
        for machine in runs["machine"].unique():
            if machine in owner:
                raise StudyError(f"{owner[machine]} and {folder} both hold runs of machine {machine}: merge folders "
                                 "made on different machines")
            owner[machine] = folder
    studies = [study for _, _, study, _ in parts.values()]
    merged = dict(plan, **{key: sorted({v for s in studies for v in s.get(key) or []})
                           for key in ("frameworks", "batch_sizes", "threads")})
    merged.update(variants={fw: sorted({v for s in studies for v in (s.get("variants") or {}).get(fw, [])})
                            for fw in merged["frameworks"]},
                  repeats=max(s.get("repeats") or 0 for s in studies), merged_from=[str(f) for f in parts])
    environment = {"machines": {name: record for *_, machines in parts.values() for name, record in machines.items()},
                   "merged_from": merged["merged_from"],
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    for path, tables in ((into / EPOCHS_FILE, [p[1] for p in parts.values() if len(p[1])]),
                         (into / RUNS_FILE, [p[0] for p in parts.values()])):  # runs.csv last, as a study does
        if tables:
            write_text_atomic(path, pd.concat(tables, ignore_index=True).to_csv(index=False))
    write_text_atomic(into / STUDY_FILE, json.dumps(merged, indent=2) + "\n")
    write_text_atomic(into / ENVIRONMENT_FILE, json.dumps(environment, indent=2) + "\n")
    return into
