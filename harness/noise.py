"""How busy the machine was around one run, recorded with the run (runs.csv): the load average before
it, the CPU time the hypervisor stole during it (``steal`` in /proc/stat; empty where the system has
none) and the CPU time other processes took during it: the machine's busy CPU time over the run minus
the CPU time of this process and the worker it waited for. The machine lock (harness.locks) keeps other
studies out; this records what it cannot keep out (a test suite, a build, a browser).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from .schema import LOAD_BEFORE, OTHERS_CPU_S, OTHERS_SHARE, STEAL_S

# A run is "busy" when other processes took this share of all the machine's CPU time during it. An idle
# machine's daemons stay near 1 %; one busy process on 2 cores is 50 %. At a tenth (a fifth of a core on
# 2 cores, throughout the run) BLAS threads already lose the CPU at their barriers: the time is the
# scheduler's as much as the framework's (issue 24 measured a NumPy run 15x slower beside a test suite).
BUSY_SHARE = 0.10
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")  # /proc/stat's busy times (guest is in user)


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    load: float  # 1-minute load average
    busy: float  # CPU seconds all cores spent busy since boot
    steal: float | None  # CPU seconds stolen by the hypervisor since boot; None where not reported
    own: float  # CPU seconds of this process and of its children it has waited for


def snapshot() -> Snapshot:
    times, mine = psutil.cpu_times(), psutil.Process().cpu_times()
    own = mine.user + mine.system + getattr(mine, "children_user", 0.0) + getattr(mine, "children_system", 0.0)
    return Snapshot(time.monotonic(), psutil.getloadavg()[0], sum(getattr(times, f, 0.0) for f in BUSY_FIELDS),
                    getattr(times, "steal", None), own)


def noise_between(before: Snapshot, after: Snapshot) -> dict:
    """The noise columns of a run that began at ``before`` and whose worker was waited for by ``after``."""
    elapsed = max(after.at - before.at, 1e-9)
    others = max(0.0, (after.busy - before.busy) - (after.own - before.own))
    steal = None if before.steal is None or after.steal is None else after.steal - before.steal
    cores = psutil.cpu_count() or os.cpu_count() or 1  # /proc/stat counts every core of the machine
    return {LOAD_BEFORE: before.load, STEAL_S: steal, OTHERS_CPU_S: others, OTHERS_SHARE: others / (elapsed * cores)}


def busy(share) -> bool:
    """Whether a run whose others took ``share`` of the machine's CPU time is flagged (NaN: not measured)."""
    try:
        return bool(float(share) >= BUSY_SHARE)
    except (TypeError, ValueError):
        return False


def busy_note(share) -> str:
    """The console's word on a busy run, '' for a quiet one."""
    return f" [busy machine: other processes took {share:.0%} of the cores]" if busy(share) else ""
