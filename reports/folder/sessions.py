"""environment.json's sessions (one environment record per run of a study and per --resume) and machines
(one record per machine that ran a part of it), read and updated."""
from __future__ import annotations

import json
from pathlib import Path

from .files import write_text_atomic

SESSION_ONLY = ("date", "command")  # the keys of an environment record that belong to a session, not a machine


def read_sessions(path) -> list[dict]:
    """The environment records of a study's sessions (the first run and each --resume), oldest
    first, from its environment.json: ``{"sessions": [...]}``; none without the file or the key (a
    merged folder's has machines only). ValueError when the file holds something else."""
    path = Path(path)
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    sessions = data.get("sessions", []) if isinstance(data, dict) else None
    if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
        raise ValueError("it holds no list of sessions")
    return sessions


def machines_in(path) -> dict:
    """The "machines" mapping (machine name -> record) of an environment.json; empty when there is none."""
    try:
        machines = json.loads(Path(path).read_text()).get("machines")
    except (OSError, ValueError, AttributeError):
        return {}
    return machines if isinstance(machines, dict) else {}


def record_machines(path, machines: dict) -> None:
    """Add or update machine records in environment.json's top-level "machines" mapping, atomically."""
    path = Path(path)
    record = json.loads(path.read_text()) if path.exists() else {}
    record["machines"] = {**record.get("machines", {}), **machines}
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
