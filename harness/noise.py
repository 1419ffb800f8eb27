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

from reports.folder.schema import LOAD_BEFORE, OTHERS_CPU_S, OTHERS_SHARE, STEAL_S
from reports.stats.busy import busy

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


def busy_note(share) -> str:
    """The console's word on a busy run, '' for a quiet one."""
    return f" [busy machine: other processes took {share:.0%} of the cores]" if busy(share) else ""
