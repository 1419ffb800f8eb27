"""Test-only plugin (loaded through MLP_STUDY_PLUGINS): a study says it is ready (a file in $BARRIER_DIR
named by its pid), then waits for the file 'go' there before it claims its results folder, so that the
studies a test starts together race for one new folder within a millisecond or two."""
import os
import time
from pathlib import Path

import harness.study

_claim = harness.study.claim_folder


def _claim_at_the_barrier(*args, **kwargs):
    barrier = Path(os.environ["BARRIER_DIR"])
    (barrier / f"ready-{os.getpid()}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.001)
    return _claim(*args, **kwargs)


harness.study.claim_folder = _claim_at_the_barrier
