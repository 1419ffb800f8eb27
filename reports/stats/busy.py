"""When a run counts as taken on a busy machine (runs.csv's others_cpu_share; summary.csv's busy_runs)."""
from __future__ import annotations

# A run is "busy" when other processes took this share of all the machine's CPU time during it. An idle
# machine's daemons stay near 1 %; one busy process on 2 cores is 50 %. At a tenth (a fifth of a core on
# 2 cores, throughout the run) BLAS threads already lose the CPU at their barriers: the time is the
# scheduler's as much as the framework's (docs/method.md, "Busy machines").
BUSY_SHARE = 0.10


def busy(share) -> bool:
    """Whether a run whose others took ``share`` of the machine's CPU time is flagged (NaN: not measured)."""
    try:
        return bool(float(share) >= BUSY_SHARE)
    except (TypeError, ValueError):
        return False
